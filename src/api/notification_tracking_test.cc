// Following a notification: its status and counts, its deliveries, cancellation and a user's
// event timeline. The store is driven directly where the pipeline would act (no pipeline runs in
// api tests).
#include "api/notification_test_fixture.h"

namespace herald::api {
namespace {

using NotificationTracking = NotificationSession;

TEST_F(NotificationTracking, StatusAndCountsFollowTheDeliveries) {
  const std::string id = SendToNews();
  const auto jobs = FanOut(id);
  ASSERT_EQ(jobs.size(), 3u) << "u1 has two devices, u2 one";
  Json n = Body(Call("GET", "/v1/notifications/" + id, {}, key_));
  EXPECT_EQ(n["status"], "in_progress");
  EXPECT_EQ(n["fanout_done"], true);
  EXPECT_EQ(n["deliveries"], 3);
  EXPECT_EQ(n["counts"]["queued"], 3);

  Move(jobs[0].delivery, DeliveryStatus::kSent, "smtp", "m-1");
  Move(jobs[1].delivery, DeliveryStatus::kSuppressed, "", "", "opted_out");
  n = Body(Call("GET", "/v1/notifications/" + id, {}, key_));
  EXPECT_EQ(n["counts"]["queued"], 1);
  EXPECT_EQ(n["counts"]["sent"], 1);
  EXPECT_EQ(n["counts"]["suppressed"], 1);
  EXPECT_TRUE(n["completed_at"].is_null());

  Move(jobs[2].delivery, DeliveryStatus::kFailed, "fcm", "", "invalid_address");
  n = Body(Call("GET", "/v1/notifications/" + id, {}, key_));
  EXPECT_EQ(n["status"], "completed");
  EXPECT_TRUE(n["completed_at"].is_string());
  EXPECT_EQ(n["counts"]["failed"], 1);
}

TEST_F(NotificationTracking, CancelStopsWhatHasNotBeenSent) {
  const std::string id = SendToNews();
  const auto jobs = FanOut(id);
  ASSERT_EQ(jobs.size(), 3u);
  Move(jobs[0].delivery, DeliveryStatus::kSent, "smtp", "m-1");
  Move(jobs[1].delivery, DeliveryStatus::kRetrying, "fcm", "", "provider_error");

  auto r = Call("DELETE", "/v1/notifications/" + id, {}, key_);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r), (Json{{"id", id}, {"cancelled", 2}}));
  Json n = Body(Call("GET", "/v1/notifications/" + id, {}, key_));
  EXPECT_EQ(n["status"], "cancelled");
  EXPECT_TRUE(n["completed_at"].is_string());
  EXPECT_EQ(n["counts"]["cancelled"], 2);
  EXPECT_EQ(n["counts"]["sent"], 1) << "what was sent stays sent";

  r = Call("DELETE", "/v1/notifications/" + id, {}, key_);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Body(r)["cancelled"], 0) << "cancelling twice is harmless";
  EXPECT_EQ(Call("DELETE", "/v1/notifications/ntf_nosuchthing", {}, key_).status, 404);
}

TEST_F(NotificationTracking, CancelBeforeFanOutReachesNobody) {
  const std::string id = SendToNews();
  auto r = Call("DELETE", "/v1/notifications/" + id, {}, key_);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Body(r)["cancelled"], 0);
  EXPECT_TRUE(FanOut(id).empty());
  EXPECT_EQ(Body(Call("GET", "/v1/notifications/" + id, {}, key_))["status"], "cancelled");
}

TEST_F(NotificationTracking, DeliveriesPageAndFilterByStatus) {
  PutUser("u3", {{{"channel", "android"}, {"address", "fcm-token-u3"}}}, {"news"});
  const std::string id = SendToNews();
  const auto jobs = FanOut(id);
  ASSERT_EQ(jobs.size(), 4u);
  Move(jobs[1].delivery, DeliveryStatus::kSent, "smtp", "msg-7");

  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto r = Call("GET",
                  "/v1/notifications/" + id + "/deliveries?limit=3" +
                      (cursor.empty() ? "" : "&cursor=" + cursor),
                  {}, key_);
    ASSERT_EQ(r.status, 200) << r.body;
    const Json page = Body(r);
    EXPECT_LE(page["deliveries"].size(), 3u);
    for (const Json& d : page["deliveries"]) seen.push_back(d["id"]);
    cursor = page["next_cursor"];
    ++pages;
  } while (!cursor.empty() && pages < 10);
  EXPECT_EQ(pages, 2);
  ASSERT_EQ(seen.size(), 4u);
  for (size_t i = 0; i < jobs.size(); ++i) EXPECT_EQ(seen[i], DeliveryIdOf(jobs[i].delivery));

  auto r = Call("GET", "/v1/notifications/" + id + "/deliveries?status=sent", {}, key_);
  ASSERT_EQ(r.status, 200) << r.body;
  const Json sent = Body(r)["deliveries"];
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0]["id"], DeliveryIdOf(jobs[1].delivery));
  EXPECT_EQ(sent[0]["status"], "sent");
  EXPECT_EQ(sent[0]["provider"], "smtp");
  EXPECT_EQ(sent[0]["provider_message_id"], "msg-7");
  EXPECT_EQ(sent[0]["attempts"], 1);
  EXPECT_TRUE(sent[0]["reason"].is_null());
  for (const char* key : {"external_id", "device_id", "channel", "deadline", "updated_at"}) {
    EXPECT_TRUE(sent[0].contains(key)) << key;
  }
  const Json n = Body(Call("GET", "/v1/notifications/" + id, {}, key_));
  EXPECT_EQ(sent[0]["deadline"], n["deadline"]);

  r = Call("GET", "/v1/notifications/" + id + "/deliveries?status=queued", {}, key_);
  EXPECT_EQ(Body(r)["deliveries"].size(), 3u);
  r = Call("GET", "/v1/notifications/" + id + "/deliveries?status=delivered", {}, key_);
  EXPECT_EQ(Body(r)["deliveries"], Json::array());

  r = Call("GET", "/v1/notifications/" + id + "/deliveries?status=lost", {}, key_);
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(Code(r), "invalid_status");
  EXPECT_EQ(Field(r), "status");
  EXPECT_NE(r.body.find("queued, dispatched, sent, delivered"), std::string::npos) << r.body;
  EXPECT_EQ(Code(Call("GET", "/v1/notifications/" + id + "/deliveries?limit=0", {}, key_)),
            "invalid_limit");
  EXPECT_EQ(Call("GET", "/v1/notifications/ntf_nosuchthing/deliveries", {}, key_).status, 404);
}

TEST_F(NotificationTracking, UserEventsAreNewestFirstAndPage) {
  const std::string id = SendToNews();
  const auto jobs = FanOut(id);
  ASSERT_EQ(jobs.size(), 3u);
  // jobs[0] is u1's first device (u1 sorts before u2 and was created first).
  auto deliveries = Body(Call("GET", "/v1/notifications/" + id + "/deliveries", {}, key_));
  ASSERT_EQ(deliveries["deliveries"][0]["external_id"], "u1");
  Move(jobs[0].delivery, DeliveryStatus::kDispatched);
  Move(jobs[0].delivery, DeliveryStatus::kSent, "smtp", "m-1");

  auto r = Call("GET", "/v1/users/u1/events", {}, key_);
  ASSERT_EQ(r.status, 200) << r.body;
  const Json events = Body(r)["events"];
  ASSERT_EQ(events.size(), 4u) << "two queued, dispatched, sent";
  EXPECT_EQ(events[0]["stage"], "sent");
  EXPECT_EQ(events[0]["provider"], "smtp");
  EXPECT_EQ(events[0]["attempt"], 1);
  EXPECT_EQ(events[0]["delivery_id"], DeliveryIdOf(jobs[0].delivery));
  EXPECT_EQ(events[0]["notification_id"], id);
  EXPECT_EQ(events[1]["stage"], "dispatched");
  EXPECT_EQ(events[2]["stage"], "queued");
  EXPECT_EQ(events[3]["stage"], "queued");
  EXPECT_TRUE(events[3]["provider"].is_null());
  for (const char* key : {"at", "device_id", "channel", "reason"}) {
    EXPECT_TRUE(events[0].contains(key)) << key;
  }
  EXPECT_EQ(r.body.find("u1@example.com"), std::string::npos) << "events carry no PII";

  std::vector<std::string> stages;
  std::string cursor;
  for (int i = 0; i < 10; ++i) {
    r = Call("GET", "/v1/users/u1/events?limit=1" + (cursor.empty() ? "" : "&cursor=" + cursor), {},
             key_);
    ASSERT_EQ(r.status, 200) << r.body;
    const Json page = Body(r);
    for (const Json& e : page["events"]) stages.push_back(e["stage"]);
    cursor = page["next_cursor"];
    if (cursor.empty()) break;
  }
  EXPECT_EQ(stages, (std::vector<std::string>{"sent", "dispatched", "queued", "queued"}));

  EXPECT_EQ(Body(Call("GET", "/v1/users/u2/events", {}, key_))["events"].size(), 1u);
  EXPECT_EQ(Call("GET", "/v1/users/ghost/events", {}, key_).status, 404);
  EXPECT_EQ(Code(Call("GET", "/v1/users/a%01b/events", {}, key_)), "invalid_external_id");
}

}  // namespace
}  // namespace herald::api

// POST /v1/notifications: what is accepted, what is refused and why, idempotency, scopes.
#include <array>

#include "api/notification_test_fixture.h"

namespace herald::api {
namespace {

using NotificationRoutes = NotificationSession;

std::string Repeat(std::string_view s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

TEST_F(NotificationRoutes, SendIsAcceptedDurableAndShownAsAccepted) {
  const UnixMillis before = NowMillis();
  auto r = Send({{"to", {{"groups", {"news"}}, {"users", {"u2", "ghost"}}}},
                 {"title", "Hi"},
                 {"body", "Line one\n\tLine two"}});
  ASSERT_EQ(r.status, 202) << r.body;
  const Json accepted = Body(r);
  const std::string id = accepted["id"];
  EXPECT_EQ(id.rfind("ntf_", 0), 0u);
  EXPECT_EQ(Header(r, "Location"), "/v1/notifications/" + id);
  const auto at = ParseRfc3339(accepted["accepted_at"].get<std::string>());
  const auto deadline = ParseRfc3339(accepted["deadline"].get<std::string>());
  ASSERT_TRUE(at && deadline);
  EXPECT_GE(*at, before);
  EXPECT_LE(*at, NowMillis());
  EXPECT_EQ(*deadline - *at, 20 * 60'000) << "the tenant's delivery_deadline_minutes";
  EXPECT_EQ(started_, std::vector<std::string>{id}) << "the pipeline is told at once";

  r = Call("GET", "/v1/notifications/" + id, {}, key_);
  ASSERT_EQ(r.status, 200) << r.body;
  const Json n = Body(r);
  EXPECT_EQ(n["id"], id);
  EXPECT_EQ(n["status"], "accepted");
  EXPECT_EQ(n["accepted_at"], accepted["accepted_at"]);
  EXPECT_EQ(n["deadline"], accepted["deadline"]);
  EXPECT_TRUE(n["completed_at"].is_null());
  EXPECT_EQ(n["title"], "Hi");
  EXPECT_EQ(n["body"], "Line one\n\tLine two");
  EXPECT_EQ(n["to"]["groups"], Json::array({"news"}));
  EXPECT_EQ(n["to"]["users"], Json::array({"ghost", "u2"})) << "unknown users are accepted";
  EXPECT_EQ(n["channels"], Json::array({"ios", "android", "email", "sms"}));
  EXPECT_EQ(n["priority"], "high");
  EXPECT_EQ(n["fanout_done"], false);
  EXPECT_EQ(n["deliveries"], 0);
  ASSERT_EQ(n["counts"].size(), kDeliveryStatusCount);
  for (const auto& [stage, count] : n["counts"].items()) EXPECT_EQ(count, 0) << stage;
}

TEST_F(NotificationRoutes, RecipientsAndOptionsAreNormalised) {
  auto r = Send({{"to", {{"users", {"u2", "u1", "u2"}}, {"groups", Json::array()}}},
                 {"body", "x"},
                 {"channels", {"email", "ios"}},
                 {"priority", "normal"}});
  ASSERT_EQ(r.status, 202) << r.body;
  const Json n =
      Body(Call("GET", "/v1/notifications/" + Body(r)["id"].get<std::string>(), {}, key_));
  EXPECT_EQ(n["to"]["users"], Json::array({"u1", "u2"}));
  EXPECT_EQ(n["to"]["groups"], Json::array());
  EXPECT_EQ(n["channels"], Json::array({"ios", "email"}));
  EXPECT_EQ(n["priority"], "normal");
  EXPECT_EQ(n["title"], "");
}

TEST_F(NotificationRoutes, EveryRuleRefusesWithItsCodeAndFieldAndStoresNothing) {
  struct Case {
    Json body;
    std::string code;
    std::string field;
  };
  const Json to = {{"groups", {"news"}}};
  Json many_groups = Json::array();
  for (int i = 0; i < 101; ++i) many_groups.push_back("g" + std::to_string(i));
  Json many_users = Json::array();
  for (int i = 0; i < 10'001; ++i) many_users.push_back("u" + std::to_string(i));
  const std::vector<Case> cases = {
      {{{"to", to}, {"body", "x"}, {"colour", "red"}}, "unknown_field", "colour"},
      {{{"to", {{"groups", {"news"}}, {"teams", {"a"}}}}, {"body", "x"}},
       "unknown_field",
       "to.teams"},
      {{{"body", "x"}}, "missing_field", "to"},
      {{{"to", "news"}, {"body", "x"}}, "invalid_type", "to"},
      {{{"to", Json::object()}, {"body", "x"}}, "no_recipients", "to"},
      {{{"to", {{"groups", Json::array()}, {"users", Json::array()}}}, {"body", "x"}},
       "no_recipients",
       "to"},
      {{{"to", {{"groups", "news"}}}, {"body", "x"}}, "invalid_type", "to.groups"},
      {{{"to", {{"groups", {"news", 7}}}}, {"body", "x"}}, "invalid_type", "to.groups[1]"},
      {{{"to", {{"groups", {"bad key"}}}}, {"body", "x"}}, "invalid_group_key", "to.groups[0]"},
      {{{"to", {{"groups", many_groups}}}, {"body", "x"}}, "too_many_groups", "to.groups"},
      {{{"to", {{"users", {"u1", std::string(129, 'x')}}}}, {"body", "x"}},
       "invalid_external_id",
       "to.users[1]"},
      {{{"to", {{"users", {"a\x01"}}}}, {"body", "x"}}, "invalid_external_id", "to.users[0]"},
      {{{"to", {{"users", many_users}}}, {"body", "x"}}, "too_many_users", "to.users"},
      {{{"to", {{"groups", {"news", "nosuch"}}}}, {"body", "x"}},
       "group_not_found",
       "to.groups[1]"},
      {{{"to", to}}, "missing_field", "body"},
      {{{"to", to}, {"body", 5}}, "invalid_type", "body"},
      {{{"to", to}, {"body", "x"}, {"title", true}}, "invalid_type", "title"},
      {{{"to", to}, {"body", ""}}, "text_empty", "body"},
      {{{"to", to}, {"title", "t"}, {"body", std::string(1500, 'x')}}, "text_too_large", "body"},
      {{{"to", to}, {"body", "a\x01z"}}, "control_character", "body"},
      {{{"to", to}, {"body", "a\rz"}}, "control_character", "body"},
      {{{"to", to}, {"body", "a\x7fz"}}, "control_character", "body"},
      {{{"to", to}, {"body", "a\xc2\x85z"}}, "control_character", "body"},
      {{{"to", to}, {"title", "t\x1b"}, {"body", "x"}}, "control_character", "title"},
      {{{"to", to}, {"body", "x"}, {"channels", Json::array()}}, "no_channels", "channels"},
      {{{"to", to}, {"body", "x"}, {"channels", "email"}}, "invalid_type", "channels"},
      {{{"to", to}, {"body", "x"}, {"channels", {"fax"}}}, "invalid_channel", "channels[0]"},
      {{{"to", to}, {"body", "x"}, {"channels", {"email", 3}}}, "invalid_type", "channels[1]"},
      {{{"to", to}, {"body", "x"}, {"channels", {"email", "sms", "email"}}},
       "duplicate_channel",
       "channels[2]"},
      {{{"to", to}, {"body", "x"}, {"priority", "urgent"}}, "invalid_priority", "priority"},
      {{{"to", to}, {"body", "x"}, {"priority", 10}}, "invalid_type", "priority"},
  };
  for (const Case& c : cases) {
    auto r = Send(c.body);
    EXPECT_EQ(r.status, 422) << c.body.dump().substr(0, 200);
    EXPECT_EQ(Code(r), c.code) << r.body.substr(0, 300);
    EXPECT_EQ(Field(r), c.field) << r.body.substr(0, 300);
    EXPECT_FALSE(Body(r)["error"]["message"].get<std::string>().empty());
  }
  EXPECT_EQ(SendRaw(R"({"to":)").status, 400);
  EXPECT_EQ(Code(SendRaw("")), "malformed_json");
  EXPECT_EQ(Code(SendRaw("[1]")), "invalid_type");
  EXPECT_TRUE(started_.empty()) << "no refused send reached the pipeline";
}

TEST_F(NotificationRoutes, TooLongTextStatesTheSizeAndTheLimit) {
  auto r = Send({{"to", {{"groups", {"news"}}}},
                 {"title", std::string(112, 't')},
                 {"body", std::string(1500, 'b')}});
  ASSERT_EQ(r.status, 422);
  const std::string message = Body(r)["error"]["message"];
  EXPECT_NE(message.find("1612"), std::string::npos) << message;
  EXPECT_NE(message.find("1500"), std::string::npos) << message;
}

TEST_F(NotificationRoutes, LimitsAreInclusive) {
  const Json to = {{"groups", {"news"}}};
  // 1500 bytes together, counted in bytes: 749 two-byte characters and two ASCII bytes.
  EXPECT_EQ(Send({{"to", to}, {"title", "t"}, {"body", Repeat("é", 749) + "b"}}).status, 202);
  auto r = Send({{"to", to}, {"body", Repeat("é", 751)}});
  EXPECT_EQ(Code(r), "text_too_large");
  EXPECT_NE(r.body.find("1502"), std::string::npos) << r.body;
  EXPECT_EQ(
      Send({{"to", to}, {"body", "x"}, {"channels", {"sms", "email", "android", "ios"}}}).status,
      202);

  Json groups = Json::array();
  for (int i = 0; i < 100; ++i) {
    Group g;
    g.tenant_id = tenant_;
    g.key = "g" + std::to_string(i);
    ASSERT_TRUE(store_->PutGroup(g).ok());
    groups.push_back(g.key);
  }
  groups.push_back("g0");  // duplicates merge before the limit is counted
  r = Send({{"to", {{"groups", groups}}}, {"body", "x"}});
  EXPECT_EQ(r.status, 202) << r.body.substr(0, 300);

  Json users = Json::array();
  for (int i = 0; i < 10'000; ++i) users.push_back("user-" + std::to_string(i));
  r = Send({{"to", {{"users", users}}}, {"body", "x"}});
  EXPECT_EQ(r.status, 202) << r.body.substr(0, 300);
  const Json n =
      Body(Call("GET", "/v1/notifications/" + Body(r)["id"].get<std::string>(), {}, key_));
  EXPECT_EQ(n["to"]["users"].size(), 10'000u);
}

TEST_F(NotificationRoutes, SameKeyAndBodyReplaysTheFirstAnswer) {
  const Json body = {{"to", {{"users", {"u1", "u2"}}}}, {"body", "Sale"}};
  auto first = Send(body, "order-42");
  ASSERT_EQ(first.status, 202) << first.body;
  EXPECT_EQ(Header(first, "Idempotent-Replayed"), "");
  // The same request spelt differently (member order, duplicates, explicit defaults).
  const Json same = {{"priority", "high"},
                     {"body", "Sale"},
                     {"to", {{"users", {"u2", "u1", "u1"}}, {"groups", Json::array()}}}};
  auto again = Send(same, "order-42");
  ASSERT_EQ(again.status, 202) << again.body;
  EXPECT_EQ(again.body, first.body) << "the same id, accepted_at and deadline";
  EXPECT_EQ(Header(again, "Idempotent-Replayed"), "true");
  EXPECT_EQ(Header(again, "Location"), Header(first, "Location"));
  EXPECT_EQ(started_.size(), 1u) << "a replay starts no second fan-out";

  auto clash = Send({{"to", {{"users", {"u1", "u2"}}}}, {"body", "Sale!"}}, "order-42");
  EXPECT_EQ(clash.status, 409);
  EXPECT_EQ(Code(clash), "idempotency_key_reused");
  EXPECT_EQ(Field(clash), "Idempotency-Key");

  auto other_key = Send(body, "order-43");
  ASSERT_EQ(other_key.status, 202);
  EXPECT_NE(Body(other_key)["id"], Body(first)["id"]);
  auto no_key = Send(body);
  ASSERT_EQ(no_key.status, 202);
  EXPECT_NE(Body(no_key)["id"], Body(first)["id"]) << "without a key every send is new";

  // Keys are per tenant: another tenant's equal key is unrelated.
  const std::string other = NewTenant();
  const std::string other_key_secret = NewKey(other, {"notifications:send"});
  auto theirs = Send(body, "order-42", other_key_secret);
  ASSERT_EQ(theirs.status, 202) << theirs.body;
  EXPECT_NE(Body(theirs)["id"], Body(first)["id"]);
}

TEST_F(NotificationRoutes, RefusedSendDoesNotUseUpItsKey) {
  auto r = Send({{"to", {{"groups", {"nosuch"}}}}, {"body", "x"}}, "retry-me");
  ASSERT_EQ(Code(r), "group_not_found");
  r = Send({{"to", {{"groups", {"news"}}}}, {"body", "x"}}, "retry-me");
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(Header(r, "Idempotent-Replayed"), "");
}

TEST_F(NotificationRoutes, IdempotencyKeyMustBePrintableAsciiUpTo255) {
  const Json body = {{"to", {{"groups", {"news"}}}}, {"body", "x"}};
  EXPECT_EQ(Send(body, std::string(255, 'k')).status, 202);
  EXPECT_EQ(Send(body, "a key with spaces ~!").status, 202);
  for (const std::string& bad :
       {std::string(256, 'k'), std::string("tab\there"), std::string("caf\xc3\xa9")}) {
    auto r = Send(body, bad);
    EXPECT_EQ(r.status, 422) << bad;
    EXPECT_EQ(Code(r), "invalid_idempotency_key");
    EXPECT_EQ(Field(r), "Idempotency-Key");
  }
}

TEST_F(NotificationRoutes, ScopesAreEnforcedAndNamed) {
  const std::string id = SendToNews();
  const std::string read_only = NewKey(tenant_, {"notifications:read"});
  const std::string send_only = NewKey(tenant_, {"notifications:send"});
  const Json body = {{"to", {{"groups", {"news"}}}}, {"body", "x"}};
  struct Case {
    std::string method, target, token, scope;
  };
  const std::vector<Case> cases = {
      {"POST", "/v1/notifications", read_only, "notifications:send"},
      {"DELETE", "/v1/notifications/" + id, read_only, "notifications:send"},
      {"GET", "/v1/notifications/" + id, send_only, "notifications:read"},
      {"GET", "/v1/notifications/" + id + "/deliveries", send_only, "notifications:read"},
      {"GET", "/v1/users/u1/events", read_only, "events:read"},
  };
  for (const Case& c : cases) {
    auto r = Call(c.method, c.target, body.dump(), c.token);
    EXPECT_EQ(r.status, 403) << c.method << " " << c.target;
    EXPECT_EQ(Code(r), "missing_scope");
    EXPECT_NE(r.body.find(c.scope), std::string::npos) << r.body;
  }
  EXPECT_EQ(Call("POST", "/v1/notifications", body.dump()).status, 401);
  EXPECT_EQ(Call("GET", "/v1/notifications/" + id, {}, read_only).status, 200);
  EXPECT_EQ(Body(Call("GET", "/v1/notifications/" + id, {}, key_))["status"], "accepted")
      << "the refused DELETE cancelled nothing";
}

TEST_F(NotificationRoutes, AnotherTenantsNotificationIsNotFound) {
  const std::string id = SendToNews();
  const std::string other = NewTenant();
  const std::string theirs =
      NewKey(other, {"notifications:send", "notifications:read", "events:read"});
  for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/v1/notifications/" + id},
           {"GET", "/v1/notifications/" + id + "/deliveries"},
           {"DELETE", "/v1/notifications/" + id},
           {"GET", "/v1/users/u1/events"},
           {"GET", "/v1/notifications/ntf_doesnotexist"},
       }) {
    auto r = Call(method, target, {}, theirs);
    EXPECT_EQ(r.status, 404) << method << " " << target << ": " << r.body;
  }
  EXPECT_EQ(Body(Call("GET", "/v1/notifications/" + id, {}, key_))["status"], "accepted");
  // Nor can another tenant's send reach this tenant's group.
  auto r = Send({{"to", {{"groups", {"news"}}}}, {"body", "x"}}, {}, theirs);
  EXPECT_EQ(Code(r), "group_not_found");
}

TEST_F(NotificationRoutes, OpenApiDescribesTheseRoutesWithTheirScopes) {
  const Json doc = Body(Call("GET", "/openapi.json"));
  const std::vector<std::array<std::string, 3>> routes = {
      {"/v1/notifications", "post", "notifications:send"},
      {"/v1/notifications/{id}", "get", "notifications:read"},
      {"/v1/notifications/{id}", "delete", "notifications:send"},
      {"/v1/notifications/{id}/deliveries", "get", "notifications:read"},
      {"/v1/users/{external_id}/events", "get", "events:read"},
  };
  for (const auto& [path, method, scope] : routes) {
    ASSERT_TRUE(doc["paths"].contains(path)) << path;
    ASSERT_TRUE(doc["paths"][path].contains(method)) << method << " " << path;
    EXPECT_EQ(doc["paths"][path][method]["x-required-scope"], scope) << method << " " << path;
  }
  for (const char* provider : {"twilio", "vonage", "sendgrid"}) {
    const std::string path = std::string("/v1/receipts/") + provider + "/{tenant_id}";
    ASSERT_TRUE(doc["paths"].contains(path)) << path;
    EXPECT_EQ(doc["paths"][path]["post"]["security"], Json::array()) << "signed, not keyed";
  }
}

}  // namespace
}  // namespace herald::api

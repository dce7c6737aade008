// Store conformance: notifications, fan-out, deliveries and their events, receipts (fixture in
// store_conformance.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/store_conformance.h"
#include "store/store_test_support.h"

namespace herald::store_test {
namespace {

std::string Token(int i) { return std::string(60, 'a') + std::to_string(1000 + i); }

Notification CreateN(Store& store, const Tenant& t, std::vector<std::string> groups,
                     std::vector<std::string> users = {}, std::string key = "") {
  Notification n;
  n.tenant_id = t.id;
  n.title = "Title";
  n.body = "Body";
  n.to_groups = std::move(groups);
  n.to_users = std::move(users);
  n.accepted_at = NowMillis();
  n.deadline = n.accepted_at + 600'000;
  n.idempotency_key = std::move(key);
  n.request_hash = "hash";
  Result<CreatedNotification> c = store.CreateNotification(n);
  EXPECT_TRUE(c.ok()) << ErrorText(c);
  return c.ok() ? c->notification : Notification{};
}

// Runs the whole fan-out, `page` users at a time; returns every job.
std::vector<DeliveryJob> FanOutAll(Store& store, const std::string& id, int page) {
  std::vector<DeliveryJob> all;
  for (int i = 0; i < 10'000; ++i) {
    Result<FanoutPage> p = store.FanOutPage(id, page);
    EXPECT_TRUE(p.ok()) << ErrorText(p);
    if (!p.ok()) break;
    all.insert(all.end(), p->jobs.begin(), p->jobs.end());
    if (p->done) break;
  }
  return all;
}

Notification GetN(Store& store, const Tenant& t, const std::string& id) {
  EXPECT_TRUE(store.Flush().ok());
  Result<Notification> n = store.GetNotification(t.id, id);
  EXPECT_TRUE(n.ok()) << ErrorText(n);
  return n.ok() ? *n : Notification{};
}

int64_t Count(const Notification& n, DeliveryStatus s) { return n.counts[static_cast<size_t>(s)]; }

TEST_P(StoreConformanceTest, IdempotencyKeyReturnsTheFirstNotification) {
  Tenant t = NewTenant();
  Notification first = CreateN(store(), t, {"g"}, {}, "key-1");
  ASSERT_FALSE(first.id.empty());
  Notification n = first;
  n.id.clear();
  n.request_hash = "another";
  Result<CreatedNotification> again = store().CreateNotification(n);
  ASSERT_OK(again);
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->notification.id, first.id);
  EXPECT_EQ(again->notification.request_hash, "hash");
  // The same key in another tenant is another notification.
  Tenant other = NewTenant("Other");
  n.tenant_id = other.id;
  Result<CreatedNotification> elsewhere = store().CreateNotification(n);
  ASSERT_OK(elsewhere);
  EXPECT_TRUE(elsewhere->created);
  EXPECT_NE(elsewhere->notification.id, first.id);
  EXPECT_ERROR(store().GetNotification(other.id, first.id), ErrorKind::kNotFound,
               "notification_not_found");
}

TEST_P(StoreConformanceTest, FanOutReachesEachDeviceOnceAcrossGroupsAndNamedUsersPageByPage) {
  Tenant t = NewTenant();
  for (int i = 0; i < 25; ++i) {
    std::vector<std::string> groups = {"a"};
    if (i % 2 == 0) groups.emplace_back("b");
    Put(MakeUser(t.id, "u" + std::to_string(i),
                 {Dev(Channel::kIos, Token(i)),
                  Dev(Channel::kEmail, "u" + std::to_string(i) + "@example.com")},
                 groups));
  }
  Put(MakeUser(t.id, "loner", {Dev(Channel::kSms, "+14155550100")}));
  Notification n = CreateN(store(), t, {"a", "b"}, {"u1", "loner", "nobody"});
  std::vector<DeliveryJob> jobs = FanOutAll(store(), n.id, 4);
  EXPECT_EQ(jobs.size(), 51u);  // 25 users x 2 devices + the loner's phone
  std::set<int64_t> keys;
  for (const DeliveryJob& j : jobs) {
    keys.insert(j.delivery);
    EXPECT_EQ(j.deadline, n.deadline);
    EXPECT_EQ(j.priority, 10);
  }
  EXPECT_EQ(keys.size(), jobs.size());
  Notification got = GetN(store(), t, n.id);
  EXPECT_TRUE(got.fanout_done);
  EXPECT_EQ(got.deliveries, 51);
  EXPECT_EQ(Count(got, DeliveryStatus::kQueued), 51);
  EXPECT_EQ(got.status, NotificationStatus::kInProgress);
  // A finished fan-out adds nothing more.
  Result<FanoutPage> after = store().FanOutPage(n.id, 4);
  ASSERT_OK(after);
  EXPECT_TRUE(after->done);
  EXPECT_TRUE(after->jobs.empty());
  ASSERT_OK(store().ListUnfinishedFanouts());
  EXPECT_TRUE(store().ListUnfinishedFanouts()->empty());
}

// FanOutNext finds the work itself (no id is handed over): the unfinished fan-outs of every
// tenant take turns a page each until none is left.
TEST_P(StoreConformanceTest, FanOutNextTakesTurnsAcrossNotificationsAndReachesEachDeviceOnce) {
  Tenant t = NewTenant();
  Tenant other = NewTenant("Other");
  for (int i = 0; i < 30; ++i) {
    Put(MakeUser(t.id, "u" + std::to_string(i),
                 {Dev(Channel::kEmail, "u" + std::to_string(i) + "@example.com")}, {"g"}));
  }
  Put(MakeUser(other.id, "v", {Dev(Channel::kSms, "+14155550100")}, {"g"}));
  Notification big = CreateN(store(), t, {"g"});
  Notification small = CreateN(store(), other, {"g"});
  std::map<std::string, std::vector<DeliveryJob>> by_notification;
  std::vector<std::string> order;
  for (int i = 0; i < 1'000; ++i) {
    Result<FanoutPage> p = store().FanOutNext(5, {});
    if (!p.ok()) {
      EXPECT_EQ(p.error().code, "no_fanout_work") << ErrorText(p);
      break;
    }
    order.push_back(p->notification_id);
    auto& jobs = by_notification[p->notification_id];
    jobs.insert(jobs.end(), p->jobs.begin(), p->jobs.end());
  }
  ASSERT_EQ(by_notification.size(), 2u);
  std::set<int64_t> keys;
  for (const DeliveryJob& j : by_notification[big.id]) keys.insert(j.delivery);
  EXPECT_EQ(by_notification[big.id].size(), 30u);
  EXPECT_EQ(keys.size(), 30u);
  EXPECT_EQ(by_notification[small.id].size(), 1u);
  // The small send did not wait for the big one to finish.
  const auto first_small = std::find(order.begin(), order.end(), small.id);
  ASSERT_NE(first_small, order.end());
  EXPECT_LT(first_small - order.begin(), 3);
  EXPECT_TRUE(GetN(store(), t, big.id).fanout_done);
  EXPECT_TRUE(GetN(store(), other, small.id).fanout_done);
  EXPECT_ERROR(store().FanOutNext(5, {}), ErrorKind::kNotFound, "no_fanout_work");
}

// A page whose publish fails (a remote queue out of reach) leaves nothing behind, and the next
// call makes the same page again: no device is lost or reached twice by the fan-out.
TEST_P(StoreConformanceTest, APageWhosePublishFailsIsRolledBackAndMadeAgain) {
  Tenant t = NewTenant();
  for (int i = 0; i < 6; ++i) {
    Put(MakeUser(t.id, "u" + std::to_string(i), {Dev(Channel::kIos, Token(i))}, {"g"}));
  }
  Notification n = CreateN(store(), t, {"g"});
  size_t refused = 0;
  Result<FanoutPage> failed = store().FanOutNext(100, [&](const std::vector<DeliveryJob>& jobs) {
    refused = jobs.size();
    return Status(MakeError(ErrorKind::kUnavailable, "queue_unavailable", "test"));
  });
  EXPECT_ERROR(failed, ErrorKind::kUnavailable, "queue_unavailable");
  EXPECT_GT(refused, 0u);
  Notification none = GetN(store(), t, n.id);
  EXPECT_EQ(none.deliveries, 0);
  EXPECT_EQ(Count(none, DeliveryStatus::kQueued), 0);
  EXPECT_FALSE(none.fanout_done);
  std::vector<DeliveryJob> published;
  std::set<int64_t> keys;
  for (int i = 0; i < 100; ++i) {
    Result<FanoutPage> p = store().FanOutNext(100, [&](const std::vector<DeliveryJob>& jobs) {
      published.insert(published.end(), jobs.begin(), jobs.end());
      return Status::Ok();
    });
    if (!p.ok()) break;
    for (const DeliveryJob& j : p->jobs) keys.insert(j.delivery);
  }
  EXPECT_EQ(published.size(), 6u);
  EXPECT_EQ(keys.size(), 6u);
  Notification all = GetN(store(), t, n.id);
  EXPECT_EQ(all.deliveries, 6);
  EXPECT_EQ(Count(all, DeliveryStatus::kQueued), 6);
  EXPECT_TRUE(all.fanout_done);
}

// Callers on several threads (on PostgreSQL: several processes' fan-outs) share the work.
TEST_P(StoreConformanceTest, ConcurrentFanOutNextCallersReachEachDeviceExactlyOnce) {
  Tenant t = NewTenant();
  std::vector<User> users;
  users.reserve(120);
  for (int i = 0; i < 120; ++i) {
    users.push_back(MakeUser(t.id, "u" + std::to_string(i),
                             {Dev(Channel::kIos, Token(i)),
                              Dev(Channel::kEmail, "u" + std::to_string(i) + "@example.com")},
                             {i % 3 == 0 ? "a" : "b"}));
  }
  ASSERT_OK(store().PutUsers(t.id, users));
  Notification n1 = CreateN(store(), t, {"a", "b"});
  Notification n2 = CreateN(store(), t, {"b"});
  std::mutex mu;
  std::vector<DeliveryJob> all;
  std::atomic<int> errors{0};
  std::vector<std::thread> callers;
  callers.reserve(4);
  for (int k = 0; k < 4; ++k) {
    callers.emplace_back([&] {
      for (int idle = 0; idle < 3;) {
        Result<FanoutPage> p = store().FanOutNext(7, {});
        if (!p.ok()) {
          if (p.error().code != "no_fanout_work") errors.fetch_add(1);
          ++idle;  // every part may be held by another caller for a moment
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          continue;
        }
        idle = 0;
        std::lock_guard lock(mu);
        all.insert(all.end(), p->jobs.begin(), p->jobs.end());
      }
    });
  }
  for (std::thread& c : callers) c.join();
  EXPECT_EQ(errors.load(), 0);
  std::map<int64_t, int> per_notification;
  std::set<int64_t> keys;
  for (const DeliveryJob& j : all) {
    ++per_notification[j.notification];
    keys.insert(j.delivery);
  }
  EXPECT_EQ(all.size(), 240u + 160u);  // n1: 120 users x 2; n2: group b's 80 users x 2
  EXPECT_EQ(keys.size(), all.size());
  EXPECT_TRUE(GetN(store(), t, n1.id).fanout_done);
  EXPECT_EQ(GetN(store(), t, n1.id).deliveries, 240);
  EXPECT_EQ(GetN(store(), t, n2.id).deliveries, 160);
}

TEST_P(StoreConformanceTest, FanOutFiltersChannelsAndLeavesOutDisabledDevicesAndExpiredUsers) {
  Tenant t = NewTenant();
  Put(MakeUser(t.id, "a", {Dev(Channel::kIos, Token(1)), Dev(Channel::kSms, "+14155550101")},
               {"g"}));
  User gone = MakeUser(t.id, "gone", {Dev(Channel::kIos, Token(2))}, {"g"});
  gone.consent_until = Now() + 50;
  Put(gone);
  Advance(80);  // past gone's consent, on the store's clock
  Notification n;
  n.tenant_id = t.id;
  n.body = "b";
  n.to_groups = {"g"};
  n.channels = {Channel::kIos};
  n.accepted_at = NowMillis();
  n.deadline = n.accepted_at + 600'000;
  Result<CreatedNotification> c = store().CreateNotification(n);
  ASSERT_OK(c);
  std::vector<DeliveryJob> jobs = FanOutAll(store(), c->notification.id, 100);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].channel, Channel::kIos);
}

TEST_P(StoreConformanceTest, DispatchTargetsTellWhatMayBeSentAndWhyNot) {
  Tenant t = NewTenant();
  Put(MakeUser(t.id, "ok", {Dev(Channel::kIos, Token(1))}, {"g"}));
  Put(MakeUser(t.id, "out", {Dev(Channel::kIos, Token(2))}, {"g"}));
  PutUserOutcome nodev = Put(MakeUser(t.id, "nodev", {Dev(Channel::kIos, Token(3))}, {"g"}));
  Notification n = CreateN(store(), t, {"g"});
  std::vector<DeliveryJob> jobs = FanOutAll(store(), n.id, 100);
  ASSERT_EQ(jobs.size(), 3u);
  User out = MakeUser(t.id, "out", {Dev(Channel::kIos, Token(2))}, {"g"});
  out.opt_in = false;
  Put(out);
  ASSERT_OK(store().RemoveDevice(t.id, "nodev", nodev.user.devices[0].id));
  Result<std::vector<DispatchTarget>> targets = store().LoadDispatchTargets(jobs);
  ASSERT_OK(targets);
  ASSERT_EQ(targets->size(), 3u);
  std::map<std::string, const DispatchTarget*> by_user;
  for (const DispatchTarget& d : *targets) by_user[d.external_id] = &d;
  EXPECT_EQ(by_user["ok"]->suppress_reason, "");
  EXPECT_EQ(by_user["ok"]->address, Token(1));
  EXPECT_EQ(by_user["ok"]->title, "Title");
  EXPECT_EQ(by_user["ok"]->body, "Body");
  EXPECT_EQ(by_user["ok"]->notification_id, n.id);
  EXPECT_EQ(by_user["ok"]->tenant_id, t.id);
  EXPECT_EQ(by_user["out"]->suppress_reason, "opted_out");
  EXPECT_EQ(by_user["out"]->address, "");  // no plaintext for what must not be sent
  EXPECT_EQ(by_user["nodev"]->suppress_reason, "device_gone");
  ASSERT_OK(store().DeleteUser(t.id, "ok"));
  targets = store().LoadDispatchTargets(jobs);
  ASSERT_OK(targets);
  for (const DispatchTarget& d : *targets) {
    if (d.external_id == "ok") {
      EXPECT_EQ(d.suppress_reason, "user_gone");
    }
  }
}

TEST_P(StoreConformanceTest, DispatchTargetsAreExactlyTheJobsAskedForNeighboursOrNot) {
  Tenant t = NewTenant();
  for (int i = 0; i < 40; ++i) {
    Put(MakeUser(t.id, "u" + std::to_string(i), {Dev(Channel::kIos, Token(100 + i))}, {"g"}));
  }
  Notification n = CreateN(store(), t, {"g"});
  std::vector<DeliveryJob> jobs = FanOutAll(store(), n.id, 100);
  ASSERT_EQ(jobs.size(), 40u);
  std::sort(jobs.begin(), jobs.end(),
            [](const DeliveryJob& a, const DeliveryJob& b) { return a.delivery < b.delivery; });
  const auto ask = [&](const std::vector<DeliveryJob>& asked) {
    Result<std::vector<DispatchTarget>> targets = store().LoadDispatchTargets(asked);
    EXPECT_TRUE(targets.ok());
    std::set<int64_t> got;
    for (const DispatchTarget& d : *targets) {
      EXPECT_TRUE(got.insert(d.delivery).second) << "twice: " << d.delivery;
      EXPECT_EQ(d.address.size(), 64u);
    }
    return got;
  };
  // Every other one of neighbours: the ones in between are not asked for and not returned.
  std::vector<DeliveryJob> alternate;
  std::set<int64_t> want;
  for (size_t i = 0; i < jobs.size(); i += 2) {
    alternate.push_back(jobs[i]);
    want.insert(jobs[i].delivery);
  }
  EXPECT_EQ(ask(alternate), want);
  // Far apart (and one that does not exist): each found on its own.
  DeliveryJob missing = jobs[0];
  missing.delivery = jobs.back().delivery + 1'000'000;
  EXPECT_EQ(ask({jobs.front(), jobs.back(), missing}),
            (std::set<int64_t>{jobs.front().delivery, jobs.back().delivery}));
  // The same job twice is one target.
  EXPECT_EQ(ask({jobs[3], jobs[3]}), std::set<int64_t>{jobs[3].delivery});
}

TEST_P(StoreConformanceTest, UpdatesMoveStatusesAppendEventsAndCompleteTheNotification) {
  Tenant t = NewTenant();
  PutUserOutcome u = Put(MakeUser(
      t.id, "u", {Dev(Channel::kIos, Token(1)), Dev(Channel::kSms, "+14155550102")}, {"g"}));
  Notification n = CreateN(store(), t, {"g"});
  std::vector<DeliveryJob> jobs = FanOutAll(store(), n.id, 100);
  ASSERT_EQ(jobs.size(), 2u);
  const UnixMillis now = NowMillis();
  store().RecordDeliveryUpdates(
      {{jobs[0].delivery, DeliveryStatus::kDispatched, now, "", 1, "", "", false},
       {jobs[0].delivery, DeliveryStatus::kSent, now + 1, "apns", 1, "", "apns-id-1", false},
       {jobs[1].delivery, DeliveryStatus::kDispatched, now, "", 1, "", "", false},
       {jobs[1].delivery, DeliveryStatus::kFailed, now + 2, "twilio", 1, "invalid_address", "",
        true}});
  Notification got = GetN(store(), t, n.id);
  EXPECT_EQ(got.status, NotificationStatus::kCompleted);
  EXPECT_EQ(Count(got, DeliveryStatus::kSent), 1);
  EXPECT_EQ(Count(got, DeliveryStatus::kFailed), 1);
  EXPECT_GE(got.completed_at, now + 2);
  // invalid_address disabled the device.
  Result<User> user = store().GetUser(t.id, "u");
  ASSERT_OK(user);
  for (const Device& d : user->devices) EXPECT_EQ(d.disabled, d.channel == Channel::kSms);
  // Deliveries page in creation order and filter by status.
  Result<Page<Delivery>> page = store().ListDeliveries(t.id, n.id, std::nullopt, {"", 1});
  ASSERT_OK(page);
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->items[0].status, DeliveryStatus::kSent);
  EXPECT_EQ(page->items[0].provider_message_id, "apns-id-1");
  EXPECT_EQ(page->items[0].device_id, u.user.devices[0].id);
  Result<Page<Delivery>> next =
      store().ListDeliveries(t.id, n.id, std::nullopt, {page->next_cursor, 1});
  ASSERT_OK(next);
  ASSERT_EQ(next->items.size(), 1u);
  EXPECT_EQ(next->items[0].reason, "invalid_address");
  Result<Page<Delivery>> failed =
      store().ListDeliveries(t.id, n.id, DeliveryStatus::kFailed, PageRequest{});
  ASSERT_OK(failed);
  ASSERT_EQ(failed->items.size(), 1u);
  EXPECT_EQ(failed->items[0].provider, "twilio");
  // The user's timeline, newest first: 2 × (queued, dispatched, outcome).
  Result<Page<DeliveryEvent>> events = store().ListUserEvents(t.id, "u", {"", 4});
  ASSERT_OK(events);
  ASSERT_EQ(events->items.size(), 4u);
  EXPECT_FALSE(events->next_cursor.empty());
  EXPECT_GT(events->items[0].seq, events->items[3].seq);
  Result<Page<DeliveryEvent>> rest = store().ListUserEvents(t.id, "u", {events->next_cursor, 4});
  ASSERT_OK(rest);
  EXPECT_EQ(rest->items.size(), 2u);
  EXPECT_EQ(rest->items.back().stage, DeliveryStatus::kQueued);
  EXPECT_ERROR(store().ListUserEvents(t.id, "nobody", PageRequest{}), ErrorKind::kNotFound,
               "user_not_found");
  // Nothing is left to re-queue after a restart.
  Result<std::vector<DeliveryJob>> unfinished = store().ListUnfinishedDeliveries(0, 100);
  ASSERT_OK(unfinished);
  EXPECT_TRUE(unfinished->empty());
}

TEST_P(StoreConformanceTest, ABigBatchOfUpdatesKeepsEachDeliverysEventsInOrder) {
  // 37 deliveries (no power of two), each changed twice in one batch: a retry, then the send of
  // the second attempt, both carrying their dispatched event; a delivery's two changes are
  // spread apart and the second round runs in reverse order.
  Tenant t = NewTenant();
  constexpr int kUsers = 37;
  for (int i = 0; i < kUsers; ++i) {
    Put(MakeUser(t.id, "b" + std::to_string(i), {Dev(Channel::kIos, Token(i))}, {"g"}));
  }
  Notification n = CreateN(store(), t, {"g"});
  std::vector<DeliveryJob> jobs = FanOutAll(store(), n.id, 10);
  ASSERT_EQ(jobs.size(), static_cast<size_t>(kUsers));
  const UnixMillis now = NowMillis();
  std::vector<DeliveryUpdate> updates;
  for (const DeliveryJob& j : jobs) {
    DeliveryUpdate u{j.delivery, DeliveryStatus::kRetrying, now + 1, "apns", 1, "retry: 503", "",
                     false};
    u.dispatched_at = now;
    updates.push_back(u);
  }
  for (auto it = jobs.rbegin(); it != jobs.rend(); ++it) {
    DeliveryUpdate u{it->delivery,
                     DeliveryStatus::kSent,
                     now + 3,
                     "apns",
                     2,
                     "",
                     "id-" + std::to_string(it->delivery),
                     false};
    u.dispatched_at = now + 2;
    updates.push_back(u);
  }
  store().RecordDeliveryUpdates(std::move(updates));
  Notification got = GetN(store(), t, n.id);
  EXPECT_EQ(got.status, NotificationStatus::kCompleted);
  EXPECT_EQ(Count(got, DeliveryStatus::kSent), kUsers);
  Result<Page<Delivery>> sent =
      store().ListDeliveries(t.id, n.id, DeliveryStatus::kSent, {"", 100});
  ASSERT_OK(sent);
  ASSERT_EQ(sent->items.size(), static_cast<size_t>(kUsers));
  for (const Delivery& d : sent->items) {
    EXPECT_EQ(d.attempts, 2);
    EXPECT_EQ(d.provider, "apns");
    EXPECT_EQ(d.provider_message_id, "id-" + std::to_string(*DeliveryKeyOf(d.id)));
  }
  for (int i = 0; i < kUsers; ++i) {
    Result<Page<DeliveryEvent>> events =
        store().ListUserEvents(t.id, "b" + std::to_string(i), {"", 10});
    ASSERT_OK(events);
    std::vector<DeliveryStatus> stages;
    std::vector<int> attempts;
    for (auto it = events->items.rbegin(); it != events->items.rend(); ++it) {  // oldest first
      stages.push_back(it->stage);
      attempts.push_back(it->attempt);
    }
    EXPECT_EQ(stages,
              (std::vector<DeliveryStatus>{DeliveryStatus::kQueued, DeliveryStatus::kDispatched,
                                           DeliveryStatus::kRetrying, DeliveryStatus::kDispatched,
                                           DeliveryStatus::kSent}))
        << "user b" << i;
    EXPECT_EQ(attempts, (std::vector<int>{0, 1, 1, 2, 2})) << "user b" << i;
  }
}

TEST_P(StoreConformanceTest, EventsSinceListATenantsEventsInOrderPageByPage) {
  Tenant a = NewTenant("A");
  Tenant b = NewTenant("B");
  Put(MakeUser(a.id, "a1", {Dev(Channel::kIos, Token(1)), Dev(Channel::kEmail, "a1@x.org")},
               {"g"}));
  Put(MakeUser(b.id, "b1", {Dev(Channel::kIos, Token(2))}, {"g"}));
  Notification na = CreateN(store(), a, {"g"});
  Notification nb = CreateN(store(), b, {"g"});
  std::vector<DeliveryJob> ja = FanOutAll(store(), na.id, 100);
  std::vector<DeliveryJob> jb = FanOutAll(store(), nb.id, 100);
  ASSERT_EQ(ja.size(), 2u);
  ASSERT_EQ(jb.size(), 1u);
  const UnixMillis now = NowMillis();
  DeliveryUpdate sent{ja[0].delivery, DeliveryStatus::kSent, now + 1, "apns", 1, "", "m-1", false};
  sent.dispatched_at = now;
  store().RecordDeliveryUpdates({sent});
  store().RecordDeliveryUpdates(
      {{jb[0].delivery, DeliveryStatus::kSent, now + 1, "apns", 1, "", "m-2", false}});
  ASSERT_OK(store().Flush());

  // A's first three events (of four: two queued, a dispatched and a sent; none of B's), in seq
  // order.
  Result<std::vector<DeliveryEvent>> all = store().ListEventsSince(a.id, 0, 3);
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 3u);
  for (size_t i = 1; i < all->size(); ++i) EXPECT_GT((*all)[i].seq, (*all)[i - 1].seq);
  EXPECT_EQ((*all)[0].stage, DeliveryStatus::kQueued);
  EXPECT_EQ((*all)[1].stage, DeliveryStatus::kQueued);
  EXPECT_EQ((*all)[2].stage, DeliveryStatus::kDispatched);
  for (const DeliveryEvent& e : *all) {
    EXPECT_EQ(e.notification_id, na.id);
    EXPECT_EQ(e.external_id, "a1");
    EXPECT_FALSE(e.device_id.empty());
  }
  // The sent event, written with its dispatched one in the same batch.
  Result<std::vector<DeliveryEvent>> rest = store().ListEventsSince(a.id, (*all)[2].seq, 100);
  ASSERT_OK(rest);
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ((*rest)[0].stage, DeliveryStatus::kSent);
  EXPECT_EQ((*rest)[0].provider, "apns");
  EXPECT_EQ((*rest)[0].delivery_id, (*all)[2].delivery_id);
  // Page by page from 0: the same events, none twice.
  std::vector<int64_t> seen;
  for (int64_t after = 0;;) {
    Result<std::vector<DeliveryEvent>> page = store().ListEventsSince(a.id, after, 1);
    ASSERT_OK(page);
    if (page->empty()) break;
    ASSERT_EQ(page->size(), 1u);
    seen.push_back(page->front().seq);
    after = page->front().seq;
  }
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen.back(), (*rest)[0].seq);
  // B sees only its own; an unknown tenant is refused.
  Result<std::vector<DeliveryEvent>> of_b = store().ListEventsSince(b.id, 0, 100);
  ASSERT_OK(of_b);
  ASSERT_EQ(of_b->size(), 2u);
  EXPECT_EQ(of_b->back().external_id, "b1");
  EXPECT_ERROR(store().ListEventsSince("ten_nobody", 0, 10), ErrorKind::kNotFound,
               "tenant_not_found");
}

// A reader that follows a tenant's events while several threads record them misses none and
// sees none twice: seq grows in commit order within a tenant, whoever writes.
TEST_P(StoreConformanceTest, AReaderFollowingEventsWhileTheyAreWrittenMissesNone) {
  Tenant t = NewTenant();
  constexpr int kUsers = 120;
  for (int i = 0; i < kUsers; ++i) {
    Put(MakeUser(t.id, "f" + std::to_string(i), {Dev(Channel::kIos, Token(i))}, {"g"}));
  }
  Notification n = CreateN(store(), t, {"g"});
  std::vector<DeliveryJob> jobs = FanOutAll(store(), n.id, 7);
  ASSERT_EQ(jobs.size(), static_cast<size_t>(kUsers));
  std::atomic<bool> writing{true};
  std::vector<int64_t> followed;
  std::thread reader([&] {
    int64_t after = 0;
    for (bool last_round = false;;) {
      Result<std::vector<DeliveryEvent>> page = store().ListEventsSince(t.id, after, 50);
      if (!page.ok()) {
        ADD_FAILURE() << ErrorText(page);
        return;
      }
      for (const DeliveryEvent& e : *page) followed.push_back(e.seq);
      if (!page->empty()) after = page->back().seq;
      if (page->empty() && last_round) return;
      if (page->empty() && !writing) last_round = true;
      if (page->empty()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  // Four writers at once, each recording its share one delivery at a time: on a store with
  // several writer connections their commits interleave.
  std::vector<std::thread> writers;
  writers.reserve(4);
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (size_t i = static_cast<size_t>(w); i < jobs.size(); i += 4) {
        DeliveryUpdate u{jobs[i].delivery,
                         DeliveryStatus::kSent,
                         NowMillis(),
                         "apns",
                         1,
                         "",
                         "m-" + std::to_string(i),
                         false};
        u.dispatched_at = u.at;
        store().RecordDeliveryUpdates({u});
      }
    });
  }
  for (std::thread& w : writers) w.join();
  ASSERT_OK(store().Flush());
  writing = false;
  reader.join();
  Result<std::vector<DeliveryEvent>> stored = store().ListEventsSince(t.id, 0, 1000);
  ASSERT_OK(stored);
  ASSERT_EQ(stored->size(), static_cast<size_t>(3 * kUsers));
  std::vector<int64_t> expected;
  for (const DeliveryEvent& e : *stored) expected.push_back(e.seq);
  EXPECT_EQ(followed, expected) << "the follower missed or repeated events";
}

TEST_P(StoreConformanceTest, RecordedUpdatesSayWhenTheyAreDurable) {
  Tenant t = NewTenant();
  Put(MakeUser(t.id, "d", {Dev(Channel::kIos, Token(1))}, {"g"}));
  Notification n = CreateN(store(), t, {"g"});
  std::vector<DeliveryJob> jobs = FanOutAll(store(), n.id, 100);
  ASSERT_EQ(jobs.size(), 1u);
  std::promise<bool> durable;
  store().RecordDeliveryUpdates(
      {{jobs[0].delivery, DeliveryStatus::kSent, NowMillis(), "apns", 1, "", "x", false}},
      [&](bool committed) { durable.set_value(committed); });
  std::future<bool> committed = durable.get_future();
  ASSERT_EQ(committed.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_TRUE(committed.get());
  // No Flush: what was announced durable is there for every reader.
  Result<Notification> got = store().GetNotification(t.id, n.id);
  ASSERT_OK(got);
  EXPECT_EQ(Count(*got, DeliveryStatus::kSent), 1);
  std::promise<void> empty;
  store().RecordDeliveryUpdates({}, [&](bool) { empty.set_value(); });  // nothing to write: at once
  EXPECT_EQ(empty.get_future().wait_for(std::chrono::seconds(1)), std::future_status::ready);
}

TEST_P(StoreConformanceTest, CancelStopsQueuedDeliveriesAndTheFanOut) {
  Tenant t = NewTenant();
  for (int i = 0; i < 10; ++i) {
    Put(MakeUser(t.id, "c" + std::to_string(i), {Dev(Channel::kIos, Token(i))}, {"g"}));
  }
  Notification n = CreateN(store(), t, {"g"});
  Result<FanoutPage> first = store().FanOutPage(n.id, 4);
  ASSERT_OK(first);
  ASSERT_EQ(first->jobs.size(), 4u);
  store().RecordDeliveryUpdates(
      {{first->jobs[0].delivery, DeliveryStatus::kSent, NowMillis(), "apns", 1, "", "x", false}});
  ASSERT_OK(store().Flush());
  Result<std::vector<std::string>> unfinished = store().ListUnfinishedFanouts();
  ASSERT_OK(unfinished);
  EXPECT_EQ(*unfinished, std::vector<std::string>{n.id});
  Result<int64_t> cancelled = store().CancelNotification(t.id, n.id);
  ASSERT_OK(cancelled);
  EXPECT_EQ(*cancelled, 3);  // the sent one stays sent
  Result<FanoutPage> after = store().FanOutPage(n.id, 4);
  ASSERT_OK(after);
  EXPECT_TRUE(after->done);
  EXPECT_TRUE(after->jobs.empty());
  Notification got = GetN(store(), t, n.id);
  EXPECT_EQ(got.status, NotificationStatus::kCancelled);
  EXPECT_EQ(Count(got, DeliveryStatus::kCancelled), 3);
  EXPECT_EQ(Count(got, DeliveryStatus::kSent), 1);
  // A cancelled delivery is not moved back to dispatched.
  store().RecordDeliveryUpdates(
      {{first->jobs[1].delivery, DeliveryStatus::kDispatched, NowMillis(), "", 1, "", "", false}});
  EXPECT_EQ(Count(GetN(store(), t, n.id), DeliveryStatus::kCancelled), 3);
  Tenant other = NewTenant("Other");
  EXPECT_ERROR(store().CancelNotification(other.id, n.id), ErrorKind::kNotFound,
               "notification_not_found");
}

TEST_P(StoreConformanceTest, UnfinishedDeliveriesAreListedForARestart) {
  Tenant t = NewTenant();
  for (int i = 0; i < 6; ++i) {
    Put(MakeUser(t.id, "r" + std::to_string(i), {Dev(Channel::kIos, Token(i))}, {"g"}));
  }
  Notification n = CreateN(store(), t, {"g"});
  std::vector<DeliveryJob> jobs = FanOutAll(store(), n.id, 100);
  ASSERT_EQ(jobs.size(), 6u);
  store().RecordDeliveryUpdates(
      {{jobs[0].delivery, DeliveryStatus::kSent, NowMillis(), "apns", 1, "", "x", false},
       {jobs[1].delivery, DeliveryStatus::kDispatched, NowMillis(), "", 1, "", "", false},
       {jobs[2].delivery, DeliveryStatus::kRetrying, NowMillis(), "apns", 2, "retry", "", false}});
  ASSERT_OK(store().Flush());
  std::vector<int64_t> keys;
  for (int64_t after = 0;;) {
    Result<std::vector<DeliveryJob>> page = store().ListUnfinishedDeliveries(after, 2);
    ASSERT_OK(page);
    if (page->empty()) break;
    for (const DeliveryJob& j : *page) keys.push_back(j.delivery);
    after = page->back().delivery;
  }
  EXPECT_EQ(keys.size(), 5u);  // all but the sent one, dispatched included
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  EXPECT_EQ(std::count(keys.begin(), keys.end(), jobs[0].delivery), 0);
}

TEST_P(StoreConformanceTest, ReceiptsMoveOnlyTheTenantsOwnSentDeliveriesAndNeverBackwards) {
  Tenant t = NewTenant();
  Put(MakeUser(t.id, "s", {Dev(Channel::kSms, "+14155550103")}, {"g"}));
  Notification n = CreateN(store(), t, {"g"});
  std::vector<DeliveryJob> jobs = FanOutAll(store(), n.id, 100);
  ASSERT_EQ(jobs.size(), 1u);
  store().RecordDeliveryUpdates(
      {{jobs[0].delivery, DeliveryStatus::kSent, NowMillis(), "twilio", 1, "", "SM123", false}});
  ASSERT_OK(store().Flush());
  Tenant other = NewTenant("Other");
  EXPECT_ERROR(store().RecordReceipt(other.id, "twilio", "SM123", DeliveryStatus::kDelivered, ""),
               ErrorKind::kNotFound, "delivery_not_found");
  EXPECT_ERROR(store().RecordReceipt(t.id, "vonage", "SM123", DeliveryStatus::kDelivered, ""),
               ErrorKind::kNotFound, "delivery_not_found");
  Result<ReceiptOutcome> applied =
      store().RecordReceipt(t.id, "twilio", "SM123", DeliveryStatus::kDelivered, "");
  ASSERT_OK(applied);
  EXPECT_EQ(*applied, ReceiptOutcome::kApplied);
  EXPECT_EQ(Count(GetN(store(), t, n.id), DeliveryStatus::kDelivered), 1);

  // Never backwards: the same receipt again (a replay, or the provider retrying) is a duplicate,
  // a later `failed` for the delivered one is stale, and neither writes anything.
  auto again = [&](DeliveryStatus stage) {
    Result<ReceiptOutcome> r = store().RecordReceipt(t.id, "twilio", "SM123", stage, "30003");
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : ReceiptOutcome::kApplied;
  };
  EXPECT_EQ(again(DeliveryStatus::kDelivered), ReceiptOutcome::kDuplicate);
  EXPECT_EQ(again(DeliveryStatus::kFailed), ReceiptOutcome::kStale);
  const Notification after = GetN(store(), t, n.id);
  EXPECT_EQ(Count(after, DeliveryStatus::kDelivered), 1);
  EXPECT_EQ(Count(after, DeliveryStatus::kFailed), 0);
  Result<Page<DeliveryEvent>> events = store().ListUserEvents(t.id, "s", PageRequest{});
  ASSERT_OK(events);
  int receipt_events = 0;
  for (const DeliveryEvent& e : events->items) {
    receipt_events += e.stage == DeliveryStatus::kFailed || e.stage == DeliveryStatus::kDelivered;
  }
  EXPECT_EQ(receipt_events, 1) << "refused receipts wrote no event";
}

TEST_P(StoreConformanceTest, MissingGroupsNamesOnlyKeysWithoutAGroup) {
  Tenant t = NewTenant();
  ASSERT_OK(store().PutGroup(Group{t.id, "there", "", 0, 0}));
  Tenant other = NewTenant("Other");
  ASSERT_OK(store().PutGroup(Group{other.id, "theirs", "", 0, 0}));
  Result<std::vector<std::string>> missing =
      store().MissingGroups(t.id, {"there", "theirs", "nowhere"});
  ASSERT_OK(missing);
  EXPECT_EQ(*missing, (std::vector<std::string>{"theirs", "nowhere"}));
}

}  // namespace
}  // namespace herald::store_test

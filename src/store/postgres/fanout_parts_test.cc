// Fan-out parts on PostgreSQL (schema version 4): a large audience is split into ranges of user
// keys that callers work on at once, and a part whose caller died is the next caller's.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/postgres/postgres_store.h"
#include "store/postgres/test_sql.h"
#include "testing/pg_test_server.h"

namespace herald {
namespace {

using pgtest::RunSql;

class PostgresFanoutPartsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(crypto::InitCrypto());
    pgtest::PgTestServer* pg = pgtest::PgTestServer::Shared();
    ASSERT_NE(pg, nullptr);
    PostgresStoreOptions options;
    options.uri = pg->FreshSchemaUri("fanout_parts");
    options.master_key = crypto::RandomKey();
    options.fanout_part_users = 10;
    options.fanout_max_parts = 4;
    uri_ = options.uri;
    Result<std::unique_ptr<Store>> opened = OpenPostgresStore(options);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(*opened);
    Tenant t;
    t.name = "Parts";
    Result<Tenant> tenant = store_->CreateTenant(t);
    ASSERT_TRUE(tenant.ok());
    tenant_id_ = tenant->id;
    std::vector<User> users;
    for (int i = 0; i < 100; ++i) {
      User u;
      u.tenant_id = tenant_id_;
      u.external_id = "u" + std::to_string(i);
      u.consent_from = NowMillis() - 1000;
      u.consent_until = NowMillis() + 86'400'000;
      u.devices = {Device{"", Channel::kEmail, u.external_id + "@example.com"}};
      u.groups = {"g"};
      users.push_back(std::move(u));
    }
    ASSERT_TRUE(store_->PutUsers(tenant_id_, users).ok());
    Notification n;
    n.tenant_id = tenant_id_;
    n.title = "T";
    n.body = "B";
    n.to_groups = {"g"};
    n.accepted_at = NowMillis();
    n.deadline = n.accepted_at + 600'000;
    n.request_hash = "h";
    Result<CreatedNotification> created = store_->CreateNotification(n);
    ASSERT_TRUE(created.ok());
    notification_id_ = created->notification.id;
  }

  // Pages until nothing is left; returns the delivery keys they created.
  std::vector<int64_t> Drain() {
    std::vector<int64_t> keys;
    for (int i = 0; i < 1'000; ++i) {
      Result<FanoutPage> page = store_->FanOutNext(7, {});
      if (!page.ok()) {
        EXPECT_EQ(page.error().code, "no_fanout_work");
        break;
      }
      for (const DeliveryJob& job : page->jobs) keys.push_back(job.delivery);
    }
    return keys;
  }

  std::string uri_;
  std::unique_ptr<Store> store_;
  std::string tenant_id_;
  std::string notification_id_;
};

// While one caller's page is open (its part locked), another caller gets a page of the same
// notification from another part, instead of waiting or finding nothing.
TEST_F(PostgresFanoutPartsTest, TwoCallersFanOutOneNotificationAtOnce) {
  std::promise<void> second_done;
  std::future<void> second_done_future = second_done.get_future();
  std::atomic<bool> first_in_page{false};
  std::vector<int64_t> first_keys;
  std::thread first([&] {
    Result<FanoutPage> page = store_->FanOutNext(7, [&](const std::vector<DeliveryJob>&) {
      first_in_page = true;
      // Held open until the other caller has made a page of its own.
      second_done_future.wait_for(std::chrono::seconds(10));
      return Status::Ok();
    });
    ASSERT_TRUE(page.ok()) << page.error().message;
    for (const DeliveryJob& job : page->jobs) first_keys.push_back(job.delivery);
  });
  while (!first_in_page.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // The first page split the audience (100 members / 10 a part, at most 4 parts).
  PGconn* conn = PQconnectdb(uri_.c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  const auto started = std::chrono::steady_clock::now();
  Result<FanoutPage> second = store_->FanOutNext(7, {});
  const auto waited = std::chrono::steady_clock::now() - started;
  second_done.set_value();
  first.join();
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second->notification_id, notification_id_);
  EXPECT_FALSE(second->jobs.empty());
  EXPECT_LT(waited, std::chrono::seconds(2));
  std::string parts;
  ASSERT_TRUE(RunSql(conn, "SELECT fanout_parts FROM notifications", &parts));
  EXPECT_EQ(parts, "4");
  PQfinish(conn);

  std::vector<int64_t> keys = Drain();
  keys.insert(keys.end(), first_keys.begin(), first_keys.end());
  for (const DeliveryJob& job : second->jobs) keys.push_back(job.delivery);
  EXPECT_EQ(keys.size(), 100u);
  EXPECT_EQ(std::set<int64_t>(keys.begin(), keys.end()).size(), 100u);
  Result<Notification> n = store_->GetNotification(tenant_id_, notification_id_);
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(n->fanout_done);
  EXPECT_EQ(n->deliveries, 100);
}

// A caller that dies with a part locked (its connection gone mid-transaction, as when its
// process is killed) leaves the part to the next caller, which redoes the page once.
TEST_F(PostgresFanoutPartsTest, APartWhoseCallerDiedIsTakenByTheNext) {
  PGconn* dying = PQconnectdb(uri_.c_str());
  ASSERT_EQ(PQstatus(dying), CONNECTION_OK) << PQerrorMessage(dying);
  ASSERT_TRUE(RunSql(dying, "BEGIN; SELECT 1 FROM fanout_parts FOR UPDATE"));
  // While it holds the only part, nobody else can fan out (and nobody waits for it).
  Result<FanoutPage> blocked = store_->FanOutNext(7, {});
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.error().code, "no_fanout_work");
  PQfinish(dying);  // the "process" dies: the server ends its transaction
  std::vector<int64_t> keys;
  for (int i = 0; i < 100 && keys.empty(); ++i) {
    keys = Drain();
    if (keys.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(keys.size(), 100u);
  EXPECT_EQ(std::set<int64_t>(keys.begin(), keys.end()).size(), 100u);
}

}  // namespace
}  // namespace herald

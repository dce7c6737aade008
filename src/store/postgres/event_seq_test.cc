// Event numbers on PostgreSQL (EventSeqSql in delivery_store.cc): while a transaction that took a
// lower number has not ended, ListEventsSince shows no higher number, so a reader that resumes
// after the highest number it saw never skips one that commits later. The test plays that slow
// transaction itself, with libpq, to hold the window open; the store's writer is not held up.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "store/postgres/postgres_store.h"
#include "store/postgres/test_sql.h"
#include "testing/pg_test_server.h"

namespace herald {
namespace {

using pgtest::RunSql;

TEST(PostgresEventSeqTest, NoHigherNumberIsListedWhileALowerOneMayStillCommit) {
  ASSERT_TRUE(crypto::InitCrypto());
  pgtest::PgTestServer* pg = pgtest::PgTestServer::Shared();
  ASSERT_NE(pg, nullptr);
  PostgresStoreOptions options;
  options.uri = pg->FreshSchemaUri("event_seq");
  options.master_key = crypto::RandomKey();
  Result<std::unique_ptr<Store>> opened = OpenPostgresStore(options);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  Store& store = **opened;
  Tenant t;
  t.name = "Seq";
  Result<Tenant> tenant = store.CreateTenant(t);
  ASSERT_TRUE(tenant.ok());
  User u;
  u.tenant_id = tenant->id;
  u.external_id = "u";
  u.consent_from = NowMillis() - 1000;
  u.consent_until = NowMillis() + 86'400'000;
  u.devices = {Device{"", Channel::kIos, std::string(64, 'a')}};
  u.groups = {"g"};
  ASSERT_TRUE(store.PutUser(u, std::nullopt).ok());
  Notification n;
  n.tenant_id = tenant->id;
  n.title = "T";
  n.body = "B";
  n.to_groups = {"g"};
  n.accepted_at = NowMillis();
  n.deadline = n.accepted_at + 600'000;
  n.request_hash = "h";
  Result<CreatedNotification> created = store.CreateNotification(n);
  ASSERT_TRUE(created.ok());
  Result<FanoutPage> page = store.FanOutPage(created->notification.id, 100);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->jobs.size(), 1u);
  const int64_t delivery = page->jobs[0].delivery;
  Result<std::vector<DeliveryEvent>> before = store.ListEventsSince(tenant->id, 0, 100);
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(before->size(), 1u);  // queued
  const int64_t queued_seq = before->front().seq;

  // Another writer's transaction writes an event and has not committed yet.
  PGconn* other = PQconnectdb(options.uri.c_str());
  ASSERT_EQ(PQstatus(other), CONNECTION_OK) << PQerrorMessage(other);
  const std::string tenant_pk = "(SELECT pk FROM tenants WHERE id = '" + tenant->id + "')";
  std::string held;
  ASSERT_TRUE(RunSql(other, "BEGIN"));
  ASSERT_TRUE(RunSql(other,
                     "INSERT INTO delivery_events (tenant_pk, delivery_pk, seq, at, stage, "
                     "attempt, provider, reason) VALUES (" +
                         tenant_pk + ", " + std::to_string(delivery) +
                         ", (pg_current_xact_id()::text::bigint << 20) + 1, 0, 1, 1, '', "
                         "'held') RETURNING seq",
                     &held));

  // The store records the delivery's outcome meanwhile (not held up: it commits), but a reader
  // is not shown it before the open transaction has ended.
  std::promise<void> durable;
  std::future<void> written = durable.get_future();
  DeliveryUpdate sent{delivery, DeliveryStatus::kSent, NowMillis(), "apns", 1, "", "m", false};
  sent.dispatched_at = sent.at;
  store.RecordDeliveryUpdates({sent}, [&](bool) { durable.set_value(); });
  ASSERT_EQ(written.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  Result<std::vector<DeliveryEvent>> during = store.ListEventsSince(tenant->id, queued_seq, 100);
  ASSERT_TRUE(during.ok());
  EXPECT_TRUE(during->empty()) << "a reader saw an event past a number that may still commit";

  ASSERT_TRUE(RunSql(other, "COMMIT"));
  PQfinish(other);
  Result<std::vector<DeliveryEvent>> after = store.ListEventsSince(tenant->id, queued_seq, 100);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 3u);
  EXPECT_EQ(std::to_string(after->at(0).seq), held);
  EXPECT_EQ(after->at(0).reason, "held");
  EXPECT_GT(after->at(1).seq, after->at(0).seq);
  EXPECT_EQ(after->at(1).stage, DeliveryStatus::kDispatched);
  EXPECT_EQ(after->at(2).stage, DeliveryStatus::kSent);
}

}  // namespace
}  // namespace herald

// Schema version 3 on a database of version 2: the receipt look-up moves from an index on
// deliveries to delivery_receipts (back-filled), the restart sweep finds the open deliveries
// without the partial index on status, and the deliveries' partitions leave room for HOT
// updates. The version-2 database is made from a current one by undoing version 3 (the tables
// are otherwise the same), so the test needs no old binary.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <string>

#include "store/postgres/postgres_store.h"
#include "store/postgres/test_sql.h"
#include "testing/pg_test_server.h"

namespace herald {
namespace {

using pgtest::RunSql;

TEST(PostgresSchemaTest, VersionTwoUpgradesKeepingReceiptsAndOpenDeliveriesFindable) {
  ASSERT_TRUE(crypto::InitCrypto());
  pgtest::PgTestServer* pg = pgtest::PgTestServer::Shared();
  ASSERT_NE(pg, nullptr);
  PostgresStoreOptions options;
  options.uri = pg->FreshSchemaUri("schema_upgrade");
  options.master_key = crypto::RandomKey();
  std::string tenant_id, notification_id;
  int64_t email_delivery = 0, ios_delivery = 0;
  {
    Result<std::unique_ptr<Store>> opened = OpenPostgresStore(options);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    Store& store = **opened;
    Tenant t;
    t.name = "Upgrade";
    Result<Tenant> tenant = store.CreateTenant(t);
    ASSERT_TRUE(tenant.ok());
    tenant_id = tenant->id;
    User u;
    u.tenant_id = tenant_id;
    u.external_id = "u";
    u.consent_from = NowMillis() - 1000;
    u.consent_until = NowMillis() + 86'400'000;
    u.devices = {Device{"", Channel::kEmail, "u@example.com"},
                 Device{"", Channel::kIos, std::string(64, 'a')}};
    u.groups = {"g"};
    ASSERT_TRUE(store.PutUser(u, std::nullopt).ok());
    Notification n;
    n.tenant_id = tenant_id;
    n.title = "T";
    n.body = "B";
    n.to_groups = {"g"};
    n.accepted_at = NowMillis();
    n.deadline = n.accepted_at + 600'000;
    n.request_hash = "h";
    Result<CreatedNotification> created = store.CreateNotification(n);
    ASSERT_TRUE(created.ok());
    notification_id = created->notification.id;
    Result<FanoutPage> page = store.FanOutPage(notification_id, 100);
    ASSERT_TRUE(page.ok());
    ASSERT_EQ(page->jobs.size(), 2u);
    for (const DeliveryJob& job : page->jobs) {
      (job.channel == Channel::kEmail ? email_delivery : ios_delivery) = job.delivery;
    }
    DeliveryUpdate sent;
    sent.delivery = email_delivery;  // no tenant: the store finds the row itself
    sent.stage = DeliveryStatus::kSent;
    sent.at = NowMillis();
    sent.provider = "smtp";
    sent.attempt = 1;
    sent.provider_message_id = "msg-1";
    sent.dispatched_at = sent.at;
    store.RecordDeliveryUpdates({sent}, nullptr);
    ASSERT_TRUE(store.Flush().ok());
  }
  PGconn* conn = PQconnectdb(options.uri.c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  // Back to version 2 (version 4's fan-out parts undone: the group's page is done, as the old
  // columns record it).
  ASSERT_TRUE(RunSql(conn,
                     "DROP TABLE fanout_parts; ALTER TABLE notifications DROP COLUMN "
                     "fanout_parts, ADD COLUMN fanout_source integer NOT NULL DEFAULT 1, "
                     "ADD COLUMN fanout_cursor bigint NOT NULL DEFAULT 0; "
                     "DROP TABLE delivery_receipts; "
                     "CREATE INDEX deliveries_receipt ON deliveries (tenant_pk, provider, "
                     "provider_message_id) WHERE provider_message_id IS NOT NULL; "
                     "CREATE INDEX deliveries_open ON deliveries (pk) WHERE status IN (0, 1, 4); "
                     "UPDATE schema_version SET version = 2"));
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(
        RunSql(conn, "ALTER TABLE deliveries_p" + std::to_string(i) + " RESET (fillfactor)"));
  }

  Result<std::unique_ptr<Store>> reopened = OpenPostgresStore(options);
  ASSERT_TRUE(reopened.ok()) << reopened.error().message;
  Store& store = **reopened;
  std::string version, receipts, fillfactors, old_indexes;
  ASSERT_TRUE(RunSql(conn, "SELECT version FROM schema_version", &version));
  EXPECT_EQ(version, "4");
  ASSERT_TRUE(RunSql(conn, "SELECT count(*) FROM delivery_receipts", &receipts));
  EXPECT_EQ(receipts, "1");
  ASSERT_TRUE(RunSql(conn,
                     "SELECT count(*) FROM pg_class WHERE relname LIKE 'deliveries\\_p%' "
                     "AND relkind = 'r' AND 'fillfactor=50' = ANY(reloptions)",
                     &fillfactors));
  EXPECT_EQ(fillfactors, "8");
  ASSERT_TRUE(RunSql(conn,
                     "SELECT count(*) FROM pg_indexes WHERE indexname IN ('deliveries_open', "
                     "'deliveries_receipt')",
                     &old_indexes));
  EXPECT_EQ(old_indexes, "0");
  PQfinish(conn);

  // The receipt finds the back-filled row; an unknown message id finds nothing.
  Result<ReceiptOutcome> receipt =
      store.RecordReceipt(tenant_id, "smtp", "msg-1", DeliveryStatus::kDelivered, "");
  ASSERT_TRUE(receipt.ok()) << receipt.error().message;
  EXPECT_EQ(*receipt, ReceiptOutcome::kApplied);
  Result<ReceiptOutcome> unknown =
      store.RecordReceipt(tenant_id, "smtp", "msg-2", DeliveryStatus::kDelivered, "");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, "delivery_not_found");
  // The sweep finds the open delivery, and only it.
  Result<std::vector<DeliveryJob>> open = store.ListUnfinishedDeliveries(0, 100);
  ASSERT_TRUE(open.ok()) << open.error().message;
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ(open->front().delivery, ios_delivery);
  Result<std::vector<DeliveryJob>> after = store.ListUnfinishedDeliveries(ios_delivery, 100);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->empty());
  // The fan-out resumes where the old columns say it was: the group is not reached again.
  Result<FanoutPage> rest = store.FanOutPage(notification_id, 100);
  ASSERT_TRUE(rest.ok()) << rest.error().message;
  EXPECT_TRUE(rest->jobs.empty());
  EXPECT_TRUE(rest->done);
}

}  // namespace
}  // namespace herald

namespace herald {
namespace {

// A provider that gives two deliveries of one batch the same message id: the batch is written
// (not refused by the receipt table's key), and a receipt for the id finds the later delivery,
// whether the writer put the two in one transaction or in two.
TEST(PostgresSchemaTest, TwoDeliveriesWithOneMessageIdInABatchAreBothRecorded) {
  ASSERT_TRUE(crypto::InitCrypto());
  pgtest::PgTestServer* pg = pgtest::PgTestServer::Shared();
  ASSERT_NE(pg, nullptr);
  PostgresStoreOptions options;
  options.uri = pg->FreshSchemaUri("receipt_dup");
  options.master_key = crypto::RandomKey();
  Result<std::unique_ptr<Store>> opened = OpenPostgresStore(options);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  Store& store = **opened;
  Tenant t;
  t.name = "Dup";
  Result<Tenant> tenant = store.CreateTenant(t);
  ASSERT_TRUE(tenant.ok());
  User u;
  u.tenant_id = tenant->id;
  u.external_id = "u";
  u.consent_from = NowMillis() - 1000;
  u.consent_until = NowMillis() + 86'400'000;
  u.devices = {Device{"", Channel::kEmail, "a@example.com"},
               Device{"", Channel::kEmail, "b@example.com"}};
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
  ASSERT_EQ(page->jobs.size(), 2u);
  std::vector<DeliveryUpdate> updates;
  for (const DeliveryJob& job : page->jobs) {
    DeliveryUpdate sent;
    sent.delivery = job.delivery;
    sent.tenant = job.tenant;
    sent.stage = DeliveryStatus::kSent;
    sent.at = NowMillis();
    sent.provider = "smtp";
    sent.attempt = 1;
    sent.provider_message_id = "same-id";
    updates.push_back(sent);
  }
  store.RecordDeliveryUpdates(updates, nullptr);
  ASSERT_TRUE(store.Flush().ok());
  Result<Notification> after = store.GetNotification(tenant->id, created->notification.id);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->counts[static_cast<size_t>(DeliveryStatus::kSent)], 2);
  Result<ReceiptOutcome> receipt =
      store.RecordReceipt(tenant->id, "smtp", "same-id", DeliveryStatus::kDelivered, "");
  ASSERT_TRUE(receipt.ok()) << receipt.error().message;
  EXPECT_EQ(*receipt, ReceiptOutcome::kApplied);
  const int64_t later = std::max(page->jobs[0].delivery, page->jobs[1].delivery);
  Result<Page<Delivery>> delivered = store.ListDeliveries(
      tenant->id, created->notification.id, DeliveryStatus::kDelivered, PageRequest{"", 10});
  ASSERT_TRUE(delivered.ok());
  ASSERT_EQ(delivered->items.size(), 1u);
  EXPECT_EQ(delivered->items[0].id, DeliveryIdOf(later));
}

}  // namespace
}  // namespace herald

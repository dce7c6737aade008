// Singleton duties on PostgreSQL (Store::TryTakeDuty): a session advisory lock that one process
// holds at a time, and that passes to the next taker when the holder's session ends.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <string>

#include "store/postgres/postgres_store.h"
#include "store/postgres/test_sql.h"
#include "testing/pg_test_server.h"

namespace herald {
namespace {

using pgtest::RunSql;

std::unique_ptr<Store> Open(const std::string& uri, const crypto::Key& key) {
  PostgresStoreOptions options;
  options.uri = uri;
  options.master_key = key;
  options.connections = 2;
  Result<std::unique_ptr<Store>> opened = OpenPostgresStore(options);
  EXPECT_TRUE(opened.ok()) << opened.error().message;
  return opened.ok() ? std::move(*opened) : nullptr;
}

TEST(PostgresDutyTest, OneHolderAtATimeAndTheNextTakesOverWhenItsSessionEnds) {
  ASSERT_TRUE(crypto::InitCrypto());
  pgtest::PgTestServer* pg = pgtest::PgTestServer::Shared();
  ASSERT_NE(pg, nullptr);
  const std::string uri = pg->FreshSchemaUri("duty");
  const crypto::Key key = crypto::RandomKey();
  std::unique_ptr<Store> a = Open(uri, key);  // two "processes" on one database
  std::unique_ptr<Store> b = Open(uri, key);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);

  Result<std::unique_ptr<DutyLease>> first = a->TryTakeDuty("reaper-test");
  ASSERT_TRUE(first.ok()) << first.error().message;
  ASSERT_NE(*first, nullptr);
  EXPECT_TRUE((*first)->Held());
  Result<std::unique_ptr<DutyLease>> refused = b->TryTakeDuty("reaper-test");
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(*refused, nullptr);
  Result<std::unique_ptr<DutyLease>> other = b->TryTakeDuty("another-duty");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*other, nullptr);  // duties are independent

  // The holder's session ends under it (its process died, a failover): it sees the loss, and
  // the next taker gets the duty.
  PGconn* conn = PQconnectdb(uri.c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  std::string ended;
  ASSERT_TRUE(RunSql(conn,
                     "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE "
                     "locktype = 'advisory' AND granted AND objid = (hashtextextended("
                     "'herald:duty:reaper-test', 0) & 4294967295)::oid",
                     &ended));
  EXPECT_EQ(ended, "1");
  PQfinish(conn);
  EXPECT_FALSE((*first)->Held());
  Result<std::unique_ptr<DutyLease>> taken = b->TryTakeDuty("reaper-test");
  ASSERT_TRUE(taken.ok()) << taken.error().message;
  ASSERT_NE(*taken, nullptr);
  EXPECT_TRUE((*taken)->Held());

  // Letting a lease go (destroying it) frees the duty at once.
  taken->reset();
  Result<std::unique_ptr<DutyLease>> again = a->TryTakeDuty("reaper-test");
  ASSERT_TRUE(again.ok());
  EXPECT_NE(*again, nullptr);
}

}  // namespace
}  // namespace herald

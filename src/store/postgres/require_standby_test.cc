// PostgresStoreOptions::require_standby on a server without a synchronous standby (what a new
// primary is for a moment after a failover, pg_auto_failover's wait_primary): a write is not
// reported done; without the option it is.
#include <gtest/gtest.h>

#include <chrono>

#include "store/postgres/postgres_store.h"
#include "testing/pg_test_server.h"

namespace herald {
namespace {

std::unique_ptr<Store> Open(const std::string& uri, bool require_standby) {
  static const crypto::Key master = crypto::RandomKey();
  PostgresStoreOptions options;
  options.uri = uri;
  options.master_key = master;
  options.require_standby = require_standby;
  Result<std::unique_ptr<Store>> opened = OpenPostgresStore(options);
  EXPECT_TRUE(opened.ok()) << opened.error().message;
  return opened.ok() ? std::move(*opened) : nullptr;
}

TEST(PostgresRequireStandbyTest, AWriteNoStandbyHasIsNotReportedDone) {
  ASSERT_TRUE(crypto::InitCrypto());
  pgtest::PgTestServer* pg = pgtest::PgTestServer::Shared();
  ASSERT_NE(pg, nullptr);
  const std::string uri = pg->FreshSchemaUri("standby");
  std::unique_ptr<Store> plain = Open(uri, false);
  ASSERT_NE(plain, nullptr);
  Tenant t;
  t.name = "Standby";
  Result<Tenant> tenant = plain->CreateTenant(t);
  ASSERT_TRUE(tenant.ok()) << "without the option a lone server's commit is done";

  std::unique_ptr<Store> strict = Open(uri, true);
  ASSERT_NE(strict, nullptr);
  User u;
  u.tenant_id = tenant->id;
  u.external_id = "u";
  u.consent_from = NowMillis() - 1000;
  u.consent_until = NowMillis() + 86'400'000;
  const auto start = std::chrono::steady_clock::now();
  Result<PutUserOutcome> put = strict->PutUser(u, std::nullopt);
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().kind, ErrorKind::kUnavailable);
  EXPECT_EQ(put.error().code, "storage_not_replicated");
  EXPECT_GE(waited, std::chrono::seconds(4)) << "it waits for a standby first";
  EXPECT_LT(waited, std::chrono::seconds(15));
  // Reads are not held up.
  EXPECT_TRUE(strict->GetTenant(tenant->id).ok());
}

}  // namespace
}  // namespace herald

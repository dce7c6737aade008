// Erased users on PostgreSQL: the bytes a DELETE leaves in the table files can no longer be
// opened once the consent minute is over, by anyone, the holder of the master key included
// (erasure_store.cc, crypto/erasure_keys.h). Read from the server's files, as an attacker with
// the disk would.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "crypto/erasure_keys.h"
#include "store/postgres/postgres_store.h"
#include "store/sealed_user.h"
#include "testing/pg_test_server.h"

namespace herald {
namespace {

constexpr UnixMillis kMinute = 60'000;

// One value of a one-row query, as bytes (bytea columns come back decoded).
crypto::Bytes Scalar(const std::string& uri, const std::string& sql) {
  PGconn* conn = PQconnectdb(uri.c_str());
  crypto::Bytes out;
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* r = PQexecParams(conn, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 1);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
      const auto* v = reinterpret_cast<const uint8_t*>(PQgetvalue(r, 0, 0));
      out.assign(v, v + PQgetlength(r, 0, 0));
    } else {
      ADD_FAILURE() << sql << ": " << PQerrorMessage(conn);
    }
    PQclear(r);
  }
  PQfinish(conn);
  return out;
}

// The files of the server's databases that hold `needle` (WAL excluded: see operations.md).
std::vector<std::string> FilesHolding(const std::string& data_dir, const crypto::Bytes& needle) {
  const std::string wanted(needle.begin(), needle.end());
  std::vector<std::string> found;
  for (const char* sub : {"base", "global"}) {
    for (const auto& entry :
         std::filesystem::recursive_directory_iterator(std::filesystem::path(data_dir) / sub)) {
      if (!entry.is_regular_file()) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      const std::string bytes{std::istreambuf_iterator<char>(in), {}};
      if (bytes.find(wanted) != std::string::npos) {
        found.push_back(entry.path().string());
      }
    }
  }
  return found;
}

std::string Open(const crypto::Bytes& key_tree_sealed, const crypto::PiiCipher& tenant_cipher,
                 uint64_t bucket, const crypto::Bytes& sealed, std::string_view context,
                 bool first_zero = false) {
  Result<std::string> tree = tenant_cipher.Open(key_tree_sealed, "erasure-keys");
  if (!tree.ok()) return "<tree does not open>";
  crypto::Bytes bytes(tree->begin(), tree->end());
  if (first_zero) std::fill(bytes.begin() + 1, bytes.begin() + 9, 0);  // claim every bucket
  Result<crypto::ErasureKeys> keys = crypto::ErasureKeys::Parse(bytes);
  if (!keys.ok()) return "<tree does not parse>";
  std::optional<crypto::Key> key = keys->Derive(bucket);
  if (!key) return "<no key>";
  Result<std::string> opened = crypto::PiiCipher(*key).Open(sealed, context);
  return opened.ok() ? *opened : "<does not open>";
}

TEST(PostgresErasureTest, AnErasedUsersLeftoverBytesCannotBeOpenedOnceItsConsentMinuteIsOver) {
  ASSERT_TRUE(crypto::InitCrypto());
  pgtest::PgTestServer pg;  // its own server: no other test's snapshot keeps old row versions
  ASSERT_TRUE(pg.Start()) << pg.last_error();
  const std::string uri = pg.FreshSchemaUri("erasure");
  ASSERT_FALSE(uri.empty()) << pg.last_error();

  std::atomic<UnixMillis> now{(NowMillis() / kMinute) * kMinute + 1000};
  PostgresStoreOptions options;
  options.uri = uri;
  options.master_key = crypto::RandomKey();
  options.clock = [&] { return now.load(); };
  Result<std::unique_ptr<Store>> opened = OpenPostgresStore(options);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  Store& store = **opened;
  Tenant t;
  t.name = "Erasure";
  Result<Tenant> tenant = store.CreateTenant(t);
  ASSERT_TRUE(tenant.ok());

  auto make = [&](const std::string& id, const std::string& name, const std::string& email,
                  UnixMillis until) {
    User u;
    u.tenant_id = tenant->id;
    u.external_id = id;
    u.name = name;
    u.opt_in = true;
    u.consent_from = now - 1000;
    u.consent_until = until;
    u.devices = {Device{"", Channel::kEmail, email}};
    return u;
  };
  const UnixMillis leaves_at = now + 2 * kMinute + 5000;
  ASSERT_TRUE(store
                  .PutUser(make("leaver", "Ottoline Vexley", "ottoline@example.org", leaves_at),
                           std::nullopt)
                  .ok());
  ASSERT_TRUE(
      store.PutUser(make("stayer", "Stay Put", "stay@example.org", now + 86'400'000), std::nullopt)
          .ok());

  const std::string tenant_pk = "(SELECT pk FROM tenants WHERE id = '" + tenant->id + "')";
  const crypto::Bytes name_sealed =
      Scalar(uri, "SELECT name_sealed FROM users WHERE external_id = 'leaver' AND tenant_pk = " +
                      tenant_pk);
  const crypto::Bytes address_sealed =
      Scalar(uri,
             "SELECT d.address_sealed FROM devices d JOIN users u ON u.pk = d.user_pk "
             "AND u.tenant_pk = d.tenant_pk WHERE u.external_id = 'leaver'");
  const crypto::Bytes old_tree =
      Scalar(uri, "SELECT sealed FROM erasure_keys WHERE tenant_pk = " + tenant_pk);
  Result<crypto::Key> data_key = crypto::UnwrapDataKey(
      options.master_key, Scalar(uri, "SELECT wrapped_key FROM tenants WHERE pk = " + tenant_pk),
      tenant->id);
  ASSERT_TRUE(data_key.ok());
  const crypto::PiiCipher tenant_cipher(*data_key);
  const uint64_t bucket = static_cast<uint64_t>(leaves_at / kMinute);

  // Sealed with the key of the minute the consent ends, which the stored tree holds.
  EXPECT_EQ(Open(old_tree, tenant_cipher, bucket, name_sealed, kNameContext), "Ottoline Vexley");
  EXPECT_EQ(Open(old_tree, tenant_cipher, bucket, address_sealed, AddressContext(Channel::kEmail)),
            "ottoline@example.org");
  EXPECT_FALSE(tenant_cipher.Open(name_sealed, kNameContext).ok())
      << "the tenant's own key must not open it";
  ASSERT_TRUE(pg.Exec("CHECKPOINT"));
  EXPECT_FALSE(FilesHolding(pg.dir() + "/data", old_tree).empty())
      << "the search must find what is there";

  // The consent ends: the reaper's two steps, at the times it would run them.
  now = leaves_at;
  Result<int64_t> erased = store.EraseExpiredUsers(now, 100);
  ASSERT_TRUE(erased.ok());
  EXPECT_EQ(*erased, 1);
  Result<int64_t> shredded = store.ShredExpiredKeys(now);
  ASSERT_TRUE(shredded.ok()) << shredded.error().message;
  EXPECT_EQ(*shredded, 1) << "the minutes before this one";
  EXPECT_EQ(Open(Scalar(uri, "SELECT sealed FROM erasure_keys WHERE tenant_pk = " + tenant_pk),
                 tenant_cipher, bucket, name_sealed, kNameContext),
            "Ottoline Vexley")
      << "the minute the consent ended in is not over yet: its key stays";
  now = (static_cast<UnixMillis>(bucket) + 1) * kMinute;  // that minute is over
  shredded = store.ShredExpiredKeys(now);
  ASSERT_TRUE(shredded.ok()) << shredded.error().message;
  EXPECT_EQ(*shredded, 1);
  ASSERT_TRUE(pg.Exec("CHECKPOINT"));

  // No file of any database holds the old tree any more, and the one that is stored cannot
  // derive the minute's key, even when told that every minute is still there.
  const crypto::Bytes new_tree =
      Scalar(uri, "SELECT sealed FROM erasure_keys WHERE tenant_pk = " + tenant_pk);
  EXPECT_NE(new_tree, old_tree);
  EXPECT_EQ(FilesHolding(pg.dir() + "/data", old_tree), std::vector<std::string>());
  EXPECT_EQ(Open(new_tree, tenant_cipher, bucket, name_sealed, kNameContext), "<no key>");
  EXPECT_EQ(Open(new_tree, tenant_cipher, bucket, name_sealed, kNameContext, true), "<no key>");
  EXPECT_EQ(
      Open(new_tree, tenant_cipher, bucket, address_sealed, AddressContext(Channel::kEmail), true),
      "<no key>");
  std::printf(
      "leftover bytes of the erased user in table files: name in %zu, address in %zu "
      "(unreadable)\n",
      FilesHolding(pg.dir() + "/data", name_sealed).size(),
      FilesHolding(pg.dir() + "/data", address_sealed).size());

  // The user who stays is untouched, and a user can still be written.
  Result<User> stayer = store.GetUser(tenant->id, "stayer");
  ASSERT_TRUE(stayer.ok()) << stayer.error().message;
  EXPECT_EQ(stayer->name, "Stay Put");
  EXPECT_EQ(stayer->devices.at(0).address, "stay@example.org");
  EXPECT_TRUE(
      store.PutUser(make("new", "New One", "new@example.org", now + kMinute), std::nullopt).ok());
  EXPECT_EQ(store.GetUser(tenant->id, "new")->name, "New One");
}

// A user whose consent window moves is sealed again for its new minute, devices included.
TEST(PostgresErasureTest, AMovedConsentWindowReSealsTheUserForItsNewMinute) {
  ASSERT_TRUE(crypto::InitCrypto());
  pgtest::PgTestServer* pg = pgtest::PgTestServer::Shared();
  ASSERT_NE(pg, nullptr);
  PostgresStoreOptions options;
  options.uri = pg->FreshSchemaUri("erasure_move");
  options.master_key = crypto::RandomKey();
  Result<std::unique_ptr<Store>> opened = OpenPostgresStore(options);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  Store& store = **opened;
  Tenant t;
  t.name = "Mover";
  Result<Tenant> tenant = store.CreateTenant(t);
  ASSERT_TRUE(tenant.ok());
  User u;
  u.tenant_id = tenant->id;
  u.external_id = "mover";
  u.name = "Mo Ver";
  u.consent_from = NowMillis() - 1000;
  u.consent_until = NowMillis() + 86'400'000;
  u.devices = {Device{"", Channel::kSms, "+14155550123"}};
  Result<PutUserOutcome> first = store.PutUser(u, std::nullopt);
  ASSERT_TRUE(first.ok());
  u.consent_until += 30 * 86'400'000LL;  // another month: another key
  Result<PutUserOutcome> second = store.PutUser(u, std::nullopt);
  ASSERT_TRUE(second.ok()) << second.error().message;
  Result<User> got = store.GetUser(tenant->id, "mover");
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->name, "Mo Ver");
  ASSERT_EQ(got->devices.size(), 1u);
  EXPECT_EQ(got->devices[0].address, "+14155550123");
  EXPECT_EQ(got->devices[0].id, first->user.devices.at(0).id) << "the same device keeps its id";
}

}  // namespace
}  // namespace herald

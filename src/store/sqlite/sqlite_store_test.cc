// What is particular to the SQLite backend: the file survives a restart, the master key guards
// it, the schema version is checked, and no PII is readable in any file it writes.
#include "store/sqlite/sqlite_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "store/store_test_support.h"

namespace herald {
namespace {

using store_test::Dev;
using store_test::ErrorText;

constexpr UnixMillis kDay = 24LL * 3600 * 1000;

// Distinctive plaintext that must never reach the disk.
constexpr const char* kCanaryName = "Zebulon Quixotic-Marchbanks";
constexpr const char* kCanaryEmail = "zebulon.quixotic@canary-plaintext.example";
constexpr const char* kCanaryPhone = "+14155550199";
constexpr const char* kCanaryToken =
    "c0ffee11c0ffee22c0ffee33c0ffee44c0ffee55c0ffee66c0ffee77c0ffee88";
constexpr const char* kCanarySecret = "sk_live_canary_provider_password";

class SqliteStoreTest : public ::testing::Test {
 protected:
  std::string db_path() const { return dir_.path() + "/herald.db"; }

  Result<std::unique_ptr<Store>> Open(const crypto::Key& key) {
    SqliteStoreOptions o;
    o.path = db_path();
    o.master_key = key;
    o.read_connections = 2;
    return OpenSqliteStore(std::move(o));
  }

  std::unique_ptr<Store> OpenOk(const crypto::Key& key) {
    Result<std::unique_ptr<Store>> s = Open(key);
    EXPECT_TRUE(s.ok()) << ErrorText(s);
    return s.ok() ? std::move(*s) : nullptr;
  }

  static User CanaryUser(const std::string& tenant_id) {
    User u;
    u.tenant_id = tenant_id;
    u.external_id = "canary";
    u.name = kCanaryName;
    u.consent_from = NowMillis() - kDay;
    u.consent_until = NowMillis() + kDay;
    u.devices = {Dev(Channel::kEmail, kCanaryEmail), Dev(Channel::kSms, kCanaryPhone),
                 Dev(Channel::kIos, kCanaryToken)};
    u.groups = {"g"};
    return u;
  }

  // A new tenant with the canary user in it; its id ("" after a failed assertion).
  static std::string TenantWithCanary(Store& store) {
    Result<Tenant> t = store.CreateTenant(Tenant{"", "Acme", 15, 30, 0, 0});
    EXPECT_TRUE(t.ok());
    if (!t.ok()) return "";
    Result<PutUserOutcome> put = store.PutUser(CanaryUser(t->id));
    EXPECT_TRUE(put.ok()) << ErrorText(put);
    return t->id;
  }

  // Runs SQL on the database file directly, behind the store's back.
  void RawExec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
        << (err != nullptr ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

  // Runs an UPDATE binding `blob` to ?1, behind the store's back.
  void RawSetBlob(const std::string& sql, const std::string& blob) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK);
    sqlite3_bind_blob(st, 1, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
    EXPECT_EQ(sqlite3_step(st), SQLITE_DONE);
    EXPECT_EQ(sqlite3_changes(db), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
  }

  // Every blob of the first column of a query, read directly from the file.
  std::vector<std::string> RawBlobs(const std::string& sql) {
    std::vector<std::string> out;
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(db_path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
      const char* p = static_cast<const char*>(sqlite3_column_blob(st, 0));
      out.emplace_back(p, static_cast<size_t>(sqlite3_column_bytes(st, 0)));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }

  // The bytes of every file in the data directory (db, -wal, -shm).
  std::vector<std::pair<std::string, std::string>> FileContents() {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
      std::ifstream in(entry.path(), std::ios::binary);
      out.emplace_back(entry.path().filename().string(),
                       std::string(std::istreambuf_iterator<char>(in), {}));
    }
    return out;
  }

  void ExpectNowhereOnDisk(const std::string& needle, const std::string& what) {
    for (const auto& [name, bytes] : FileContents()) {
      EXPECT_EQ(bytes.find(needle), std::string::npos) << what << " found in " << name;
    }
  }

  store_test::TempDir dir_;
  crypto::Key key_ = crypto::RandomKey();
};

TEST_F(SqliteStoreTest, ReopeningKeepsDataAndKeys) {
  std::string tenant_id;
  std::string device_id;
  {
    std::unique_ptr<Store> store = OpenOk(key_);
    ASSERT_TRUE(store);
    Result<Tenant> t = store->CreateTenant(Tenant{"", "Acme", 15, 30, 0, 0});
    ASSERT_TRUE(t.ok());
    tenant_id = t->id;
    Result<PutUserOutcome> put = store->PutUser(CanaryUser(tenant_id));
    ASSERT_TRUE(put.ok()) << ErrorText(put);
    device_id = put->user.devices[0].id;
    ASSERT_TRUE(store->PutProviderSettings({tenant_id, Channel::kEmail, kCanarySecret, 0}).ok());
    ApiKey key;
    key.id = "key_reopen";
    key.tenant_id = tenant_id;
    key.scopes = {"users:read"};
    ASSERT_TRUE(store->CreateApiKey(key, {9, 9}).ok());
    store->AppendAudit(AuditRecord{0, 0, tenant_id, "admin", "POST", "/v1/tenants", 201, "r1", 5});
  }  // closing writes the queued audit record
  std::unique_ptr<Store> store = OpenOk(key_);
  ASSERT_TRUE(store);
  Result<User> u = store->GetUser(tenant_id, "canary");
  ASSERT_TRUE(u.ok()) << ErrorText(u);
  EXPECT_EQ(u->name, kCanaryName);
  ASSERT_EQ(u->devices.size(), 3u);
  EXPECT_EQ(u->devices[0].id, device_id);
  EXPECT_EQ(u->devices[0].address, kCanaryEmail);
  EXPECT_EQ(store->GetProviderSettings(tenant_id, Channel::kEmail)->config_json, kCanarySecret);
  EXPECT_EQ(store->GetApiKey("key_reopen")->key.scopes, std::vector<std::string>{"users:read"});
  EXPECT_EQ(store->ListAudit(tenant_id, {})->items.size(), 1u);
  // The cached-on-reopen data key seals new data that reads back.
  Result<Device> added = store->AddDevice(tenant_id, "canary", Dev(Channel::kAndroid, "fcm:1"));
  ASSERT_TRUE(added.ok());
  EXPECT_EQ(store->GetUser(tenant_id, "canary")->devices.back().address, "fcm:1");
}

TEST_F(SqliteStoreTest, UpgradingFromVersion2CountsTheDeliveriesThereAre) {
  // A version-2 database (no delivery_counts; a (notification_pk, status) index) with a
  // notification of three deliveries in two statuses reopens with the counts rebuilt.
  std::string tenant_id;
  std::string notification_id;
  UnixMillis sent_at = 0;
  {
    std::unique_ptr<Store> store = OpenOk(key_);
    ASSERT_TRUE(store);
    tenant_id = TenantWithCanary(*store);
    ASSERT_FALSE(tenant_id.empty());
    Notification n;
    n.tenant_id = tenant_id;
    n.title = "T";
    n.body = "B";
    n.to_groups = {"g"};
    n.accepted_at = NowMillis();
    n.deadline = n.accepted_at + 600'000;
    n.request_hash = "h";
    Result<CreatedNotification> created = store->CreateNotification(n);
    ASSERT_TRUE(created.ok());
    notification_id = created->notification.id;
    Result<FanoutPage> page = store->FanOutPage(notification_id, 10);
    ASSERT_TRUE(page.ok());
    ASSERT_EQ(page->jobs.size(), 3u);
    const int64_t first = page->jobs[0].delivery;
    while (!page->done) {  // the fan-out ends with a page that finds nobody more
      page = store->FanOutPage(notification_id, 10);
      ASSERT_TRUE(page.ok());
    }
    sent_at = NowMillis() + 5;
    store->RecordDeliveryUpdates(
        {{first, DeliveryStatus::kSent, sent_at, "smtp", 1, "", "m1", false}});
    ASSERT_TRUE(store->Flush().ok());
  }
  RawExec(
      "DROP TABLE delivery_counts; DROP INDEX deliveries_notification;"
      "DROP INDEX deliveries_uncommon_status;"
      "CREATE INDEX deliveries_notification ON deliveries(notification_pk, status);"
      "ALTER TABLE tenants DROP COLUMN rate_limits; DROP INDEX delivery_events_delivery;"
      "UPDATE schema_version SET version = 2;");
  std::unique_ptr<Store> store = OpenOk(key_);
  ASSERT_TRUE(store);
  Result<Notification> got = store->GetNotification(tenant_id, notification_id);
  ASSERT_TRUE(got.ok()) << ErrorText(got);
  EXPECT_EQ(got->counts[static_cast<size_t>(DeliveryStatus::kQueued)], 2);
  EXPECT_EQ(got->counts[static_cast<size_t>(DeliveryStatus::kSent)], 1);
  EXPECT_EQ(got->status, NotificationStatus::kInProgress);
  // ... and keeps counting from there.
  Result<Page<Delivery>> queued =
      store->ListDeliveries(tenant_id, notification_id, DeliveryStatus::kQueued, PageRequest{});
  ASSERT_TRUE(queued.ok());
  ASSERT_EQ(queued->items.size(), 2u);
  std::vector<DeliveryUpdate> updates;
  for (const Delivery& d : queued->items) {
    updates.push_back({*DeliveryKeyOf(d.id), DeliveryStatus::kFailed, sent_at + 10, "smtp", 1,
                       "rejected", "", false});
  }
  store->RecordDeliveryUpdates(std::move(updates));
  ASSERT_TRUE(store->Flush().ok());
  got = store->GetNotification(tenant_id, notification_id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->counts[static_cast<size_t>(DeliveryStatus::kQueued)], 0);
  EXPECT_EQ(got->counts[static_cast<size_t>(DeliveryStatus::kFailed)], 2);
  EXPECT_EQ(got->status, NotificationStatus::kCompleted);
  EXPECT_EQ(got->completed_at, sent_at + 10);
  Result<Page<Delivery>> failed =
      store->ListDeliveries(tenant_id, notification_id, DeliveryStatus::kFailed, PageRequest{});
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->items.size(), 2u);
}

TEST_F(SqliteStoreTest, WrongMasterKeyIsRefused) {
  {
    std::unique_ptr<Store> store = OpenOk(key_);
    ASSERT_TRUE(store);
    Result<Tenant> t = store->CreateTenant(Tenant{"", "Acme", 15, 30, 0, 0});
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(store->PutUser(CanaryUser(t->id)).ok());
  }
  Result<std::unique_ptr<Store>> wrong = Open(crypto::RandomKey());
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().kind, ErrorKind::kUnavailable);
  EXPECT_EQ(wrong.error().code, "master_key_mismatch");
  EXPECT_TRUE(Open(key_).ok());
}

TEST_F(SqliteStoreTest, UndecryptableDataFailsCleanly) {
  std::string tenant_id;
  {
    std::unique_ptr<Store> store = OpenOk(key_);
    ASSERT_TRUE(store);
    tenant_id = TenantWithCanary(*store);
    ASSERT_FALSE(tenant_id.empty());
    User other = CanaryUser(tenant_id);
    other.external_id = "other";
    ASSERT_TRUE(store->PutUser(other).ok());
  }
  // A sealed name with a flipped byte fails authentication.
  std::vector<std::string> sealed =
      RawBlobs("SELECT name_sealed FROM users WHERE external_id = 'canary'");
  ASSERT_EQ(sealed.size(), 1u);
  sealed[0][30] ^= 1;
  RawSetBlob("UPDATE users SET name_sealed = ?1 WHERE external_id = 'canary'", sealed[0]);
  {
    std::unique_ptr<Store> store = OpenOk(key_);
    ASSERT_TRUE(store);
    Result<User> u = store->GetUser(tenant_id, "canary");
    ASSERT_FALSE(u.ok());
    EXPECT_EQ(u.error().kind, ErrorKind::kInternal);
    EXPECT_EQ(u.error().code, "decrypt_failed");
    EXPECT_TRUE(store->GetUser(tenant_id, "other").ok());
  }
  // A tenant whose wrapped data key is damaged: every PII operation fails, nothing crashes.
  RawExec("UPDATE tenants SET wrapped_key = zeroblob(72)");
  std::unique_ptr<Store> store = OpenOk(key_);
  ASSERT_TRUE(store);
  Result<User> got = store->GetUser(tenant_id, "other");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().kind, ErrorKind::kInternal);
  EXPECT_EQ(got.error().code, "decrypt_failed");
  Result<PutUserOutcome> put = store->PutUser(CanaryUser(tenant_id));
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code, "decrypt_failed");
  EXPECT_TRUE(store->GetTenant(tenant_id).ok());
}

TEST_F(SqliteStoreTest, NewerSchemaVersionIsRefused) {
  { ASSERT_TRUE(OpenOk(key_)); }
  RawExec("UPDATE schema_version SET version = 999");
  Result<std::unique_ptr<Store>> s = Open(key_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().kind, ErrorKind::kUnavailable);
  EXPECT_EQ(s.error().code, "schema_too_new");
  std::vector<std::string> v = RawBlobs("SELECT CAST(version AS BLOB) FROM schema_version");
  EXPECT_EQ(v, std::vector<std::string>{"999"});
}

TEST_F(SqliteStoreTest, UnopenableFileIsUnavailable) {
  SqliteStoreOptions o;
  o.path = dir_.path() + "/no/such/dir/herald.db";
  o.master_key = key_;
  Result<std::unique_ptr<Store>> s = OpenSqliteStore(std::move(o));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().kind, ErrorKind::kUnavailable);
}

TEST_F(SqliteStoreTest, NoPlaintextPiiInAnyFile) {
  std::unique_ptr<Store> store = OpenOk(key_);
  ASSERT_TRUE(store);
  Result<Tenant> t = store->CreateTenant(Tenant{"", "Acme", 15, 30, 0, 0});
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(store->PutUser(CanaryUser(t->id)).ok());
  std::vector<User> imported;
  for (int i = 0; i < 50; ++i) {
    User u = CanaryUser(t->id);
    u.external_id = "import" + std::to_string(i);
    imported.push_back(u);
  }
  ASSERT_TRUE(store->PutUsers(t->id, imported).ok());
  ASSERT_TRUE(store->PutProviderSettings({t->id, Channel::kSms, kCanarySecret, 0}).ok());
  ASSERT_TRUE(store->Flush().ok());

  auto check = [&](const char* when) {
    for (const char* pii : {kCanaryName, kCanaryEmail, kCanaryPhone, kCanaryToken, kCanarySecret}) {
      ExpectNowhereOnDisk(pii, std::string(pii) + " (" + when + ")");
    }
    // Nor the address parts on their own, nor the token's raw bytes.
    ExpectNowhereOnDisk("zebulon.quixotic", when);
    ExpectNowhereOnDisk("4155550199", when);
    ExpectNowhereOnDisk("\xc0\xff\xee\x11\xc0\xff\xee\x22", when);
  };
  ASSERT_GE(FileContents().size(), 2u);  // the database and its WAL
  check("open");
  store.reset();  // the last connection checkpoints the WAL into the database file
  check("closed");
}

TEST_F(SqliteStoreTest, ErasedSealedBytesAreGoneAfterCheckpoint) {
  std::unique_ptr<Store> store = OpenOk(key_);
  ASSERT_TRUE(store);
  Result<Tenant> t = store->CreateTenant(Tenant{"", "Acme", 15, 30, 0, 0});
  ASSERT_TRUE(t.ok());
  std::vector<User> neighbours;
  for (int i = 0; i < 30; ++i) {
    User u = CanaryUser(t->id);
    u.external_id = "n" + std::to_string(i);
    u.devices = {Dev(Channel::kEmail, "n" + std::to_string(i) + "@example.com")};
    neighbours.push_back(u);
  }
  ASSERT_TRUE(store->PutUsers(t->id, neighbours).ok());
  ASSERT_TRUE(store->PutUser(CanaryUser(t->id)).ok());
  User brief = CanaryUser(t->id);
  brief.external_id = "brief";
  brief.name = "Brief Expiring Person";
  brief.devices = {Dev(Channel::kEmail, "brief@example.com")};
  brief.consent_until = NowMillis() + 200;
  ASSERT_TRUE(store->PutUser(brief).ok());
  ASSERT_TRUE(store->Flush().ok());
  RawExec("PRAGMA wal_checkpoint(TRUNCATE)");

  std::vector<std::string> secrets = RawBlobs(
      "SELECT name_sealed FROM users WHERE external_id IN ('canary', 'brief') UNION ALL "
      "SELECT address_sealed FROM devices d JOIN users u ON u.pk = d.user_pk "
      "WHERE u.external_id IN ('canary', 'brief') UNION ALL "
      "SELECT address_bidx FROM devices d JOIN users u ON u.pk = d.user_pk "
      "WHERE u.external_id IN ('canary', 'brief')");
  ASSERT_EQ(secrets.size(), 2u + 4u + 4u);
  for (const std::string& s : secrets) {
    ASSERT_GE(s.size(), 16u);
    bool found = false;
    for (const auto& [name, bytes] : FileContents()) found |= bytes.find(s) != std::string::npos;
    ASSERT_TRUE(found) << "the probe cannot see sealed bytes at all";
  }

  ASSERT_TRUE(store->DeleteUser(t->id, "canary").ok());
  // The reaper's pass a moment after brief's consent ended.
  Result<int64_t> erased = store->EraseExpiredUsers(NowMillis() + 250, 10);
  ASSERT_TRUE(erased.ok());
  EXPECT_EQ(*erased, 1);
  ASSERT_TRUE(store->Flush().ok());
  RawExec("PRAGMA wal_checkpoint(TRUNCATE)");
  for (size_t i = 0; i < secrets.size(); ++i) {
    ExpectNowhereOnDisk(secrets[i], "sealed blob #" + std::to_string(i));
  }
  EXPECT_TRUE(store->GetUser(t->id, "n7").ok());
}

TEST_F(SqliteStoreTest, PutUsersThroughput) {
  const int users_total = std::getenv("HERALD_STORE_BENCH") != nullptr ? 500000 : 50000;
  for (int callers : {1, 2}) {
    store_test::TempDir dir;
    SqliteStoreOptions o;
    o.path = dir.path() + "/bench.db";
    o.master_key = key_;
    Result<std::unique_ptr<Store>> opened = OpenSqliteStore(std::move(o));
    ASSERT_TRUE(opened.ok());
    Store& store = **opened;
    Result<Tenant> t = store.CreateTenant(Tenant{"", "Bench", 15, 30, 0, 0});
    ASSERT_TRUE(t.ok());
    // Prepare the input first: only PutUsers is timed.
    std::vector<std::vector<User>> batches;
    for (int base = 0; base < users_total; base += 1000) {
      std::vector<User> batch;
      batch.reserve(1000);
      for (int i = base; i < base + 1000; ++i) {
        User u;
        u.external_id = "user-" + std::to_string(i);
        u.name = "Person Number " + std::to_string(i);
        u.consent_from = NowMillis() - kDay;
        u.consent_until = NowMillis() + 365 * kDay;
        u.devices = {Dev(Channel::kEmail, "person" + std::to_string(i) + "@example.com"),
                     Dev(Channel::kIos, store_test::IosToken(i))};
        batch.push_back(std::move(u));
      }
      batches.push_back(std::move(batch));
    }
    std::atomic<size_t> next{0};
    std::atomic<int> failed{0};
    auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    threads.reserve(callers);
    for (int c = 0; c < callers; ++c) {
      threads.emplace_back([&] {
        for (size_t b = next++; b < batches.size(); b = next++) {
          Result<std::vector<ImportLineResult>> r = store.PutUsers(t->id, std::move(batches[b]));
          if (!r.ok()) ++failed;
        }
      });
    }
    for (std::thread& th : threads) th.join();
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(failed.load(), 0);
    std::printf(
        "[ info ] PutUsers: %d users x 2 devices, batches of 1000, %d caller(s): "
        "%.0f users/s\n",
        users_total, callers, users_total / seconds);
    EXPECT_TRUE(store.GetUser(t->id, "user-" + std::to_string(users_total - 1)).ok());
  }
}

}  // namespace
}  // namespace herald

// The Store conformance suite: every backend must pass it. It is written only against the Store
// interface (store.h); a backend joins by adding a factory to Backends() below.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "crypto/crypto.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store.h"
#include "store/store_test_support.h"

namespace herald {
namespace {

using store_test::Dev;
using store_test::ErrorText;
using store_test::IosToken;

constexpr UnixMillis kDay = 24LL * 3600 * 1000;

// ---- backends ------------------------------------------------------------------------------------

struct BackendOptions {
  std::function<void(size_t)> on_batch;  // called per committed write batch, where there are any
};

// A fresh, empty store, and whatever must be cleaned up after it.
class TestBackend {
 public:
  virtual ~TestBackend() = default;
  virtual Store& store() = 0;
};

struct BackendFactory {
  std::string name;
  bool batches_writes = false;  // whether BackendOptions::on_batch reports batches
  std::function<std::unique_ptr<TestBackend>(BackendOptions)> open;
};

class SqliteBackend : public TestBackend {
 public:
  explicit SqliteBackend(BackendOptions options) {
    SqliteStoreOptions o;
    o.path = dir_.path() + "/herald.db";
    o.master_key = crypto::RandomKey();
    o.read_connections = 4;
    o.on_batch = std::move(options.on_batch);
    Result<std::unique_ptr<Store>> store = OpenSqliteStore(std::move(o));
    if (!store.ok()) {
      ADD_FAILURE() << "OpenSqliteStore: " << ErrorText(store);
      return;
    }
    store_ = std::move(*store);
  }
  ~SqliteBackend() override { store_.reset(); }
  Store& store() override { return *store_; }

 private:
  store_test::TempDir dir_;
  std::unique_ptr<Store> store_;
};

std::vector<BackendFactory> Backends() {
  std::vector<BackendFactory> out;
  out.push_back(BackendFactory{"Sqlite", true, [](BackendOptions o) {
                                 return std::make_unique<SqliteBackend>(std::move(o));
                               }});
  return out;
}

// ---- fixture -------------------------------------------------------------------------------------

class StoreConformanceTest : public ::testing::TestWithParam<BackendFactory> {
 protected:
  void SetUp() override {
    BackendOptions options;
    options.on_batch = [this](size_t n) {
      batches_.fetch_add(1);
      size_t seen = max_batch_.load();
      while (n > seen && !max_batch_.compare_exchange_weak(seen, n)) {
      }
    };
    backend_ = GetParam().open(std::move(options));
  }
  void TearDown() override { backend_.reset(); }

  Store& store() { return backend_->store(); }

  Tenant NewTenant(const std::string& name = "Acme") {
    Tenant t;
    t.name = name;
    t.delivery_deadline_minutes = 20;
    t.default_consent_days = 30;
    Result<Tenant> created = store().CreateTenant(t);
    EXPECT_TRUE(created.ok()) << ErrorText(created);
    return created.ok() ? *created : Tenant{};
  }

  static User MakeUser(const std::string& tenant_id, const std::string& external_id,
                       std::vector<Device> devices = {}, std::vector<std::string> groups = {}) {
    User u;
    u.tenant_id = tenant_id;
    u.external_id = external_id;
    u.name = "Name of " + external_id;
    u.opt_in = true;
    u.consent_from = NowMillis() - kDay;
    u.consent_until = NowMillis() + 30 * kDay;
    u.devices = std::move(devices);
    u.groups = std::move(groups);
    return u;
  }

  PutUserOutcome Put(const User& u, std::optional<int64_t> expected = {}) {
    Result<PutUserOutcome> r = store().PutUser(u, expected);
    EXPECT_TRUE(r.ok()) << ErrorText(r);
    return r.ok() ? *r : PutUserOutcome{};
  }

  std::unique_ptr<TestBackend> backend_;
  std::atomic<size_t> batches_{0};
  std::atomic<size_t> max_batch_{0};
};

#define EXPECT_ERROR(expr, kind_, code_)                              \
  do {                                                                \
    auto&& result_ = (expr);                                          \
    ASSERT_FALSE(result_.ok()) << "expected " << (code_);             \
    EXPECT_EQ(result_.error().kind, (kind_)) << ErrorText(result_);   \
    EXPECT_EQ(result_.error().code, (code_)) << ErrorText(result_);   \
  } while (0)

#define ASSERT_OK(expr)                              \
  do {                                               \
    auto&& result_ = (expr);                         \
    ASSERT_TRUE(result_.ok()) << ErrorText(result_); \
  } while (0)

// ---- tenants -------------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, CreateTenantAssignsIdAndTimestamps) {
  UnixMillis before = NowMillis();
  Tenant t = NewTenant("Acme");
  EXPECT_EQ(t.id.rfind("ten_", 0), 0u) << t.id;
  EXPECT_GE(t.created_at, before);
  Result<Tenant> got = store().GetTenant(t.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->name, "Acme");
  EXPECT_EQ(got->delivery_deadline_minutes, 20);
  EXPECT_EQ(got->default_consent_days, 30);
  EXPECT_EQ(got->created_at, t.created_at);
}

TEST_P(StoreConformanceTest, CreateTenantKeepsGivenIdAndRefusesDuplicates) {
  Tenant t;
  t.id = "ten_given";
  t.name = "Given";
  ASSERT_OK(store().CreateTenant(t));
  ASSERT_OK(store().GetTenant("ten_given"));
  EXPECT_ERROR(store().CreateTenant(t), ErrorKind::kConflict, "duplicate_tenant");
}

TEST_P(StoreConformanceTest, UnknownTenantIsNotFound) {
  EXPECT_ERROR(store().GetTenant("ten_nope"), ErrorKind::kNotFound, "tenant_not_found");
  Tenant t;
  t.id = "ten_nope";
  EXPECT_ERROR(store().UpdateTenant(t), ErrorKind::kNotFound, "tenant_not_found");
  EXPECT_ERROR(store().PutUser(MakeUser("ten_nope", "u1")), ErrorKind::kNotFound,
               "tenant_not_found");
  EXPECT_ERROR(store().PutUsers("ten_nope", {MakeUser("ten_nope", "u1")}), ErrorKind::kNotFound,
               "tenant_not_found");
  EXPECT_ERROR(store().AddDevice("ten_nope", "u1", Dev(Channel::kEmail, "a@b.example")),
               ErrorKind::kNotFound, "tenant_not_found");
  EXPECT_ERROR(store().GetUser("ten_nope", "u1"), ErrorKind::kNotFound, "tenant_not_found");
  EXPECT_ERROR(store().ListApiKeys("ten_nope"), ErrorKind::kNotFound, "tenant_not_found");
  Group g{"ten_nope", "g", "", 0, 0};
  EXPECT_ERROR(store().PutGroup(g), ErrorKind::kNotFound, "tenant_not_found");
  ProviderSettings p{"ten_nope", Channel::kEmail, "{}", 0};
  EXPECT_ERROR(store().PutProviderSettings(p), ErrorKind::kNotFound, "tenant_not_found");
  ApiKey k;
  k.id = "key_x";
  k.tenant_id = "ten_nope";
  EXPECT_ERROR(store().CreateApiKey(k, {1, 2, 3}), ErrorKind::kNotFound, "tenant_not_found");
}

TEST_P(StoreConformanceTest, UpdateTenantReplacesFields) {
  Tenant t = NewTenant("Old");
  t.name = "New";
  t.delivery_deadline_minutes = 10;
  t.default_consent_days = 7;
  Result<Tenant> updated = store().UpdateTenant(t);
  ASSERT_OK(updated);
  EXPECT_EQ(updated->created_at, t.created_at);
  EXPECT_GE(updated->updated_at, t.created_at);
  Result<Tenant> got = store().GetTenant(t.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->name, "New");
  EXPECT_EQ(got->delivery_deadline_minutes, 10);
  EXPECT_EQ(got->default_consent_days, 7);
}

TEST_P(StoreConformanceTest, ListTenantsPagesWithCursor) {
  std::set<std::string> created;
  for (int i = 0; i < 7; ++i) created.insert(NewTenant("T" + std::to_string(i)).id);
  std::vector<std::string> seen;
  PageRequest page{"", 3};
  int pages = 0;
  do {
    Result<Page<Tenant>> r = store().ListTenants(page);
    ASSERT_OK(r);
    EXPECT_LE(r->items.size(), 3u);
    for (const Tenant& t : r->items) seen.push_back(t.id);
    page.cursor = r->next_cursor;
    ++pages;
  } while (!page.cursor.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), created);
  EXPECT_EQ(seen.size(), created.size());
}

TEST_P(StoreConformanceTest, PageLimitIsClampedAndGarbageCursorRefused) {
  for (int i = 0; i < 3; ++i) NewTenant();
  Result<Page<Tenant>> one = store().ListTenants(PageRequest{"", 0});
  ASSERT_OK(one);
  EXPECT_EQ(one->items.size(), 1u);
  EXPECT_FALSE(one->next_cursor.empty());
  Result<Page<Tenant>> all = store().ListTenants(PageRequest{"", 1000000});
  ASSERT_OK(all);
  EXPECT_EQ(all->items.size(), 3u);
  EXPECT_TRUE(all->next_cursor.empty());
  for (const char* garbage : {"!!!", "bm90LWEtY3Vyc29y", "x"}) {
    Result<Page<Tenant>> r = store().ListTenants(PageRequest{garbage, 10});
    EXPECT_ERROR(r, ErrorKind::kInvalid, "invalid_cursor");
    EXPECT_EQ(r.error().field, "cursor");
  }
}

// ---- API keys ------------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, ApiKeysAreStoredListedAndRevoked) {
  Tenant a = NewTenant("A");
  Tenant b = NewTenant("B");
  ApiKey key;
  key.id = "key_one";
  key.tenant_id = a.id;
  key.name = "import";
  key.scopes = {"users:read", "users:write"};
  std::vector<uint8_t> hash(32, 7);
  ASSERT_OK(store().CreateApiKey(key, hash));
  EXPECT_ERROR(store().CreateApiKey(key, hash), ErrorKind::kConflict, "duplicate_key");

  Result<ApiKeyRecord> got = store().GetApiKey("key_one");
  ASSERT_OK(got);
  EXPECT_EQ(got->key.tenant_id, a.id);
  EXPECT_EQ(got->key.name, "import");
  EXPECT_EQ(got->key.scopes, key.scopes);
  EXPECT_EQ(got->hash, hash);
  EXPECT_FALSE(got->key.revoked_at.has_value());
  EXPECT_GT(got->key.created_at, 0);
  EXPECT_ERROR(store().GetApiKey("key_none"), ErrorKind::kNotFound, "key_not_found");

  Result<std::vector<ApiKey>> listed_a = store().ListApiKeys(a.id);
  ASSERT_OK(listed_a);
  ASSERT_EQ(listed_a->size(), 1u);
  Result<std::vector<ApiKey>> listed_b = store().ListApiKeys(b.id);
  ASSERT_OK(listed_b);
  EXPECT_TRUE(listed_b->empty());

  // Another tenant cannot revoke it; the key stays valid.
  EXPECT_ERROR(store().RevokeApiKey(b.id, "key_one"), ErrorKind::kNotFound, "key_not_found");
  EXPECT_FALSE(store().GetApiKey("key_one")->key.revoked_at.has_value());

  ASSERT_OK(store().RevokeApiKey(a.id, "key_one"));
  Result<ApiKeyRecord> revoked = store().GetApiKey("key_one");
  ASSERT_OK(revoked);
  ASSERT_TRUE(revoked->key.revoked_at.has_value());
  UnixMillis at = *revoked->key.revoked_at;
  ASSERT_OK(store().RevokeApiKey(a.id, "key_one"));  // idempotent, keeps the first time
  EXPECT_EQ(*store().GetApiKey("key_one")->key.revoked_at, at);
  EXPECT_ERROR(store().RevokeApiKey(a.id, "key_none"), ErrorKind::kNotFound, "key_not_found");
}

// ---- provider settings ---------------------------------------------------------------------------

TEST_P(StoreConformanceTest, ProviderSettingsRoundTripAndAreTenantScoped) {
  Tenant a = NewTenant("A");
  Tenant b = NewTenant("B");
  ProviderSettings s{a.id, Channel::kEmail, R"({"providers":[{"name":"smtp","password":"pw"}]})",
                     0};
  ASSERT_OK(store().PutProviderSettings(s));
  Result<ProviderSettings> got = store().GetProviderSettings(a.id, Channel::kEmail);
  ASSERT_OK(got);
  EXPECT_EQ(got->config_json, s.config_json);
  EXPECT_EQ(got->tenant_id, a.id);
  EXPECT_GT(got->updated_at, 0);

  s.config_json = R"({"providers":[]})";
  ASSERT_OK(store().PutProviderSettings(s));
  EXPECT_EQ(store().GetProviderSettings(a.id, Channel::kEmail)->config_json, s.config_json);

  EXPECT_ERROR(store().GetProviderSettings(a.id, Channel::kSms), ErrorKind::kNotFound,
               "provider_settings_not_found");
  EXPECT_ERROR(store().GetProviderSettings(b.id, Channel::kEmail), ErrorKind::kNotFound,
               "provider_settings_not_found");
}

// ---- users ---------------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, PutUserCreatesThenReplaces) {
  Tenant t = NewTenant();
  User u = MakeUser(t.id, "u1", {Dev(Channel::kEmail, "ada@example.com")}, {"b", "a", "a"});
  PutUserOutcome first = Put(u);
  EXPECT_TRUE(first.created);
  EXPECT_EQ(first.user.version, 1);
  EXPECT_EQ(first.user.groups, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(first.user.devices.size(), 1u);
  EXPECT_EQ(first.user.devices[0].id.rfind("dev_", 0), 0u);

  Result<User> got = store().GetUser(t.id, "u1");
  ASSERT_OK(got);
  EXPECT_EQ(got->name, u.name);
  EXPECT_EQ(got->opt_in, true);
  EXPECT_EQ(got->consent_from, u.consent_from);
  EXPECT_EQ(got->consent_until, u.consent_until);
  EXPECT_EQ(got->version, 1);
  EXPECT_EQ(got->groups, first.user.groups);
  ASSERT_EQ(got->devices.size(), 1u);
  EXPECT_EQ(got->devices[0].id, first.user.devices[0].id);
  EXPECT_EQ(got->devices[0].address, "ada@example.com");
  EXPECT_EQ(got->devices[0].channel, Channel::kEmail);

  u.name = "Renamed";
  u.opt_in = false;
  PutUserOutcome second = Put(u);
  EXPECT_FALSE(second.created);
  EXPECT_EQ(second.user.version, 2);
  EXPECT_EQ(second.user.created_at, first.user.created_at);
  got = store().GetUser(t.id, "u1");
  ASSERT_OK(got);
  EXPECT_EQ(got->name, "Renamed");
  EXPECT_FALSE(got->opt_in);
  EXPECT_EQ(got->version, 2);
}

TEST_P(StoreConformanceTest, PutUserResultMatchesGetUser) {
  Tenant t = NewTenant();
  User u = MakeUser(t.id, "u1",
                    {Dev(Channel::kIos, IosToken(1)), Dev(Channel::kSms, "+14155550100"),
                     Dev(Channel::kAndroid, "fcm:token-1")},
                    {"g1"});
  PutUserOutcome out = Put(u);
  u.devices = {Dev(Channel::kAndroid, "fcm:token-2"), Dev(Channel::kIos, IosToken(1))};
  out = Put(u);
  Result<User> got = store().GetUser(t.id, "u1");
  ASSERT_OK(got);
  ASSERT_EQ(got->devices.size(), out.user.devices.size());
  for (size_t i = 0; i < got->devices.size(); ++i) {
    EXPECT_EQ(got->devices[i].id, out.user.devices[i].id);
    EXPECT_EQ(got->devices[i].address, out.user.devices[i].address);
    EXPECT_EQ(got->devices[i].channel, out.user.devices[i].channel);
    EXPECT_EQ(got->devices[i].created_at, out.user.devices[i].created_at);
  }
  EXPECT_EQ(got->version, out.user.version);
  EXPECT_EQ(got->created_at, out.user.created_at);
  EXPECT_EQ(got->updated_at, out.user.updated_at);
}

TEST_P(StoreConformanceTest, DeviceKeepsItsIdWhenPutRepeatsItsAddress) {
  Tenant t = NewTenant();
  User u = MakeUser(t.id, "u1",
                    {Dev(Channel::kEmail, "a@example.com"), Dev(Channel::kIos, IosToken(2))});
  PutUserOutcome first = Put(u);
  ASSERT_EQ(first.user.devices.size(), 2u);
  std::string ios_id = first.user.devices[1].id;
  std::string email_id = first.user.devices[0].id;

  // Same token on another channel is another device; a dropped device is gone.
  u.devices = {Dev(Channel::kIos, IosToken(2)), Dev(Channel::kSms, "+14155550101")};
  Put(u);
  Result<User> got = store().GetUser(t.id, "u1");
  ASSERT_OK(got);
  ASSERT_EQ(got->devices.size(), 2u);
  std::set<std::string> ids;
  for (const Device& d : got->devices) {
    ids.insert(d.id);
    if (d.channel == Channel::kIos) {
      EXPECT_EQ(d.id, ios_id);
    } else {
      EXPECT_NE(d.id, ios_id);
    }
  }
  EXPECT_EQ(ids.count(email_id), 0u);
  EXPECT_EQ(ids.size(), 2u);

  // The same address for another user gets its own id.
  User other = MakeUser(t.id, "u2", {Dev(Channel::kIos, IosToken(2))});
  EXPECT_NE(Put(other).user.devices[0].id, ios_id);
}

TEST_P(StoreConformanceTest, PutUserReplacesGroupsAndCreatesMissingOnes) {
  Tenant t = NewTenant();
  Put(MakeUser(t.id, "u1", {}, {"news", "vip"}));
  Result<Group> news = store().GetGroup(t.id, "news");
  ASSERT_OK(news);
  EXPECT_EQ(news->member_count, 1);
  Put(MakeUser(t.id, "u1", {}, {"vip", "weekly"}));
  EXPECT_EQ(store().GetGroup(t.id, "news")->member_count, 0);
  EXPECT_EQ(store().GetGroup(t.id, "weekly")->member_count, 1);
  EXPECT_EQ(store().GetUser(t.id, "u1")->groups, (std::vector<std::string>{"vip", "weekly"}));
}

TEST_P(StoreConformanceTest, VersionConflictChangesNothing) {
  Tenant t = NewTenant();
  User u = MakeUser(t.id, "u1", {Dev(Channel::kEmail, "a@example.com")});
  EXPECT_ERROR(store().PutUser(u, 3), ErrorKind::kConflict, "version_conflict");
  EXPECT_ERROR(store().GetUser(t.id, "u1"), ErrorKind::kNotFound, "user_not_found");
  ASSERT_OK(store().PutUser(u, 0));  // 0 = must not exist
  EXPECT_ERROR(store().PutUser(u, 0), ErrorKind::kConflict, "version_conflict");

  User changed = u;
  changed.name = "Changed";
  changed.devices = {Dev(Channel::kSms, "+14155550102")};
  changed.groups = {"never-created"};
  EXPECT_ERROR(store().PutUser(changed, 7), ErrorKind::kConflict, "version_conflict");
  Result<User> got = store().GetUser(t.id, "u1");
  ASSERT_OK(got);
  EXPECT_EQ(got->name, u.name);
  EXPECT_EQ(got->version, 1);
  ASSERT_EQ(got->devices.size(), 1u);
  EXPECT_EQ(got->devices[0].address, "a@example.com");
  EXPECT_ERROR(store().GetGroup(t.id, "never-created"), ErrorKind::kNotFound, "group_not_found");

  Result<PutUserOutcome> ok = store().PutUser(changed, 1);
  ASSERT_OK(ok);
  EXPECT_EQ(ok->user.version, 2);
}

TEST_P(StoreConformanceTest, RefusedPutUserWritesNothing) {
  Tenant t = NewTenant();
  User u = MakeUser(t.id, "u1", {Dev(Channel::kEmail, "a@example.com")}, {"keep"});
  Put(u);

  User too_many = u;
  too_many.devices.clear();
  for (int i = 0; i < 17; ++i) too_many.devices.push_back(Dev(Channel::kIos, IosToken(100 + i)));
  too_many.groups = {"fresh"};
  EXPECT_ERROR(store().PutUser(too_many), ErrorKind::kInvalid, "too_many_devices");

  User duplicate = u;
  duplicate.devices = {Dev(Channel::kSms, "+14155550103"), Dev(Channel::kSms, "+14155550103")};
  EXPECT_ERROR(store().PutUser(duplicate), ErrorKind::kInvalid, "duplicate_device");

  User expired = u;
  expired.consent_until = NowMillis() - 1000;
  expired.consent_from = expired.consent_until - kDay;
  EXPECT_ERROR(store().PutUser(expired), ErrorKind::kInvalid, "consent_expired");

  Result<User> got = store().GetUser(t.id, "u1");
  ASSERT_OK(got);
  EXPECT_EQ(got->version, 1);
  EXPECT_EQ(got->devices.size(), 1u);
  EXPECT_EQ(got->groups, (std::vector<std::string>{"keep"}));
  EXPECT_ERROR(store().GetGroup(t.id, "fresh"), ErrorKind::kNotFound, "group_not_found");
}

TEST_P(StoreConformanceTest, UsersAreTenantScoped) {
  Tenant a = NewTenant("A");
  Tenant b = NewTenant("B");
  PutUserOutcome ua = Put(MakeUser(a.id, "same", {Dev(Channel::kEmail, "a@example.com")}, {"g"}));
  std::string device_id = ua.user.devices[0].id;
  ASSERT_OK(store().PutGroup(Group{b.id, "g", "", 0, 0}));

  EXPECT_ERROR(store().GetUser(b.id, "same"), ErrorKind::kNotFound, "user_not_found");
  EXPECT_ERROR(store().DeleteUser(b.id, "same"), ErrorKind::kNotFound, "user_not_found");
  EXPECT_ERROR(store().AddDevice(b.id, "same", Dev(Channel::kSms, "+14155550104")),
               ErrorKind::kNotFound, "user_not_found");
  EXPECT_ERROR(store().RemoveDevice(b.id, "same", device_id), ErrorKind::kNotFound,
               "user_not_found");
  EXPECT_ERROR(store().AddMember(b.id, "g", "same"), ErrorKind::kNotFound, "user_not_found");
  EXPECT_ERROR(store().RemoveMember(b.id, "g", "same"), ErrorKind::kNotFound, "user_not_found");
  Result<std::vector<std::string>> missing = store().AddMembers(b.id, "g", {"same"});
  ASSERT_OK(missing);
  EXPECT_EQ(*missing, std::vector<std::string>{"same"});

  // The same external id in tenant B is a different user.
  PutUserOutcome ub = Put(MakeUser(b.id, "same", {Dev(Channel::kEmail, "a@example.com")}));
  EXPECT_TRUE(ub.created);
  EXPECT_NE(ub.user.devices[0].id, device_id);
  EXPECT_ERROR(store().RemoveDevice(b.id, "same", device_id), ErrorKind::kNotFound,
               "device_not_found");
  ASSERT_OK(store().DeleteUser(b.id, "same"));

  Result<User> still = store().GetUser(a.id, "same");
  ASSERT_OK(still);
  EXPECT_EQ(still->version, 1);
  EXPECT_EQ(still->devices.size(), 1u);
  EXPECT_EQ(store().GetGroup(a.id, "g")->member_count, 1);
  EXPECT_EQ(store().GetGroup(b.id, "g")->member_count, 0);
}

TEST_P(StoreConformanceTest, DeleteUserErasesDevicesAndMemberships) {
  Tenant t = NewTenant();
  Put(MakeUser(t.id, "u1", {Dev(Channel::kEmail, "a@example.com")}, {"g"}));
  ASSERT_EQ(store().GetGroup(t.id, "g")->member_count, 1);
  ASSERT_OK(store().DeleteUser(t.id, "u1"));
  EXPECT_ERROR(store().GetUser(t.id, "u1"), ErrorKind::kNotFound, "user_not_found");
  EXPECT_ERROR(store().DeleteUser(t.id, "u1"), ErrorKind::kNotFound, "user_not_found");
  EXPECT_EQ(store().GetGroup(t.id, "g")->member_count, 0);
  // Recreated, the user starts over: new version, no memberships, new device ids.
  PutUserOutcome again = Put(MakeUser(t.id, "u1", {Dev(Channel::kEmail, "a@example.com")}));
  EXPECT_TRUE(again.created);
  EXPECT_EQ(again.user.version, 1);
  EXPECT_TRUE(store().GetUser(t.id, "u1")->groups.empty());
}

TEST_P(StoreConformanceTest, AddAndRemoveDevice) {
  Tenant t = NewTenant();
  Put(MakeUser(t.id, "u1", {Dev(Channel::kEmail, "a@example.com")}));
  Result<Device> added = store().AddDevice(t.id, "u1", Dev(Channel::kSms, "+14155550105"));
  ASSERT_OK(added);
  EXPECT_EQ(added->id.rfind("dev_", 0), 0u);
  EXPECT_EQ(added->address, "+14155550105");
  EXPECT_GT(added->created_at, 0);
  Result<User> got = store().GetUser(t.id, "u1");
  ASSERT_OK(got);
  EXPECT_EQ(got->version, 2);
  ASSERT_EQ(got->devices.size(), 2u);
  EXPECT_EQ(got->devices[1].id, added->id);

  EXPECT_ERROR(store().AddDevice(t.id, "u1", Dev(Channel::kSms, "+14155550105")),
               ErrorKind::kConflict, "duplicate_device");
  EXPECT_ERROR(store().AddDevice(t.id, "nobody", Dev(Channel::kSms, "+14155550105")),
               ErrorKind::kNotFound, "user_not_found");
  EXPECT_EQ(store().GetUser(t.id, "u1")->version, 2);

  ASSERT_OK(store().RemoveDevice(t.id, "u1", added->id));
  EXPECT_ERROR(store().RemoveDevice(t.id, "u1", added->id), ErrorKind::kNotFound,
               "device_not_found");
  got = store().GetUser(t.id, "u1");
  ASSERT_OK(got);
  EXPECT_EQ(got->devices.size(), 1u);
  EXPECT_EQ(got->version, 3);
}

TEST_P(StoreConformanceTest, AtMostSixteenDevices) {
  Tenant t = NewTenant();
  User u = MakeUser(t.id, "u1");
  for (int i = 0; i < 15; ++i) u.devices.push_back(Dev(Channel::kIos, IosToken(i)));
  Put(u);
  ASSERT_OK(store().AddDevice(t.id, "u1", Dev(Channel::kIos, IosToken(15))));
  EXPECT_ERROR(store().AddDevice(t.id, "u1", Dev(Channel::kIos, IosToken(16))),
               ErrorKind::kInvalid, "too_many_devices");
  EXPECT_EQ(store().GetUser(t.id, "u1")->devices.size(), 16u);
}

TEST_P(StoreConformanceTest, PutUsersCommitsGoodLinesAndReportsBadOnes) {
  Tenant t = NewTenant();
  Tenant other = NewTenant("Other");
  Put(MakeUser(t.id, "existing", {Dev(Channel::kEmail, "old@example.com")}));

  std::vector<User> users;
  users.push_back(MakeUser(t.id, "good1", {Dev(Channel::kEmail, "g1@example.com")}, {"imp"}));
  User too_many = MakeUser(t.id, "bad-many", {}, {"bad-group"});
  for (int i = 0; i < 17; ++i) too_many.devices.push_back(Dev(Channel::kIos, IosToken(i)));
  users.push_back(too_many);
  users.push_back(MakeUser(t.id, "good2", {Dev(Channel::kSms, "+14155550106")}, {"imp"}));
  User expired = MakeUser(t.id, "bad-expired");
  expired.consent_until = NowMillis() - 1;
  expired.consent_from = expired.consent_until - kDay;
  users.push_back(expired);
  users.push_back(MakeUser(t.id, "bad-dup",
                           {Dev(Channel::kEmail, "d@example.com"),
                            Dev(Channel::kEmail, "d@example.com")}));
  users.push_back(MakeUser(other.id, "bad-tenant"));
  users.push_back(MakeUser(t.id, "existing", {Dev(Channel::kEmail, "new@example.com")}));
  users.push_back(MakeUser("", "good3"));  // tenant taken from the call

  Result<std::vector<ImportLineResult>> r = store().PutUsers(t.id, users);
  ASSERT_OK(r);
  ASSERT_EQ(r->size(), users.size());
  const std::vector<bool> ok = {true, false, true, false, false, false, true, true};
  const std::vector<bool> created = {true, false, true, false, false, false, false, true};
  for (size_t i = 0; i < users.size(); ++i) {
    EXPECT_EQ((*r)[i].ok, ok[i]) << i << " " << (*r)[i].error.code;
    EXPECT_EQ((*r)[i].created, created[i]) << i;
  }
  EXPECT_EQ((*r)[1].error.code, "too_many_devices");
  EXPECT_EQ((*r)[3].error.code, "consent_expired");
  EXPECT_EQ((*r)[4].error.code, "duplicate_device");
  EXPECT_EQ((*r)[4].error.kind, ErrorKind::kInvalid);
  EXPECT_FALSE((*r)[5].error.code.empty());

  for (const char* id : {"good1", "good2", "good3", "existing"}) {
    EXPECT_TRUE(store().GetUser(t.id, id).ok()) << id;
  }
  for (const char* id : {"bad-many", "bad-expired", "bad-dup", "bad-tenant"}) {
    EXPECT_ERROR(store().GetUser(t.id, id), ErrorKind::kNotFound, "user_not_found");
  }
  EXPECT_ERROR(store().GetUser(other.id, "bad-tenant"), ErrorKind::kNotFound, "user_not_found");
  EXPECT_ERROR(store().GetGroup(t.id, "bad-group"), ErrorKind::kNotFound, "group_not_found");
  EXPECT_EQ(store().GetGroup(t.id, "imp")->member_count, 2);
  Result<User> existing = store().GetUser(t.id, "existing");
  ASSERT_OK(existing);
  EXPECT_EQ(existing->version, 2);
  ASSERT_EQ(existing->devices.size(), 1u);
  EXPECT_EQ(existing->devices[0].address, "new@example.com");
}

// ---- groups --------------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, GroupsAreCreatedRenamedAndDeleted) {
  Tenant t = NewTenant();
  Tenant other = NewTenant("Other");
  Result<Group> g = store().PutGroup(Group{t.id, "news", "News", 0, 0});
  ASSERT_OK(g);
  EXPECT_EQ(g->name, "News");
  EXPECT_EQ(g->member_count, 0);
  EXPECT_GT(g->created_at, 0);
  Put(MakeUser(t.id, "u1", {}, {"news"}));
  Result<Group> renamed = store().PutGroup(Group{t.id, "news", "Daily news", 0, 0});
  ASSERT_OK(renamed);
  EXPECT_EQ(renamed->name, "Daily news");
  EXPECT_EQ(renamed->created_at, g->created_at);
  EXPECT_EQ(renamed->member_count, 1);

  EXPECT_ERROR(store().GetGroup(other.id, "news"), ErrorKind::kNotFound, "group_not_found");
  EXPECT_ERROR(store().DeleteGroup(other.id, "news"), ErrorKind::kNotFound, "group_not_found");
  EXPECT_ERROR(store().AddMember(other.id, "news", "u1"), ErrorKind::kNotFound,
               "group_not_found");
  EXPECT_ERROR(store().ListMembers(other.id, "news", {}), ErrorKind::kNotFound,
               "group_not_found");

  int64_t version = store().GetUser(t.id, "u1")->version;
  ASSERT_OK(store().DeleteGroup(t.id, "news"));
  EXPECT_ERROR(store().GetGroup(t.id, "news"), ErrorKind::kNotFound, "group_not_found");
  EXPECT_ERROR(store().DeleteGroup(t.id, "news"), ErrorKind::kNotFound, "group_not_found");
  Result<User> u = store().GetUser(t.id, "u1");
  ASSERT_OK(u);
  EXPECT_TRUE(u->groups.empty());
  EXPECT_GT(u->version, version);
}

TEST_P(StoreConformanceTest, MembershipsAddRemoveAndBulkAdd) {
  Tenant t = NewTenant();
  ASSERT_OK(store().PutGroup(Group{t.id, "g", "", 0, 0}));
  Put(MakeUser(t.id, "u1"));
  Put(MakeUser(t.id, "u2"));
  EXPECT_ERROR(store().AddMember(t.id, "nope", "u1"), ErrorKind::kNotFound, "group_not_found");
  EXPECT_ERROR(store().AddMember(t.id, "g", "nobody"), ErrorKind::kNotFound, "user_not_found");
  EXPECT_ERROR(store().RemoveMember(t.id, "nope", "u1"), ErrorKind::kNotFound,
               "group_not_found");
  EXPECT_ERROR(store().AddMembers(t.id, "nope", {"u1"}), ErrorKind::kNotFound,
               "group_not_found");

  ASSERT_OK(store().AddMember(t.id, "g", "u1"));
  ASSERT_OK(store().AddMember(t.id, "g", "u1"));  // already a member: fine
  Result<User> u1 = store().GetUser(t.id, "u1");
  ASSERT_OK(u1);
  EXPECT_EQ(u1->groups, std::vector<std::string>{"g"});
  EXPECT_EQ(u1->version, 2);  // bumped once

  Result<std::vector<std::string>> missing =
      store().AddMembers(t.id, "g", {"u1", "ghost", "u2", "phantom"});
  ASSERT_OK(missing);
  EXPECT_EQ(*missing, (std::vector<std::string>{"ghost", "phantom"}));
  EXPECT_EQ(store().GetGroup(t.id, "g")->member_count, 2);

  ASSERT_OK(store().RemoveMember(t.id, "g", "u1"));
  ASSERT_OK(store().RemoveMember(t.id, "g", "u1"));  // not a member: fine
  EXPECT_TRUE(store().GetUser(t.id, "u1")->groups.empty());
  EXPECT_EQ(store().GetGroup(t.id, "g")->member_count, 1);
}

TEST_P(StoreConformanceTest, ListMembersPagesInExternalIdOrder) {
  Tenant t = NewTenant();
  std::vector<std::string> ids;
  std::vector<User> users;
  for (int i = 0; i < 25; ++i) {
    std::string id = "m" + std::to_string(1000 - i * 7);
    ids.push_back(id);
    users.push_back(MakeUser(t.id, id, {}, {"g"}));
  }
  users.push_back(MakeUser(t.id, "not-a-member"));
  ASSERT_OK(store().PutUsers(t.id, users));
  std::sort(ids.begin(), ids.end());

  std::vector<std::string> seen;
  PageRequest page{"", 10};
  int pages = 0;
  do {
    Result<Page<std::string>> r = store().ListMembers(t.id, "g", page);
    ASSERT_OK(r);
    seen.insert(seen.end(), r->items.begin(), r->items.end());
    page.cursor = r->next_cursor;
    ++pages;
  } while (!page.cursor.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, ids);

  EXPECT_ERROR(store().ListMembers(t.id, "g", PageRequest{"garbage!", 10}), ErrorKind::kInvalid,
               "invalid_cursor");
  // A cursor of another listing is not a members cursor.
  NewTenant("Second");
  Result<Page<Tenant>> tenants = store().ListTenants(PageRequest{"", 1});
  ASSERT_OK(tenants);
  ASSERT_FALSE(tenants->next_cursor.empty());
  EXPECT_ERROR(store().ListMembers(t.id, "g", PageRequest{tenants->next_cursor, 10}),
               ErrorKind::kInvalid, "invalid_cursor");
}

// ---- consent -------------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, ExpiredUserIsInvisibleBeforeErasure) {
  Tenant t = NewTenant();
  ASSERT_OK(store().PutGroup(Group{t.id, "other", "", 0, 0}));
  User u = MakeUser(t.id, "brief", {Dev(Channel::kEmail, "brief@example.com")}, {"g"});
  u.consent_until = NowMillis() + 400;
  PutUserOutcome out = Put(u);
  Put(MakeUser(t.id, "lasting", {}, {"g"}));
  ASSERT_OK(store().GetUser(t.id, "brief"));
  ASSERT_EQ(store().GetGroup(t.id, "g")->member_count, 2);

  std::this_thread::sleep_until(std::chrono::system_clock::time_point(
      std::chrono::milliseconds(u.consent_until + 20)));

  EXPECT_ERROR(store().GetUser(t.id, "brief"), ErrorKind::kNotFound, "user_not_found");
  EXPECT_ERROR(store().AddDevice(t.id, "brief", Dev(Channel::kSms, "+14155550107")),
               ErrorKind::kNotFound, "user_not_found");
  EXPECT_ERROR(store().RemoveDevice(t.id, "brief", out.user.devices[0].id), ErrorKind::kNotFound,
               "user_not_found");
  EXPECT_ERROR(store().AddMember(t.id, "other", "brief"), ErrorKind::kNotFound,
               "user_not_found");
  EXPECT_ERROR(store().DeleteUser(t.id, "brief"), ErrorKind::kNotFound, "user_not_found");
  Result<std::vector<std::string>> missing = store().AddMembers(t.id, "other", {"brief"});
  ASSERT_OK(missing);
  EXPECT_EQ(*missing, std::vector<std::string>{"brief"});
  Result<Page<std::string>> members = store().ListMembers(t.id, "g", {});
  ASSERT_OK(members);
  EXPECT_EQ(members->items, std::vector<std::string>{"lasting"});
  EXPECT_EQ(store().GetGroup(t.id, "g")->member_count, 1);

  // A PUT starts a new user: nothing of the expired one survives.
  User fresh = MakeUser(t.id, "brief", {Dev(Channel::kEmail, "brief@example.com")});
  Result<PutUserOutcome> again = store().PutUser(fresh, 0);
  ASSERT_OK(again);
  EXPECT_TRUE(again->created);
  EXPECT_EQ(again->user.version, 1);
  EXPECT_NE(again->user.devices[0].id, out.user.devices[0].id);
  EXPECT_TRUE(store().GetUser(t.id, "brief")->groups.empty());
}

TEST_P(StoreConformanceTest, NextConsentExpiryAndErasure) {
  EXPECT_FALSE(store().NextConsentExpiry()->has_value());
  Tenant a = NewTenant("A");
  Tenant b = NewTenant("B");
  UnixMillis now = NowMillis();
  User u1 = MakeUser(a.id, "u1", {Dev(Channel::kEmail, "u1@example.com")}, {"g"});
  u1.consent_until = now + 10 * kDay;
  User u2 = MakeUser(b.id, "u2", {Dev(Channel::kEmail, "u2@example.com")}, {"g"});
  u2.consent_until = now + 5 * kDay;
  User u3 = MakeUser(a.id, "u3", {}, {"g"});
  u3.consent_until = now + 20 * kDay;
  Put(u1);
  Put(u2);
  Put(u3);
  Result<std::optional<UnixMillis>> next = store().NextConsentExpiry();
  ASSERT_OK(next);
  EXPECT_EQ(*next, u2.consent_until);

  Result<int64_t> erased = store().EraseExpiredUsers(now, 100);  // nobody is due yet
  ASSERT_OK(erased);
  EXPECT_EQ(*erased, 0);
  EXPECT_EQ(*store().EraseExpiredUsers(now + 30 * kDay, 0), 0);  // limit 0 erases nothing

  erased = store().EraseExpiredUsers(now + 15 * kDay, 1);  // limit: the earliest first
  ASSERT_OK(erased);
  EXPECT_EQ(*erased, 1);
  EXPECT_EQ(**store().NextConsentExpiry(), u1.consent_until);
  erased = store().EraseExpiredUsers(now + 15 * kDay, 100);
  ASSERT_OK(erased);
  EXPECT_EQ(*erased, 1);
  EXPECT_EQ(**store().NextConsentExpiry(), u3.consent_until);

  // Rows are gone, with their devices and memberships: a new PUT creates a fresh user.
  EXPECT_EQ(store().GetGroup(a.id, "g")->member_count, 1);
  EXPECT_EQ(store().GetGroup(b.id, "g")->member_count, 0);
  PutUserOutcome again = Put(MakeUser(a.id, "u1", {Dev(Channel::kEmail, "u1@example.com")}));
  EXPECT_TRUE(again.created);
  EXPECT_TRUE(store().GetUser(a.id, "u1")->groups.empty());
  Result<Page<std::string>> members = store().ListMembers(a.id, "g", {});
  ASSERT_OK(members);
  EXPECT_EQ(members->items, std::vector<std::string>{"u3"});
}

TEST_P(StoreConformanceTest, ConsentListenerHearsTheEarliestWrittenExpiry) {
  std::mutex mu;
  std::vector<UnixMillis> heard;
  store().SetConsentExpiryListener([&](UnixMillis t) {
    std::lock_guard lock(mu);
    heard.push_back(t);
  });
  Tenant t = NewTenant();
  User u = MakeUser(t.id, "u1");
  u.consent_until = NowMillis() + 5 * kDay;
  Put(u);
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(heard.size(), 1u);
    EXPECT_EQ(heard[0], u.consent_until);
  }
  std::vector<User> batch;
  for (int i = 0; i < 5; ++i) {
    User b = MakeUser(t.id, "b" + std::to_string(i));
    b.consent_until = NowMillis() + (10 - i) * kDay;
    batch.push_back(b);
  }
  User bad = MakeUser(t.id, "bad");
  bad.consent_until = NowMillis() + 1000;
  bad.devices.assign(17, Dev(Channel::kEmail, "x@example.com"));  // refused: not written
  batch.push_back(bad);
  UnixMillis earliest = batch[4].consent_until;
  ASSERT_OK(store().PutUsers(t.id, batch));
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(heard.size(), 2u);
    EXPECT_EQ(heard[1], earliest);
  }
  // A refused write tells nothing.
  EXPECT_FALSE(store().PutUser(bad).ok());
  std::lock_guard lock(mu);
  EXPECT_EQ(heard.size(), 2u);
}

TEST_P(StoreConformanceTest, TenThousandUsersExpiringTogetherAreErasedWithinASecond) {
  Tenant t = NewTenant();
  UnixMillis until = NowMillis() + 60 * 1000;
  constexpr int kUsers = 10000;
  for (int base = 0; base < kUsers; base += 1000) {
    std::vector<User> users;
    for (int i = base; i < base + 1000; ++i) {
      User u = MakeUser(t.id, "u" + std::to_string(i),
                        {Dev(Channel::kEmail, "u" + std::to_string(i) + "@example.com"),
                         Dev(Channel::kIos, IosToken(i))},
                        {"all"});
      u.consent_until = until;
      users.push_back(std::move(u));
    }
    Result<std::vector<ImportLineResult>> r = store().PutUsers(t.id, std::move(users));
    ASSERT_OK(r);
    for (const ImportLineResult& line : *r) ASSERT_TRUE(line.ok) << line.error.code;
  }
  ASSERT_EQ(**store().NextConsentExpiry(), until);

  auto start = std::chrono::steady_clock::now();
  int64_t total = 0;
  for (int calls = 0; calls < 100; ++calls) {
    Result<int64_t> erased = store().EraseExpiredUsers(until, 1000);
    ASSERT_OK(erased);
    if (*erased == 0) break;
    total += *erased;
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(total, kUsers);
  EXPECT_LT(elapsed, std::chrono::seconds(1))
      << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms";
  std::printf("[ info ] erased %d users (2 devices, 1 group each) in %lld ms\n", kUsers,
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()));

  EXPECT_FALSE(store().NextConsentExpiry()->has_value());
  EXPECT_EQ(store().GetGroup(t.id, "all")->member_count, 0);
  for (int i = 0; i < kUsers; ++i) {
    ASSERT_FALSE(store().GetUser(t.id, "u" + std::to_string(i)).ok()) << i;
  }
}

// ---- audit ---------------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, AuditIsListedNewestFirstPerTenant) {
  for (int i = 0; i < 12; ++i) {
    AuditRecord r;
    r.tenant_id = i % 3 == 0 ? "ten_b" : "ten_a";
    r.actor = "key_x";
    r.method = "PUT";
    r.route = "/v1/users/{external_id}";
    r.status = 200 + i;
    r.request_id = "req" + std::to_string(i);
    r.latency_us = i;
    store().AppendAudit(r);
  }
  ASSERT_OK(store().Flush());

  std::vector<AuditRecord> seen;
  PageRequest page{"", 3};
  int pages = 0;
  do {
    Result<Page<AuditRecord>> r = store().ListAudit("ten_a", page);
    ASSERT_OK(r);
    seen.insert(seen.end(), r->items.begin(), r->items.end());
    page.cursor = r->next_cursor;
    ++pages;
  } while (!page.cursor.empty() && pages < 10);
  ASSERT_EQ(seen.size(), 8u);
  EXPECT_EQ(pages, 3);
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_GT(seen[i - 1].id, seen[i].id);
  EXPECT_EQ(seen.front().request_id, "req11");
  EXPECT_EQ(seen.front().status, 211);
  EXPECT_EQ(seen.front().route, "/v1/users/{external_id}");
  EXPECT_EQ(seen.front().latency_us, 11);
  EXPECT_GT(seen.front().at, 0);
  for (const AuditRecord& r : seen) EXPECT_EQ(r.tenant_id, "ten_a");

  Result<Page<AuditRecord>> b = store().ListAudit("ten_b", PageRequest{"", 100});
  ASSERT_OK(b);
  EXPECT_EQ(b->items.size(), 4u);
  EXPECT_ERROR(store().ListAudit("ten_a", PageRequest{"zzz", 10}), ErrorKind::kInvalid,
               "invalid_cursor");
}

// ---- concurrency and health ----------------------------------------------------------------------

TEST_P(StoreConformanceTest, ConcurrentWritersAllCommit) {
  Tenant t = NewTenant();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 60;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string id = "t" + std::to_string(th) + "-" + std::to_string(i);
        User u = MakeUser(t.id, id, {Dev(Channel::kEmail, id + "@example.com")}, {"all"});
        if (!store().PutUser(u, 0).ok()) ++failures;
        // Failing writes share batches with good ones and must not disturb them.
        if (store().PutUser(u, 0).ok()) ++failures;
        if (store().AddDevice(t.id, id, Dev(Channel::kEmail, id + "@example.com")).ok()) {
          ++failures;
        }
        AuditRecord r;
        r.tenant_id = t.id;
        r.request_id = id;
        store().AppendAudit(r);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  ASSERT_OK(store().Flush());
  EXPECT_EQ(failures.load(), 0);

  for (int th = 0; th < kThreads; ++th) {
    for (int i = 0; i < kPerThread; ++i) {
      std::string id = "t" + std::to_string(th) + "-" + std::to_string(i);
      Result<User> u = store().GetUser(t.id, id);
      ASSERT_OK(u);
      EXPECT_EQ(u->version, 1);
      EXPECT_EQ(u->devices.size(), 1u);
    }
  }
  EXPECT_EQ(store().GetGroup(t.id, "all")->member_count, kThreads * kPerThread);
  size_t audited = 0;
  PageRequest page{"", 1000};
  do {
    Result<Page<AuditRecord>> r = store().ListAudit(t.id, page);
    ASSERT_OK(r);
    audited += r->items.size();
    page.cursor = r->next_cursor;
  } while (!page.cursor.empty());
  EXPECT_EQ(audited, static_cast<size_t>(kThreads * kPerThread));
  if (GetParam().batches_writes) {
    EXPECT_GT(max_batch_.load(), 1u) << "no batch held more than one write";
    std::printf("[ info ] %zu batches, largest %zu writes\n", batches_.load(), max_batch_.load());
  }
}

TEST_P(StoreConformanceTest, PingAnswers) { ASSERT_OK(store().Ping()); }

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformanceTest, ::testing::ValuesIn(Backends()),
                         [](const ::testing::TestParamInfo<BackendFactory>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace herald

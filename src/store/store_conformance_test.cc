// The Store conformance suite: every backend must pass it. Written only against the Store
// interface (store.h), it runs once per backend in Backends() below; the fixture is in
// store_conformance.h and the tests are spread over store_conformance*_test.cc. This file holds
// the backend list, tenants, API keys, provider settings, audit, concurrency and health.
#include "store/store_conformance.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "crypto/crypto.h"
#include "store/postgres/postgres_store.h"
#include "store/sqlite/sqlite_store.h"
#include "testing/pg_test_server.h"

namespace herald::store_test {
namespace {

// ---- backends ----

class SqliteBackend : public TestBackend {
 public:
  explicit SqliteBackend(BackendOptions options) {
    SqliteStoreOptions o;
    o.path = dir_.path() + "/herald.db";
    o.master_key = crypto::RandomKey();
    o.read_connections = 4;
    o.on_batch = std::move(options.on_batch);
    o.clock = std::move(options.clock);
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

// A fresh schema of the process's throwaway PostgreSQL server (testing/pg_test_server.h).
class PostgresBackend : public TestBackend {
 public:
  explicit PostgresBackend(BackendOptions options) {
    pgtest::PgTestServer* server = pgtest::PgTestServer::Shared();
    if (server == nullptr) {
      ADD_FAILURE() << "no PostgreSQL test server (see the message above)";
      return;
    }
    PostgresStoreOptions o;
    o.uri = server->FreshSchemaUri("conf");
    o.master_key = crypto::RandomKey();
    o.connections = 4;
    // Audiences of 16 members and more are split into parts: every fan-out test of the suite
    // then also walks several parts.
    o.fanout_part_users = 8;
    o.on_batch = std::move(options.on_batch);
    o.clock = std::move(options.clock);
    Result<std::unique_ptr<Store>> store = OpenPostgresStore(std::move(o));
    if (!store.ok()) {
      ADD_FAILURE() << "OpenPostgresStore: " << ErrorText(store);
      return;
    }
    store_ = std::move(*store);
  }
  ~PostgresBackend() override { store_.reset(); }
  Store& store() override { return *store_; }

 private:
  std::unique_ptr<Store> store_;
};

std::vector<BackendFactory> Backends() {
  std::vector<BackendFactory> out;
  out.push_back(BackendFactory{"Sqlite", true, [](BackendOptions o) {
                                 return std::make_unique<SqliteBackend>(std::move(o));
                               }});
  out.push_back(BackendFactory{"Postgres", true, [](BackendOptions o) {
                                 return std::make_unique<PostgresBackend>(std::move(o));
                               }});
  return out;
}

// ---- tenants ----

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
  EXPECT_EQ(got->rate_limits, RateLimits{}) << "no overrides: the defaults apply";
}

TEST_P(StoreConformanceTest, TenantRateLimitsAreKeptAndReplaced) {
  Tenant t = NewTenant("Limited");
  t.rate_limits[RateClass::kSends] = RateQuota{500, 1, 50};
  t.rate_limits[RateClass::kImports] = RateQuota{3, 3600, 0};
  ASSERT_OK(store().UpdateTenant(t));
  Result<Tenant> got = store().GetTenant(t.id);
  ASSERT_OK(got);
  EXPECT_EQ(got->rate_limits, t.rate_limits);
  t.rate_limits[RateClass::kSends].reset();
  ASSERT_OK(store().UpdateTenant(t));
  got = store().GetTenant(t.id);
  ASSERT_OK(got);
  EXPECT_FALSE(got->rate_limits[RateClass::kSends].has_value());
  EXPECT_EQ(got->rate_limits[RateClass::kImports], (RateQuota{3, 3600, 0}));
  Result<Page<Tenant>> listed = store().ListTenants(PageRequest{});
  ASSERT_OK(listed);
  bool found = false;
  for (const Tenant& each : listed->items) {
    if (each.id == t.id) found = each.rate_limits == t.rate_limits;
  }
  EXPECT_TRUE(found) << "listings carry the limits too";
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

// ---- API keys ----

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

// ---- provider settings ----

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

// ---- audit ----

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

// ---- concurrency and health ----

TEST_P(StoreConformanceTest, ConcurrentWritersAllCommit) {
  Tenant t = NewTenant();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 60;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
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
}  // namespace herald::store_test

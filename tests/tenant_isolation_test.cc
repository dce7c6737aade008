// Tenants are walls (DESIGN §4.4): tenant B's key on tenant A's ids answers 404 — never 403,
// never A's data — on every tenant route, and A's data is unchanged afterwards. Admin routes
// refuse tenant keys and tenant routes refuse the admin token.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/api_helpers.h"
#include "support/herald_process.h"
#include "support/stores.h"

namespace herald::e2e {
namespace {

using nlohmann::json;

// Personal data of tenant A that must never show up in an answer to tenant B.
constexpr const char* kA1Name = "Ansgar Aalto-Isolation";
constexpr const char* kA1Email = "ansgar.isolation@tenant-a.example";
constexpr const char* kA1Phone = "+447911123456";
constexpr const char* kA2Name = "Birgit Isolation-Second";
constexpr const char* kA3Name = "Cosima Isolation-Third";
const std::string kA1Apns = std::string(64, 'a');
constexpr const char* kA1Fcm = "fcm-token-of-tenant-a:ISOLATION_1";

// On each store (support/stores.h): one server per store, shared by the suite's tests.
class TenantIsolationTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void TearDownTestSuite() {
    for (auto& [store, server] : servers_) {
      server->Stop();
      delete server;
    }
    servers_.clear();
  }

  void SetUp() override {
    HeraldProcess*& server = servers_[GetParam()];
    if (server == nullptr) {
      // Every route is tried with wrong credentials here: more failures than a client may make.
      HeraldOptions options{.args = {"--auth-failures-per-minute", "100000"}};
      ASSERT_TRUE(UseStore(options, GetParam()));
      server = new HeraldProcess(options);
      ASSERT_TRUE(server->Start()) << server->last_error();
    }
    server_ = server;
    ASSERT_TRUE(server_->Running());
    admin_ = std::make_unique<HttpClient>(server_->AdminClient());
    a_ = CreateTenantWithKey(*admin_, "Tenant A");
    b_ = CreateTenantWithKey(*admin_, "Tenant B");
    ASSERT_FALSE(a_.key.empty());
    ASSERT_FALSE(b_.key.empty());
    ca_ = std::make_unique<HttpClient>(server_->Client());
    ca_->set_bearer(a_.key);
    cb_ = std::make_unique<HttpClient>(server_->Client());
    cb_->set_bearer(b_.key);
  }

  // A registers users with every kind of device, groups with members, and provider settings.
  void PopulateTenantA() {
    const json devices = json::array({{{"channel", "email"}, {"address", kA1Email}},
                                      {{"channel", "sms"}, {"address", kA1Phone}},
                                      {{"channel", "ios"}, {"address", kA1Apns}},
                                      {{"channel", "android"}, {"address", kA1Fcm}}});
    auto r = ca_->Put("/v1/users/a-1", UserBody(kA1Name, devices, {"team-a", "shared"}));
    ASSERT_EQ(r.status, 201) << r.Describe();
    a1_device_id_ = r.Json()["devices"][0]["id"].get<std::string>();
    r = ca_->Put(
        "/v1/users/a-2",
        UserBody(kA2Name, json::array({{{"channel", "email"}, {"address", "birgit@a.example"}}})));
    ASSERT_EQ(r.status, 201) << r.Describe();
    r = ca_->Put("/v1/users/a-3", UserBody(kA3Name));
    ASSERT_EQ(r.status, 201) << r.Describe();
    r = ca_->Put("/v1/groups/team-a", json{{"name", "Team A"}});
    ASSERT_EQ(r.status, 200) << r.Describe();  // created by a-1's groups, renamed here
    r = ca_->Put("/v1/groups/empty-a", json{{"name", "Empty A"}});
    ASSERT_EQ(r.status, 201) << r.Describe();
    r = ca_->Request("PUT", "/v1/groups/team-a/members/a-2");
    ASSERT_EQ(r.status, 204) << r.Describe();
    r = ca_->Post("/v1/groups/shared/members", json{{"users", {"a-3"}}});
    ASSERT_EQ(r.status, 200) << r.Describe();
    r = admin_->Put("/v1/tenants/" + a_.tenant_id + "/providers/email",
                    json{{"providers",
                          {{{"name", "smtp"},
                            {"url", "smtp://mail.tenant-a.example:587"},
                            {"from", "noreply@tenant-a.example"}}}}});
    ASSERT_EQ(r.status, 200) << r.Describe();
  }

  // Every GET body of A's data, by path (tenant-scoped ones with A's key, admin ones as admin).
  std::map<std::string, std::string> SnapshotA() {
    std::map<std::string, std::string> out;
    for (const std::string path :
         {"/v1/users/a-1", "/v1/users/a-2", "/v1/users/a-3", "/v1/groups/team-a",
          "/v1/groups/shared", "/v1/groups/empty-a", "/v1/groups/team-a/members",
          "/v1/groups/shared/members", "/v1/groups/empty-a/members"}) {
      const auto r = ca_->Get(path);
      EXPECT_EQ(r.status, 200) << path << ": " << r.Describe();
      out[path] = std::to_string(r.status) + " " + r.body;
    }
    for (const std::string& path :
         {"/v1/tenants/" + a_.tenant_id, "/v1/tenants/" + a_.tenant_id + "/keys",
          "/v1/tenants/" + a_.tenant_id + "/providers/email"}) {
      const auto r = admin_->Get(path);
      EXPECT_EQ(r.status, 200) << path << ": " << r.Describe();
      out[path] = std::to_string(r.status) + " " + r.body;
    }
    return out;
  }

  // B's answer must be a 404 error that carries none of A's personal data.
  void ExpectHidden(const HttpResponse& r, const std::string& what) {
    EXPECT_EQ(r.status, 404) << "B: " << what << " -> " << r.Describe();
    EXPECT_NE(r.status, 403) << what;
    EXPECT_TRUE(r.Json().contains("error")) << what << " -> " << r.Describe();
    for (const std::string& secret :
         {std::string(kA1Name), std::string(kA1Email), std::string(kA1Phone), kA1Apns,
          std::string(kA1Fcm), std::string(kA2Name), std::string(kA3Name), a1_device_id_}) {
      EXPECT_EQ(r.body.find(secret), std::string::npos)
          << what << " leaked \"" << secret << "\": " << r.body;
    }
  }

  // Audit records are written asynchronously: the tenant's trail once it holds `min` records.
  json AuditOf(HttpClient& c, size_t min) {
    json records;
    for (int i = 0; i < 100; ++i) {
      const auto r = c.Get("/v1/audit?limit=1000");
      EXPECT_EQ(r.status, 200) << r.Describe();
      records = r.Json().value("records", json::array());
      if (records.size() >= min) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return records;
  }

  static std::map<std::string, HeraldProcess*> servers_;
  HeraldProcess* server_ = nullptr;
  std::unique_ptr<HttpClient> admin_, ca_, cb_;
  TenantKey a_, b_;
  std::string a1_device_id_;
};

std::map<std::string, HeraldProcess*> TenantIsolationTest::servers_;

TEST_P(TenantIsolationTest, OtherTenantsUserAndDeviceRoutesAnswer404AndChangeNothing) {
  PopulateTenantA();
  // B has a user of its own, to aim A's device id at.
  ASSERT_EQ(cb_->Put("/v1/users/b-1", UserBody("B One")).status, 201);
  const auto before = SnapshotA();

  for (const std::string id : {"a-1", "a-2", "a-3"}) {
    const std::string path = "/v1/users/" + id;
    ExpectHidden(cb_->Get(path), "GET " + path);
    ExpectHidden(cb_->Patch(path, json{{"name", "Mallory"}}), "PATCH " + path);
    ExpectHidden(cb_->Patch(path, json{{"opt_in", false}}), "PATCH opt_in " + path);
    ExpectHidden(
        cb_->Post(path + "/devices", json{{"channel", "email"}, {"address", "m@b.example"}}),
        "POST " + path + "/devices");
    ExpectHidden(cb_->Delete(path + "/devices/" + a1_device_id_), "DELETE device of " + path);
    ExpectHidden(cb_->Delete(path), "DELETE " + path);
  }
  // A's device id under B's own user is no device of B's.
  ExpectHidden(cb_->Delete("/v1/users/b-1/devices/" + a1_device_id_), "DELETE A's device via b-1");

  EXPECT_EQ(SnapshotA(), before);
}

TEST_P(TenantIsolationTest, PutOfAnotherTenantsExternalIdCreatesTheCallersOwnUser) {
  PopulateTenantA();
  const auto before = SnapshotA();

  // 201 (created), not 200 (replaced): B's namespace had no a-2.
  auto r = cb_->Put(
      "/v1/users/a-2",
      UserBody("Mallory Two", json::array({{{"channel", "email"}, {"address", "m2@b.example"}}})));
  EXPECT_EQ(r.status, 201) << r.Describe();
  EXPECT_EQ(r.Json().value("version", 0), 1) << r.Describe();
  r = cb_->Get("/v1/users/a-2");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.Json()["name"], "Mallory Two");
  ASSERT_EQ(r.Json()["devices"].size(), 1u);
  EXPECT_EQ(r.Json()["devices"][0]["address"], "m2@b.example");
  // B's PATCH and DELETE now act on B's own a-2 only.
  EXPECT_EQ(cb_->Patch("/v1/users/a-2", json{{"name", "Mallory Patched"}}).status, 200);
  EXPECT_EQ(cb_->Delete("/v1/users/a-2").status, 204);
  EXPECT_EQ(cb_->Get("/v1/users/a-2").status, 404);

  EXPECT_EQ(SnapshotA(), before);
  EXPECT_EQ(ca_->Get("/v1/users/a-2").Json()["name"], kA2Name);
}

TEST_P(TenantIsolationTest, OtherTenantsGroupsAndMembersAnswer404AndChangeNothing) {
  PopulateTenantA();
  const auto before = SnapshotA();

  for (const std::string key : {"team-a", "shared", "empty-a"}) {
    const std::string path = "/v1/groups/" + key;
    ExpectHidden(cb_->Get(path), "GET " + path);
    ExpectHidden(cb_->Get(path + "/members"), "GET " + path + "/members");
    ExpectHidden(cb_->Post(path + "/members", json{{"users", {"a-1", "a-2"}}}),
                 "POST " + path + "/members");
    ExpectHidden(cb_->Request("PUT", path + "/members/a-1"), "PUT " + path + "/members/a-1");
    ExpectHidden(cb_->Delete(path + "/members/a-2"), "DELETE " + path + "/members/a-2");
    ExpectHidden(cb_->Delete(path + "/members/a-3"), "DELETE " + path + "/members/a-3");
    ExpectHidden(cb_->Delete(path), "DELETE " + path);
  }
  EXPECT_EQ(SnapshotA(), before);
}

TEST_P(TenantIsolationTest, SameGroupKeyInAnotherTenantIsASeparateEmptyGroup) {
  PopulateTenantA();
  const auto before = SnapshotA();

  // B's PUT creates B's own "shared" (201, not 200), empty, with B's name.
  auto r = cb_->Put("/v1/groups/shared", json{{"name", "B's shared"}});
  ASSERT_EQ(r.status, 201) << r.Describe();
  EXPECT_EQ(r.Json()["member_count"], 0);
  r = cb_->Get("/v1/groups/shared");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.Json()["name"], "B's shared");
  EXPECT_EQ(r.Json()["member_count"], 0);
  r = cb_->Get("/v1/groups/shared/members");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.Json()["users"], json::array());

  // A's users are unknown to B's group.
  ExpectHidden(cb_->Request("PUT", "/v1/groups/shared/members/a-1"), "PUT B-shared/members/a-1");
  ExpectHidden(cb_->Delete("/v1/groups/shared/members/a-3"), "DELETE B-shared/members/a-3");
  r = cb_->Post("/v1/groups/shared/members", json{{"users", {"a-1", "a-2", "a-3"}}});
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.Json()["added"], 0);
  EXPECT_EQ(r.Json()["unknown_users"], json({"a-1", "a-2", "a-3"}));
  EXPECT_EQ(cb_->Get("/v1/groups/shared").Json()["member_count"], 0);

  // Deleting B's group leaves A's.
  EXPECT_EQ(cb_->Delete("/v1/groups/shared").status, 204);
  ExpectHidden(cb_->Get("/v1/groups/shared"), "GET shared after B deleted its own");
  EXPECT_EQ(SnapshotA(), before);
}

TEST_P(TenantIsolationTest, ImportOfAnotherTenantsExternalIdsCreatesTheCallersOwnUsers) {
  PopulateTenantA();
  const auto before = SnapshotA();

  const std::string ndjson =
      R"({"external_id":"a-1","name":"Imported By B","opt_in":false,"groups":["team-a"]})"
      "\n"
      R"({"external_id":"a-3","name":"Also B","opt_in":true,"groups":["shared"]})"
      "\n";
  auto r = cb_->Import(ndjson);
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.Json()["created"], 2) << r.Describe();  // not "replaced": B had neither
  EXPECT_EQ(r.Json()["replaced"], 0) << r.Describe();
  EXPECT_EQ(r.Json()["refused"], 0) << r.Describe();

  r = cb_->Get("/v1/users/a-1");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.Json()["name"], "Imported By B");
  EXPECT_EQ(r.Json()["devices"], json::array());
  // B's "team-a" holds B's a-1 only; A's team-a is untouched.
  r = cb_->Get("/v1/groups/team-a/members");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.Json()["users"], json({"a-1"}));

  EXPECT_EQ(SnapshotA(), before);
}

TEST_P(TenantIsolationTest, AuditShowsOnlyTheCallersOwnRecords) {
  PopulateTenantA();
  ExpectHidden(cb_->Get("/v1/users/a-1"), "GET a-1");
  ASSERT_EQ(cb_->Put("/v1/users/b-audit", UserBody("B audit")).status, 201);

  // B's trail: B's calls (and the admin's on B's tenant), never A's key.
  const json b_records = AuditOf(*cb_, 3);
  ASSERT_GE(b_records.size(), 3u);
  bool saw_hidden_get = false;
  for (const auto& rec : b_records) {
    const std::string actor = rec.value("actor", "");
    EXPECT_TRUE(actor == b_.key_id || actor == "admin") << rec.dump();
    EXPECT_NE(actor, a_.key_id) << rec.dump();
    if (rec.value("route", "") == "/v1/users/{external_id}" && rec.value("method", "") == "GET" &&
        rec.value("status", 0) == 404) {
      saw_hidden_get = true;
    }
  }
  EXPECT_TRUE(saw_hidden_get) << "B's 404 GET is missing from B's audit: " << b_records.dump();

  // A's trail holds A's calls and none of B's.
  const json a_records = AuditOf(*ca_, 8);
  ASSERT_GE(a_records.size(), 8u);
  for (const auto& rec : a_records) {
    const std::string actor = rec.value("actor", "");
    EXPECT_TRUE(actor == a_.key_id || actor == "admin") << rec.dump();
  }
}

TEST_P(TenantIsolationTest, AdminRoutesRefuseTenantKeys) {
  PopulateTenantA();
  const auto before = SnapshotA();
  const std::string t = "/v1/tenants/" + a_.tenant_id;
  struct Call {
    std::string method, path, body;
  };
  const std::vector<Call> calls = {
      {"POST", "/v1/tenants", R"({"name":"Evil","delivery_deadline_minutes":10})"},
      {"GET", "/v1/tenants", ""},
      {"GET", t, ""},
      {"PATCH", t, R"({"name":"Renamed"})"},
      {"POST", t + "/keys", R"({"name":"stolen","scopes":["users:read"]})"},
      {"GET", t + "/keys", ""},
      {"DELETE", t + "/keys/" + a_.key_id, ""},
      {"PUT", t + "/providers/email", R"({"providers":[{"name":"sendgrid"}]})"},
      {"GET", t + "/providers/email", ""},
  };
  for (const auto& key : {b_.key, a_.key}) {  // another tenant's key, and A's own
    HttpClient c = server_->Client();
    c.set_bearer(key);
    for (const auto& call : calls) {
      const auto r = c.Request(call.method, call.path, call.body);
      EXPECT_TRUE(IsError(r, 401, "invalid_credentials"))
          << call.method << " " << call.path << (key == a_.key ? " (A's key)" : " (B's key)");
    }
  }
  // Even the admin cannot revoke A's key through B's path.
  EXPECT_TRUE(IsError(admin_->Delete("/v1/tenants/" + b_.tenant_id + "/keys/" + a_.key_id), 404,
                      "key_not_found"));
  EXPECT_EQ(SnapshotA(), before);
  // A's key still works: it was not revoked by the refused DELETEs.
  EXPECT_EQ(ca_->Get("/v1/users/a-1").status, 200);
}

TEST_P(TenantIsolationTest, TenantRoutesRefuseTheAdminToken) {
  PopulateTenantA();
  const auto before = SnapshotA();
  struct Call {
    std::string method, path, body;
  };
  const std::vector<Call> calls = {
      {"PUT", "/v1/users/a-1", R"({"name":"Admin","opt_in":true})"},
      {"PATCH", "/v1/users/a-1", R"({"name":"Admin"})"},
      {"GET", "/v1/users/a-1", ""},
      {"DELETE", "/v1/users/a-1", ""},
      {"POST", "/v1/users/a-1/devices", R"({"channel":"email","address":"x@y.example"})"},
      {"DELETE", "/v1/users/a-1/devices/" + a1_device_id_, ""},
      {"POST", "/v1/users:import", "{\"external_id\":\"adm\",\"opt_in\":true}\n"},
      {"PUT", "/v1/groups/team-a", R"({"name":"Admin"})"},
      {"GET", "/v1/groups/team-a", ""},
      {"DELETE", "/v1/groups/team-a", ""},
      {"GET", "/v1/groups/team-a/members", ""},
      {"POST", "/v1/groups/team-a/members", R"({"users":["a-3"]})"},
      {"PUT", "/v1/groups/team-a/members/a-3", ""},
      {"DELETE", "/v1/groups/team-a/members/a-2", ""},
      {"GET", "/v1/audit", ""},
  };
  for (const auto& call : calls) {
    const auto r = admin_->Request(call.method, call.path, call.body);
    EXPECT_TRUE(IsError(r, 401, "invalid_credentials")) << call.method << " " << call.path;
  }
  // And without any credentials.
  HttpClient anonymous = server_->Client();
  for (const auto& call : calls) {
    const auto r = anonymous.Request(call.method, call.path, call.body);
    EXPECT_TRUE(IsError(r, 401, "missing_credentials")) << call.method << " " << call.path;
  }
  EXPECT_EQ(SnapshotA(), before);
}

INSTANTIATE_TEST_SUITE_P(Stores, TenantIsolationTest, ::testing::ValuesIn(Stores()), StoreName);

}  // namespace
}  // namespace herald::e2e

#include "api/api_test_fixture.h"

namespace herald::api {
namespace {

TEST_F(ApiSession, EveryCallIsAuditedWithoutSecretsOrPii) {
  const std::string tenant = NewTenant();
  const std::string key = NewKey(tenant);
  // An id with a '-': random ids in the trail (base32) never hold one, so a find means the id.
  ASSERT_EQ(Call("PUT", "/v1/users/ext-u1",
                 R"({"name":"Zebulon Q","opt_in":true,
                     "devices":[{"channel":"email","address":"zq@example.org"}]})",
                 key)
                .status,
            201);
  ASSERT_EQ(Call("GET", "/v1/users/nobody", {}, key).status, 404);
  ASSERT_TRUE(store_->Flush().ok());
  auto r = Call("GET", "/v1/audit?limit=100", {}, key);
  ASSERT_EQ(r.status, 200) << r.body;
  auto records = Body(r)["records"];
  ASSERT_GE(records.size(), 4u);  // tenant create, key create, PUT, GET (newest first)
  EXPECT_EQ(records[0]["route"], "/v1/users/{external_id}");
  EXPECT_EQ(records[0]["status"], 404);
  EXPECT_EQ(records[0]["method"], "GET");
  EXPECT_EQ(records[1]["status"], 201);
  EXPECT_EQ(records[1]["request_id"], "req-test");
  EXPECT_TRUE(records[1]["actor"].get<std::string>().rfind("key_", 0) == 0);
  bool saw_admin = false;
  for (const auto& rec : records) saw_admin = saw_admin || rec["actor"] == "admin";
  EXPECT_TRUE(saw_admin) << "admin calls on the tenant are in its trail";
  EXPECT_EQ(r.body.find("Zebulon"), std::string::npos);
  EXPECT_EQ(r.body.find("zq@example.org"), std::string::npos);
  EXPECT_EQ(r.body.find("ext-u1"), std::string::npos) << "routes are patterns, not ids";
  EXPECT_EQ(r.body.find(key), std::string::npos);
}

TEST_F(ApiSession, AuditIsTenantScopedAndNeedsItsScope) {
  const std::string a = NewTenant();
  const std::string b = NewTenant();
  const std::string key_a = NewKey(a);
  const std::string key_b = NewKey(b, {"users:read"});
  Call("GET", "/v1/users/x", {}, key_a);
  ASSERT_TRUE(store_->Flush().ok());
  EXPECT_EQ(Call("GET", "/v1/audit", {}, key_b).status, 403);
  const std::string key_b2 = NewKey(b, {"audit:read"});
  ASSERT_TRUE(store_->Flush().ok());
  auto records = Body(Call("GET", "/v1/audit", {}, key_b2))["records"];
  for (const auto& rec : records) {
    EXPECT_NE(rec["route"], "/v1/users/{external_id}") << "tenant a's call leaked into b's trail";
  }
}

TEST_F(ApiSession, OperationsEndpointsAnswer) {
  EXPECT_EQ(Call("GET", "/healthz").status, 200);
  EXPECT_EQ(Call("GET", "/readyz").status, 200);
  auto r = Call("GET", "/openapi.json");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Body(r)["openapi"], "3.1.0");
  Call("GET", "/v1/tenants", {}, kAdmin);
  r = Call("GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("herald_http_requests_total{route=\"/v1/tenants\",method=\"GET\","
                        "status=\"200\"}"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("herald_http_request_duration_seconds_bucket"), std::string::npos);
}

TEST_F(ApiSession, OpenApiDocumentsTheQuotasOfEveryTenantRoute) {
  const Json doc = Body(Call("GET", "/openapi.json"));
  int tenant_routes = 0;
  for (const auto& [path, ops] : doc["paths"].items()) {
    for (const auto& [method, op] : ops.items()) {
      if (!op.is_object() || op.value("x-credential", "") != "api_key") continue;
      ++tenant_routes;
      EXPECT_TRUE(op["responses"].contains("429")) << method << " " << path;
      for (const auto& [code, response] : op["responses"].items()) {
        if (code[0] != '2' || !response.contains("headers")) continue;
        EXPECT_TRUE(response["headers"].contains("RateLimit")) << method << " " << path;
        EXPECT_TRUE(response["headers"].contains("RateLimit-Policy")) << method << " " << path;
      }
    }
  }
  EXPECT_GE(tenant_routes, 20);
  EXPECT_TRUE(doc["components"]["schemas"]["Tenant"]["properties"].contains("rate_limits"));
}

TEST_F(ApiSession, TenantRoutesAnswerWithTheirQuotaHeaders) {
  const std::string tenant = NewTenant();
  const std::string key = NewKey(tenant);
  auto r = Call("GET", "/v1/users/nobody", {}, key);
  EXPECT_EQ(r.status, 404);
  std::string policy, left;
  for (const auto& [name, value] : r.headers) {
    if (name == "RateLimit-Policy") policy = value;
    if (name == "RateLimit") left = value;
  }
  EXPECT_EQ(policy, "\"reads\";q=1000;w=1");
  EXPECT_EQ(left, "\"reads\";r=999;t=1");
}

}  // namespace
}  // namespace herald::api

#include "api/api_test_fixture.h"

namespace herald::api {
namespace {

TEST_F(ApiSession, AdminRoutesRefuseMissingAndWrongTokens) {
  auto r = Call("GET", "/v1/tenants");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Code(r), "missing_credentials");
  r = Call("GET", "/v1/tenants", {}, "not-the-token");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Code(r), "invalid_credentials");
}

TEST_F(ApiSession, CreatesReadsListsAndPatchesTenants) {
  const std::string id = NewTenant(20, 30);
  auto r = Call("GET", "/v1/tenants/" + id, {}, kAdmin);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Body(r)["delivery_deadline_minutes"], 20);
  EXPECT_EQ(Body(r)["default_consent_days"], 30);

  r = Call("PATCH", "/v1/tenants/" + id, R"({"delivery_deadline_minutes":30})", kAdmin);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["delivery_deadline_minutes"], 30);
  EXPECT_EQ(Body(r)["name"], "Acme");

  NewTenant();
  r = Call("GET", "/v1/tenants?limit=1", {}, kAdmin);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Body(r)["tenants"].size(), 1u);
  const std::string cursor = Body(r)["next_cursor"];
  ASSERT_FALSE(cursor.empty());
  r = Call("GET", "/v1/tenants?limit=1&cursor=" + cursor, {}, kAdmin);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Body(r)["tenants"].size(), 1u);
}

TEST_F(ApiSession, TenantDeadlineOutsideTenToThirtyIsRefused) {
  for (int bad : {9, 31, -1}) {
    auto r = Call("POST", "/v1/tenants",
                  Json{{"name", "x"}, {"delivery_deadline_minutes", bad}}.dump(), kAdmin);
    EXPECT_EQ(r.status, 422);
    EXPECT_EQ(Code(r), "invalid_deadline");
    EXPECT_EQ(Field(r), "delivery_deadline_minutes");
  }
  for (int good : {10, 30}) {
    auto r = Call("POST", "/v1/tenants",
                  Json{{"name", "x"}, {"delivery_deadline_minutes", good}}.dump(), kAdmin);
    EXPECT_EQ(r.status, 201);
  }
  auto list = Body(Call("GET", "/v1/tenants", {}, kAdmin));
  EXPECT_EQ(list["tenants"].size(), 2u) << "refused tenants must not be stored";
}

TEST_F(ApiSession, TenantBodyErrorsNameTheField) {
  auto r = Call("POST", "/v1/tenants", R"({"name":"x","colour":"red"})", kAdmin);
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(Code(r), "unknown_field");
  EXPECT_EQ(Field(r), "colour");
  r = Call("POST", "/v1/tenants", R"({"name":"x","delivery_deadline_minutes":"15"})", kAdmin);
  EXPECT_EQ(Code(r), "invalid_type");
  EXPECT_EQ(Field(r), "delivery_deadline_minutes");
  r = Call("POST", "/v1/tenants", R"({"name":)", kAdmin);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Code(r), "malformed_json");
  r = Call("POST", "/v1/tenants", "[1]", kAdmin);
  EXPECT_EQ(r.status, 422);
  r = Call("POST", "/v1/tenants", R"({})", kAdmin);
  EXPECT_EQ(Code(r), "missing_field");
  EXPECT_EQ(Field(r), "name");
  r = Call("PATCH", "/v1/tenants/ten_doesnotexist", R"({"name":"y"})", kAdmin);
  EXPECT_EQ(r.status, 404);
}

TEST_F(ApiSession, KeyIsShownOnceAndStoredHashed) {
  const std::string tenant = NewTenant();
  auto r = Call("POST", "/v1/tenants/" + tenant + "/keys",
                R"({"name":"backend","scopes":["users:read"]})", kAdmin);
  ASSERT_EQ(r.status, 201);
  const std::string secret = Body(r)["key"];
  EXPECT_EQ(secret.rfind("hk_", 0), 0u);
  auto list = Call("GET", "/v1/tenants/" + tenant + "/keys", {}, kAdmin);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.body.find(secret), std::string::npos) << "the secret is shown only once";
  EXPECT_EQ(Body(list)["keys"][0]["scopes"], Json::array({"users:read"}));
}

TEST_F(ApiSession, UnknownScopeIsRefused) {
  const std::string tenant = NewTenant();
  auto r = Call("POST", "/v1/tenants/" + tenant + "/keys",
                R"({"name":"k","scopes":["users:read","root"]})", kAdmin);
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(Code(r), "unknown_scope");
  EXPECT_EQ(Field(r), "scopes[1]");
}

TEST_F(ApiSession, MissingScopeAnswers403NamingTheScope) {
  const std::string tenant = NewTenant();
  const std::string reader = NewKey(tenant, {"users:read"});
  auto r = Call("PUT", "/v1/users/u1", R"({"name":"Ann","opt_in":true})", reader);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Code(r), "missing_scope");
  EXPECT_NE(Body(r)["error"]["message"].get<std::string>().find("users:write"), std::string::npos);
}

TEST_F(ApiSession, RevokedKeyFailsAtOnce) {
  const std::string tenant = NewTenant();
  const std::string key = NewKey(tenant);
  ASSERT_EQ(Call("PUT", "/v1/users/u1", R"({"opt_in":true})", key).status, 201);
  auto keys = Body(Call("GET", "/v1/tenants/" + tenant + "/keys", {}, kAdmin));
  const std::string key_id = keys["keys"][0]["id"];
  ASSERT_EQ(Call("DELETE", "/v1/tenants/" + tenant + "/keys/" + key_id, {}, kAdmin).status, 204);
  auto r = Call("GET", "/v1/users/u1", {}, key);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Code(r), "key_revoked");
}

TEST_F(ApiSession, ForgedKeysAreRefused) {
  const std::string tenant = NewTenant();
  std::string key = NewKey(tenant);
  key.back() = key.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(Call("GET", "/v1/users/u1", {}, key).status, 401);
  EXPECT_EQ(Call("GET", "/v1/users/u1", {}, "hk_nonsense").status, 401);
  EXPECT_EQ(Call("GET", "/v1/users/u1", {}, kAdmin).status, 401);
}

TEST_F(ApiSession, ProviderSettingsAreValidatedAndNeverEchoCredentials) {
  const std::string tenant = NewTenant();
  auto r = Call("PUT", "/v1/tenants/" + tenant + "/providers/sms",
                R"({"providers":[{"name":"twilio","account_sid":"AC1","auth_token":"s3cret"},
                                 {"name":"vonage","api_key":"k","api_secret":"s3cret2"}]})",
                kAdmin);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.find("s3cret"), std::string::npos);
  r = Call("GET", "/v1/tenants/" + tenant + "/providers/sms", {}, kAdmin);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Body(r)["providers"][1]["name"], "vonage");
  r = Call("PUT", "/v1/tenants/" + tenant + "/providers/sms", R"({"providers":[{"name":"apns"}]})",
           kAdmin);
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(Field(r), "providers[0].name");
  r = Call("PUT", "/v1/tenants/" + tenant + "/providers/fax", R"({"providers":[]})", kAdmin);
  EXPECT_EQ(r.status, 404);
}

TEST_F(ApiSession, UnknownRouteAndWrongMethodAreClear) {
  auto r = Call("GET", "/v1/nothing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(Code(r), "route_not_found");
  r = Call("POST", "/v1/users/u1", "{}", "x");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(Code(r), "method_not_allowed");
}

}  // namespace
}  // namespace herald::api

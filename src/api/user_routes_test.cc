#include "api/api_test_fixture.h"

namespace herald::api {
namespace {

constexpr char kToken[] = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

class UserRoutes : public ApiSession {
 protected:
  void SetUp() override {
    ApiSession::SetUp();
    tenant_ = NewTenant(15, 10);
    key_ = NewKey(tenant_);
  }
  http::Response Put(const std::string& id, const Json& body) {
    return Call("PUT", "/v1/users/" + id, body.dump(), key_);
  }
  std::string tenant_, key_;
};

TEST_F(UserRoutes, PutCreatesThenReplaces) {
  auto r = Put("u1", {{"name", "Ann"},
                      {"opt_in", true},
                      {"devices", {{{"channel", "email"}, {"address", "Ann@Example.COM"}}}},
                      {"groups", {"vip", "all", "vip"}}});
  ASSERT_EQ(r.status, 201) << r.body;
  auto u = Body(r);
  EXPECT_EQ(u["external_id"], "u1");
  EXPECT_EQ(u["devices"][0]["address"], "Ann@example.com") << "domain lower-cased only";
  EXPECT_EQ(u["groups"], Json::array({"all", "vip"}));
  const std::string device_id = u["devices"][0]["id"];

  r = Put("u1", {{"name", "Ann B"},
                 {"opt_in", false},
                 {"devices",
                  {{{"channel", "email"}, {"address", "Ann@example.com"}},
                   {{"channel", "ios"}, {"address", kToken}}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  u = Body(r);
  EXPECT_EQ(u["name"], "Ann B");
  EXPECT_EQ(u["opt_in"], false);
  EXPECT_EQ(u["devices"].size(), 2u);
  EXPECT_EQ(u["devices"][0]["id"], device_id) << "the same address keeps its device id";
  EXPECT_EQ(u["groups"], Json::array()) << "PUT replaces memberships";
}

TEST_F(UserRoutes, ConsentDefaultsFollowTheTenant) {
  auto r = Put("u1", {{"opt_in", true}});
  ASSERT_EQ(r.status, 201);
  auto u = Body(r);
  const auto from = ParseRfc3339(u["consent_from"].get<std::string>());
  const auto until = ParseRfc3339(u["consent_until"].get<std::string>());
  ASSERT_TRUE(from && until);
  EXPECT_EQ(*until - *from, int64_t{10} * 86'400'000);
  EXPECT_LE(std::llabs(*from - NowMillis()), 5000);
}

TEST_F(UserRoutes, PhoneNumbersAreStoredInE164) {
  auto r = Put("u1", {{"opt_in", true},
                      {"devices", {{{"channel", "sms"}, {"address", "+82 10-2222-3333"}}}}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(Body(r)["devices"][0]["address"], "+821022223333");
}

TEST_F(UserRoutes, EveryRuleRefusesWithItsCodeAndWritesNothing) {
  struct Case {
    Json body;
    std::string code;
    std::string field;
  };
  const std::string long_name(257, 'x');
  std::vector<Case> cases = {
      {{{"name", long_name}, {"opt_in", true}}, "invalid_name", "name"},
      {{{"name", "a\x01b"}, {"opt_in", true}}, "invalid_name", "name"},
      {{{"name", "Ann"}}, "missing_field", "opt_in"},
      {{{"opt_in", "yes"}}, "invalid_type", "opt_in"},
      {{{"opt_in", true}, {"extra", 1}}, "unknown_field", "extra"},
      {{{"opt_in", true}, {"devices", {{{"channel", "ios"}, {"address", "xyz"}}}}},
       "invalid_apns_token",
       "devices[0].address"},
      {{{"opt_in", true}, {"devices", {{{"channel", "android"}, {"address", "bad token!"}}}}},
       "invalid_fcm_token",
       "devices[0].address"},
      {{{"opt_in", true}, {"devices", {{{"channel", "email"}, {"address", "no-at-sign"}}}}},
       "invalid_email",
       "devices[0].address"},
      {{{"opt_in", true}, {"devices", {{{"channel", "sms"}, {"address", "+1 23"}}}}},
       "invalid_phone_number",
       "devices[0].address"},
      {{{"opt_in", true}, {"devices", {{{"channel", "sms"}, {"address", "+44 20 7946 0958"}}}}},
       "phone_not_sms_capable",
       "devices[0].address"},
      {{{"opt_in", true}, {"devices", {{{"channel", "fax"}, {"address", "1"}}}}},
       "invalid_channel",
       "devices[0].channel"},
      {{{"opt_in", true},
        {"devices",
         {{{"channel", "email"}, {"address", "a@b.co"}},
          {{"channel", "email"}, {"address", "a@B.CO"}}}}},
       "duplicate_device",
       "devices[1].address"},
      {{{"opt_in", true},
        {"consent_from", "2030-01-02T00:00:00Z"},
        {"consent_until", "2030-01-01T00:00:00Z"}},
       "invalid_consent_window",
       "consent_until"},
      {{{"opt_in", true}, {"consent_until", "2001-01-01T00:00:00Z"}},
       "consent_expired",
       "consent_until"},
      {{{"opt_in", true}, {"consent_until", "tomorrow"}}, "invalid_time", "consent_until"},
      {{{"opt_in", true}, {"groups", {"ok", "not ok"}}}, "invalid_group_key", "groups[1]"},
  };
  Json many = Json::array();
  for (int i = 0; i < 17; ++i) {
    many.push_back({{"channel", "email"}, {"address", "u" + std::to_string(i) + "@x.io"}});
  }
  cases.push_back({{{"opt_in", true}, {"devices", many}}, "too_many_devices", "devices"});
  for (const auto& c : cases) {
    auto r = Put("refused", c.body);
    EXPECT_EQ(r.status, 422) << c.body.dump();
    EXPECT_EQ(Code(r), c.code) << c.body.dump();
    EXPECT_EQ(Field(r), c.field) << c.body.dump();
    EXPECT_FALSE(Body(r)["error"]["message"].get<std::string>().empty());
  }
  EXPECT_EQ(Call("GET", "/v1/users/refused", {}, key_).status, 404) << "nothing was written";
}

TEST_F(UserRoutes, SixteenDevicesAreAccepted) {
  Json many = Json::array();
  for (int i = 0; i < 16; ++i) {
    many.push_back({{"channel", "email"}, {"address", "u" + std::to_string(i) + "@x.io"}});
  }
  EXPECT_EQ(Put("u1", {{"opt_in", true}, {"devices", many}}).status, 201);
}

TEST_F(UserRoutes, ExternalIdRules) {
  EXPECT_EQ(Put(std::string(128, 'a'), {{"opt_in", true}}).status, 201);
  auto r = Put(std::string(129, 'a'), {{"opt_in", true}});
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(Code(r), "invalid_external_id");
  r = Put("a%01b", {{"opt_in", true}});
  EXPECT_EQ(Code(r), "invalid_external_id");
  EXPECT_EQ(Put("with%2Fslash", {{"opt_in", true}}).status, 201);
  EXPECT_EQ(Body(Call("GET", "/v1/users/with%2Fslash", {}, key_))["external_id"], "with/slash");
}

TEST_F(UserRoutes, PatchMergesAndKeepsTheRest) {
  ASSERT_EQ(Put("u1", {{"name", "Ann"},
                       {"opt_in", true},
                       {"devices", {{{"channel", "email"}, {"address", "a@x.io"}}}},
                       {"groups", {"g1"}}})
                .status,
            201);
  auto r = Call("PATCH", "/v1/users/u1", R"({"opt_in":false,"name":null})", key_);
  ASSERT_EQ(r.status, 200) << r.body;
  auto u = Body(r);
  EXPECT_EQ(u["opt_in"], false);
  EXPECT_EQ(u["name"], "");
  EXPECT_EQ(u["devices"].size(), 1u);
  EXPECT_EQ(u["groups"], Json::array({"g1"}));
  EXPECT_EQ(u["version"], 2);

  r = Call("PATCH", "/v1/users/u1", R"({"devices":[{"channel":"email","address":"bad"}]})", key_);
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(Body(Call("GET", "/v1/users/u1", {}, key_))["devices"][0]["address"], "a@x.io");
  EXPECT_EQ(Call("PATCH", "/v1/users/u1", R"({"opt_in":null})", key_).status, 422);
  EXPECT_EQ(Call("PATCH", "/v1/users/nobody", R"({"opt_in":true})", key_).status, 404);
}

TEST_F(UserRoutes, DevicesAreAddedAndRemoved) {
  ASSERT_EQ(Put("u1", {{"opt_in", true}}).status, 201);
  auto r = Call("POST", "/v1/users/u1/devices", R"({"channel":"android","address":"tok:1"})", key_);
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string device_id = Body(r)["id"];
  r = Call("POST", "/v1/users/u1/devices", R"({"channel":"android","address":"tok:1"})", key_);
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(Code(r), "duplicate_device");
  EXPECT_EQ(Call("DELETE", "/v1/users/u1/devices/" + device_id, {}, key_).status, 204);
  EXPECT_EQ(Call("DELETE", "/v1/users/u1/devices/" + device_id, {}, key_).status, 404);
  EXPECT_EQ(Body(Call("GET", "/v1/users/u1", {}, key_))["devices"].size(), 0u);
  EXPECT_EQ(Call("POST", "/v1/users/ghost/devices", R"({"channel":"android","address":"t"})", key_)
                .status,
            404);
}

TEST_F(UserRoutes, DeleteErasesAtOnce) {
  ASSERT_EQ(Put("u1", {{"opt_in", true}, {"groups", {"g"}}}).status, 201);
  EXPECT_EQ(Call("DELETE", "/v1/users/u1", {}, key_).status, 204);
  EXPECT_EQ(Call("GET", "/v1/users/u1", {}, key_).status, 404);
  EXPECT_EQ(Body(Call("GET", "/v1/groups/g", {}, key_))["member_count"], 0);
  EXPECT_EQ(Call("DELETE", "/v1/users/u1", {}, key_).status, 404);
}

TEST_F(UserRoutes, DeepJsonIsRefused) {
  std::string deep =
      R"({"opt_in":true,"name":)" + std::string(100, '[') + std::string(100, ']') + "}";
  auto r = Call("PUT", "/v1/users/u1", deep, key_);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Code(r), "json_too_deep");
}

TEST_F(UserRoutes, InvalidUtf8IsRefused) {
  auto r = Call("PUT", "/v1/users/u1", "{\"opt_in\":true,\"name\":\"\xff\xfe\"}", key_);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Code(r), "malformed_json");
}

}  // namespace
}  // namespace herald::api

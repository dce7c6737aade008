// Bad input changes nothing (DESIGN §4.6): every refused request answers its status with a JSON
// error (code, a message, and the field when one is at fault), leaves no write behind, and the
// server stays up for everyone else. One server serves the whole suite.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/api_helpers.h"
#include "support/herald_process.h"

namespace herald::e2e {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxBody = 1 << 20;

json Email(const std::string& address) { return {{"channel", "email"}, {"address", address}}; }
json Device(const std::string& channel, const std::string& address) {
  return {{"channel", channel}, {"address", address}};
}

class BadInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new HeraldProcess();
    ASSERT_TRUE(server_->Start()) << server_->last_error();
    HttpClient admin = server_->AdminClient();
    tenant_ = new TenantKey(CreateTenantWithKey(admin, "Bad Input Inc"));
    ASSERT_FALSE(tenant_->key.empty());
    HttpClient c = server_->Client();
    c.set_bearer(tenant_->key);
    const auto r = c.Put(
        "/v1/users/existing",
        UserBody("Existing User", {Email("existing@example.com"), Device("sms", "+447911123456")},
                 {"anchor-group"}));
    ASSERT_EQ(r.status, 201) << r.Describe();
  }
  static void TearDownTestSuite() {
    if (server_ != nullptr) {
      EXPECT_EQ(server_->Stop(), 0) << server_->Stderr();
    }
    delete server_;
    delete tenant_;
    server_ = nullptr;
    tenant_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(tenant_, nullptr);
    c_ = std::make_unique<HttpClient>(server_->Client());
    c_->set_bearer(tenant_->key);
    before_ = Snapshot();
  }

  // After every test: nothing changed, no stray user or group exists, and the server is up.
  void TearDown() override {
    EXPECT_EQ(Snapshot(), before_) << "a refused request changed existing data";
    for (const auto& id : must_not_exist_) {
      // 404, or 422 for an id that cannot even be named (and so cannot have been stored).
      const auto r = c_->Get("/v1/users/" + PathEscape(id));
      EXPECT_TRUE(IsError(r, 404, "user_not_found") ||
                  IsError(r, 422, "invalid_external_id", "external_id"))
          << "a refused request wrote user "
          << json(id).dump(-1, ' ', true, json::error_handler_t::replace) << ": " << r.Describe();
    }
    EXPECT_EQ(c_->Get("/v1/groups/ghost").status, 404) << "a refused request created a group";
    HttpClient fresh("127.0.0.1", server_->port(), /*keep_alive=*/false);
    EXPECT_EQ(fresh.Get("/healthz").status, 200) << "the server stopped answering";
    EXPECT_TRUE(server_->Running()) << server_->Stderr();
  }

  std::vector<std::string> Snapshot() {
    std::vector<std::string> out;
    for (const std::string path :
         {"/v1/users/existing", "/v1/groups/anchor-group", "/v1/groups/anchor-group/members"}) {
      const auto r = c_->Get(path);
      out.push_back(path + " " + std::to_string(r.status) + " " + r.body);
    }
    return out;
  }

  // PUT /v1/users/{id} with `body` (raw or JSON); remembers `id` as one that must not exist
  // afterwards.
  HttpResponse PutRaw(const std::string& id, std::string_view body) {
    must_not_exist_.push_back(id);
    return c_->Request("PUT", "/v1/users/" + PathEscape(id), body);
  }
  HttpResponse PutUser(const std::string& id, const json& body) { return PutRaw(id, body.dump()); }

  static HeraldProcess* server_;
  static TenantKey* tenant_;
  std::unique_ptr<HttpClient> c_;
  std::vector<std::string> before_;
  std::vector<std::string> must_not_exist_;
};

HeraldProcess* BadInputTest::server_ = nullptr;
TenantKey* BadInputTest::tenant_ = nullptr;

TEST_F(BadInputTest, MalformedJsonAnswers400MalformedJson) {
  for (const std::string body :
       {R"({"name": "x",)", "not json at all", R"({"opt_in": true}})", R"({"opt_in": tru})",
        "{'opt_in': true}", R"({"opt_in": true, "groups": ["ghost"],})"}) {
    EXPECT_TRUE(IsError(PutRaw("malformed", body), 400, "malformed_json")) << body;
    EXPECT_TRUE(IsError(c_->Request("PATCH", "/v1/users/existing", body), 400, "malformed_json"))
        << body;
    EXPECT_TRUE(
        IsError(c_->Request("POST", "/v1/users/existing/devices", body), 400, "malformed_json"))
        << body;
    EXPECT_TRUE(IsError(c_->Request("PUT", "/v1/groups/ghost", body), 400, "malformed_json"))
        << body;
  }
  EXPECT_TRUE(IsError(PutRaw("empty-body", ""), 400, "malformed_json"));
}

TEST_F(BadInputTest, WrongTypesAnswer422InvalidTypeNamingTheField) {
  const std::vector<std::pair<json, std::string>> cases = {
      {{{"name", 5}, {"opt_in", true}}, "name"},
      {{{"opt_in", "yes"}}, "opt_in"},
      {{{"opt_in", 1}}, "opt_in"},
      {{{"opt_in", true}, {"consent_until", 1893456000}}, "consent_until"},
      {{{"opt_in", true}, {"devices", "ann@example.com"}}, "devices"},
      {{{"opt_in", true}, {"devices", {5}}}, "devices[0]"},
      {{{"opt_in", true}, {"devices", {{{"channel", 1}, {"address", "a@example.com"}}}}},
       "devices[0].channel"},
      {{{"opt_in", true}, {"devices", {{{"channel", "email"}, {"address", {"x"}}}}}},
       "devices[0].address"},
      {{{"opt_in", true}, {"groups", "ghost"}}, "groups"},
      {{{"opt_in", true}, {"groups", {"ghost", 7}}}, "groups[1]"},
  };
  for (const auto& [body, field] : cases) {
    EXPECT_TRUE(IsError(PutUser("wrong-types", body), 422, "invalid_type", field)) << body;
  }
  EXPECT_TRUE(IsError(PutRaw("wrong-types", std::string("[]")), 422, "invalid_type"));
  EXPECT_TRUE(IsError(c_->Patch("/v1/users/existing", {{"name", {{"first", "x"}}}}), 422,
                      "invalid_type", "name"));
  EXPECT_TRUE(IsError(c_->Patch("/v1/users/existing", {{"opt_in", nullptr}}), 422, "invalid_type",
                      "opt_in"));
  EXPECT_TRUE(IsError(c_->Post("/v1/groups/anchor-group/members", {{"users", {"existing", 3}}}),
                      422, "invalid_type", "users[1]"));
  EXPECT_TRUE(IsError(c_->Post("/v1/groups/anchor-group/members", {{"users", "existing"}}), 422,
                      "invalid_users", "users"));
}

TEST_F(BadInputTest, UnknownFieldsAnswer422UnknownFieldNamingTheField) {
  EXPECT_TRUE(IsError(PutUser("unknown-field", json{{"opt_in", true}, {"nickname", "x"}}), 422,
                      "unknown_field", "nickname"));
  EXPECT_TRUE(IsError(
      PutUser("unknown-field",
              json{{"opt_in", true},
                   {"devices",
                    {{{"channel", "email"}, {"address", "a@example.com"}, {"label", "x"}}}}}),
      422, "unknown_field", "devices[0].label"));
  // external_id belongs to import lines, not to PUT bodies.
  EXPECT_TRUE(IsError(PutUser("unknown-field", json{{"opt_in", true}, {"external_id", "other"}}),
                      422, "unknown_field", "external_id"));
  must_not_exist_.emplace_back("other");
  EXPECT_TRUE(IsError(c_->Patch("/v1/users/existing", {{"name", "New"}, {"nickname", "x"}}), 422,
                      "unknown_field", "nickname"));
  EXPECT_TRUE(
      IsError(c_->Post("/v1/users/existing/devices",
                       {{"channel", "email"}, {"address", "n@example.com"}, {"primary", true}}),
              422, "unknown_field", "primary"));
  EXPECT_TRUE(
      IsError(c_->Put("/v1/groups/ghost", {{"title", "Ghost"}}), 422, "unknown_field", "title"));
}

TEST_F(BadInputTest, DeeplyNestedJsonAnswers400JsonTooDeep) {
  const std::string open(10000, '[');
  const std::string closed = open + std::string(10000, ']');
  const std::string objects = [] {
    std::string s;
    for (int i = 0; i < 10000; ++i) s += "{\"a\":";
    s += "1";
    for (int i = 0; i < 10000; ++i) s += "}";
    return s;
  }();
  for (const std::string& body : {open, closed, objects, R"({"opt_in":true,"name":)" + open}) {
    EXPECT_TRUE(IsError(PutRaw("deep", body), 400, "json_too_deep")) << body.substr(0, 30);
    EXPECT_TRUE(IsError(c_->Request("PATCH", "/v1/users/existing", body), 400, "json_too_deep"));
    EXPECT_TRUE(IsError(c_->Request("POST", "/v1/groups/anchor-group/members", body), 400,
                        "json_too_deep"));
  }
}

TEST_F(BadInputTest, BodyOverOneMebibyteAnswers413BodyTooLarge) {
  // Valid JSON padded with whitespace: only its size is wrong.
  auto padded = [](const std::string& name, size_t total) {
    std::string head = R"({"opt_in":true,"groups":["ghost"],)";
    std::string tail = R"("name":")" + name + R"("})";
    return head + std::string(total - head.size() - tail.size(), ' ') + tail;
  };
  const std::string big = padded("too big", kMaxBody + 1);
  ASSERT_EQ(big.size(), kMaxBody + 1);
  EXPECT_TRUE(IsError(PutRaw("too-big", big), 413, "body_too_large"));
  // Announced by Content-Length far beyond the limit.
  const std::string huge = padded("huge", 3 * kMaxBody);
  EXPECT_TRUE(IsError(PutRaw("too-big-3mib", huge), 413, "body_too_large"));
  // Chunked, so the size shows only while reading.
  must_not_exist_.emplace_back("too-big-chunked");
  const std::string chunked = padded("chunked", kMaxBody + 4096);
  std::vector<std::string_view> chunks;
  for (size_t at = 0; at < chunked.size(); at += 64 * 1024) {
    chunks.push_back(std::string_view(chunked).substr(at, 64 * 1024));
  }
  EXPECT_TRUE(IsError(c_->RequestChunked("PUT", "/v1/users/too-big-chunked", chunks), 413,
                      "body_too_large"));
  EXPECT_TRUE(IsError(c_->Request("PATCH", "/v1/users/existing", big), 413, "body_too_large"));
  EXPECT_TRUE(
      IsError(c_->Request("POST", "/v1/groups/anchor-group/members", big), 413, "body_too_large"));

  // The limit itself is accepted (then removed again so that the snapshot holds).
  const std::string at_limit = padded("at limit", kMaxBody);
  auto r = c_->Request("PUT", "/v1/users/at-limit", at_limit);
  EXPECT_EQ(r.status, 201) << r.Describe();
  EXPECT_EQ(c_->Delete("/v1/users/at-limit").status, 204);
  EXPECT_EQ(c_->Delete("/v1/groups/ghost").status, 204);
}

TEST_F(BadInputTest, InvalidUtf8IsRefused) {
  // Raw bytes inside a JSON string: the JSON itself is ill-formed.
  for (const std::string bad : {"\xC3\x28", "\xFF\xFE", "\xC0\xAF", "\xED\xA0\x80", "abc\x80"}) {
    const std::string body = R"({"opt_in":true,"groups":["ghost"],"name":")" + bad + R"("})";
    EXPECT_TRUE(IsError(PutRaw("bad-utf8", body), 400, "malformed_json"));
    EXPECT_TRUE(IsError(c_->Request("PATCH", "/v1/users/existing", R"({"name":")" + bad + R"("})"),
                        400, "malformed_json"));
  }
  // A lone surrogate escape is no character either.
  EXPECT_TRUE(IsError(PutRaw("bad-utf8", std::string(R"({"opt_in":true,"name":"\ud800"})")), 400,
                      "malformed_json"));
  // In the path, the external id is checked after percent-decoding.
  for (const std::string id : {"%FF", "ab%C3%28", "%C0%AF"}) {
    const auto r = c_->Request("PUT", "/v1/users/" + id, R"({"opt_in":true})");
    EXPECT_TRUE(IsError(r, 422, "invalid_external_id", "external_id")) << id;
  }
  must_not_exist_.emplace_back("\xFF");
}

TEST_F(BadInputTest, ControlCharactersInExternalIdOrNameAnswer422) {
  for (const std::string id : {"a%0Ab", "a%00b", "tab%09", "del%7F", "nel%C2%85", "%0D%0A"}) {
    EXPECT_TRUE(IsError(c_->Request("PUT", "/v1/users/" + id, R"({"opt_in":true})"), 422,
                        "invalid_external_id", "external_id"))
        << id;
    EXPECT_TRUE(IsError(c_->Request("PUT", "/v1/groups/anchor-group/members/" + id), 422,
                        "invalid_external_id", "external_id"))
        << id;
  }
  for (const std::string& name : {std::string("bell\x07"), std::string("line\nbreak"),
                                  std::string("tab\there"), std::string("nul\0x", 5),
                                  std::string("c1\xC2\x85"
                                              "control"),
                                  std::string("esc\x1b[31m")}) {
    EXPECT_TRUE(IsError(PutUser("control-name", json{{"opt_in", true}, {"name", name}}), 422,
                        "invalid_name", "name"))
        << json(name).dump();
    EXPECT_TRUE(
        IsError(c_->Patch("/v1/users/existing", {{"name", name}}), 422, "invalid_name", "name"));
  }
  // In an import line the same rules apply, per line.
  const auto r = c_->Import(
      "{\"external_id\":\"ctl\\u0001id\",\"opt_in\":true}\n"
      "{\"external_id\":\"ctl-name\",\"opt_in\":true,\"name\":\"x\\u001fy\"}\n");
  must_not_exist_.emplace_back("ctl\x01id");
  must_not_exist_.emplace_back("ctl-name");
  ASSERT_EQ(r.status, 200) << r.Describe();
  const auto j = r.Json();
  EXPECT_EQ(j["refused"], 2) << r.Describe();
  EXPECT_EQ(j["created"], 0) << r.Describe();
  ASSERT_EQ(j["errors"].size(), 2u) << r.Describe();
  EXPECT_EQ(j["errors"][0]["line"], 1);
  EXPECT_EQ(j["errors"][0]["code"], "invalid_external_id");
  EXPECT_EQ(j["errors"][0]["field"], "external_id");
  EXPECT_EQ(j["errors"][1]["line"], 2);
  EXPECT_EQ(j["errors"][1]["code"], "invalid_name");
  EXPECT_EQ(j["errors"][1]["field"], "name");
  EXPECT_FALSE(j["errors"][1]["message"].get<std::string>().empty());
}

TEST_F(BadInputTest, DuplicateDevicesAreRefused) {
  EXPECT_TRUE(IsError(
      PutUser("dup", UserBody("Dup", {Email("d@example.com"), Email("d@example.com")}, {"ghost"})),
      422, "duplicate_device", "devices[1].address"));
  // The domain of an email is case-insensitive: these are the same address.
  EXPECT_TRUE(IsError(
      PutUser("dup", UserBody("Dup", {Email("d@example.com"), Device("sms", "+821022223333"),
                                      Email("d@EXAMPLE.com")})),
      422, "duplicate_device", "devices[2].address"));
  // Phone numbers are compared in E.164.
  EXPECT_TRUE(IsError(PutUser("dup", UserBody("Dup", {Device("sms", "+82 10-2222-3333"),
                                                      Device("sms", "+821022223333")})),
                      422, "duplicate_device", "devices[1].address"));
  // Adding a device the user already has.
  EXPECT_TRUE(IsError(c_->Post("/v1/users/existing/devices", Email("existing@example.com")), 409,
                      "duplicate_device", "address"));
  EXPECT_TRUE(IsError(c_->Post("/v1/users/existing/devices", Device("sms", "+44 7911 123456")), 409,
                      "duplicate_device", "address"));
}

TEST_F(BadInputTest, SeventeenDevicesAreRefused) {
  json seventeen = json::array();
  for (int i = 0; i < 17; ++i) seventeen.push_back(Email("d" + std::to_string(i) + "@example.com"));
  EXPECT_TRUE(IsError(PutUser("seventeen", UserBody("Many", seventeen, {"ghost"})), 422,
                      "too_many_devices", "devices"));
  EXPECT_TRUE(IsError(c_->Patch("/v1/users/existing", {{"devices", seventeen}}), 422,
                      "too_many_devices", "devices"));

  // Sixteen are fine; a seventeenth added later is refused and changes nothing.
  json sixteen = seventeen;
  sixteen.erase(sixteen.size() - 1);
  auto r = c_->Put("/v1/users/sixteen", UserBody("Sixteen", sixteen));
  ASSERT_EQ(r.status, 201) << r.Describe();
  const std::string stored = c_->Get("/v1/users/sixteen").body;
  EXPECT_TRUE(IsError(c_->Post("/v1/users/sixteen/devices", Email("d16@example.com")), 422,
                      "too_many_devices", "devices"));
  EXPECT_EQ(c_->Get("/v1/users/sixteen").body, stored);
  EXPECT_EQ(c_->Delete("/v1/users/sixteen").status, 204);
}

TEST_F(BadInputTest, InvalidDeviceAddressesAnswer422WithTheirCode) {
  struct Case {
    std::string channel, address, code;
  };
  const std::vector<Case> cases = {
      {"ios", "abc123", "invalid_apns_token"},
      {"ios", std::string(63, 'a'), "invalid_apns_token"},
      {"ios", std::string(63, 'a') + "g", "invalid_apns_token"},
      {"ios", std::string(201, 'a'), "invalid_apns_token"},
      {"ios", "", "invalid_apns_token"},
      {"android", "has space", "invalid_fcm_token"},
      {"android", "token/with/slash", "invalid_fcm_token"},
      {"android", std::string(4097, 'a'), "invalid_fcm_token"},
      {"android", "", "invalid_fcm_token"},
      {"email", "no-at-sign.example.com", "invalid_email"},
      {"email", "a@localhost", "invalid_email"},
      {"email", "a..b@example.com", "invalid_email"},
      {"email", "@example.com", "invalid_email"},
      {"email", std::string(250, 'a') + "@example.com", "invalid_email"},
      {"sms", "01022223333", "invalid_phone_number"},
      {"sms", "+82 10", "invalid_phone_number"},
      {"sms", "+999 1234567", "invalid_phone_number"},
      {"sms", "+1-800-FLOWERS", "invalid_phone_number"},
      {"sms", "+44 20 7946 0958", "phone_not_sms_capable"},  // London fixed line
      {"sms", "+1 800 555 0199", "phone_not_sms_capable"},   // US toll free
      {"fax", "+44 20 7946 0958", "invalid_channel"},
  };
  for (const auto& c : cases) {
    const std::string field = c.code == "invalid_channel" ? "channel" : "address";
    const auto r = PutUser("bad-address",
                           UserBody("Bad", json::array({Device(c.channel, c.address)}), {"ghost"}));
    EXPECT_TRUE(IsError(r, 422, c.code, "devices[0]." + field)) << c.channel << " " << c.address;
    // The second device is the bad one: its index is named.
    const auto r2 = PutUser(
        "bad-address",
        UserBody("Bad", json::array({Email("ok@example.com"), Device(c.channel, c.address)})));
    EXPECT_TRUE(IsError(r2, 422, c.code, "devices[1]." + field)) << c.channel << " " << c.address;
    const auto r3 = c_->Post("/v1/users/existing/devices", Device(c.channel, c.address));
    EXPECT_TRUE(IsError(r3, 422, c.code, field)) << c.channel << " " << c.address;
  }
}

TEST_F(BadInputTest, ConsentUntilNotAfterConsentFromAnswers422) {
  EXPECT_TRUE(IsError(PutUser("consent", json{{"opt_in", true},
                                              {"groups", {"ghost"}},
                                              {"consent_from", "2030-01-02T00:00:00Z"},
                                              {"consent_until", "2030-01-01T00:00:00Z"}}),
                      422, "invalid_consent_window", "consent_until"));
  EXPECT_TRUE(IsError(PutUser("consent", json{{"opt_in", true},
                                              {"consent_from", "2030-01-01T00:00:00Z"},
                                              {"consent_until", "2030-01-01T00:00:00Z"}}),
                      422, "invalid_consent_window", "consent_until"));
  EXPECT_TRUE(
      IsError(PutUser("consent", json{{"opt_in", true}, {"consent_until", "2001-01-01T00:00:00Z"}}),
              422, "consent_expired", "consent_until"));
  EXPECT_TRUE(IsError(PutUser("consent", json{{"opt_in", true}, {"consent_until", "tomorrow"}}),
                      422, "invalid_time", "consent_until"));
  EXPECT_TRUE(
      IsError(PutUser("consent", json{{"opt_in", true}, {"consent_from", "2030-13-01T00:00:00Z"}}),
              422, "invalid_time", "consent_from"));
  // PATCH moving consent_from past the stored consent_until.
  EXPECT_TRUE(IsError(c_->Patch("/v1/users/existing", {{"consent_from", "2999-01-01T00:00:00Z"}}),
                      422, "invalid_consent_window", "consent_until"));
}

TEST_F(BadInputTest, MissingUnknownAndRevokedKeysAnswer401) {
  const std::string body = R"({"opt_in":true,"name":"Nobody","groups":["ghost"]})";
  must_not_exist_.emplace_back("no-auth");
  HttpClient anon = server_->Client();
  EXPECT_TRUE(IsError(anon.Request("PUT", "/v1/users/no-auth", body), 401, "missing_credentials"));
  EXPECT_TRUE(IsError(
      anon.Request("PUT", "/v1/users/no-auth", body, {{"Authorization", "Basic dXNlcjpwYXNz"}}),
      401, "missing_credentials"));
  EXPECT_TRUE(IsError(anon.Request("PUT", "/v1/users/no-auth", body, {{"Authorization", "Bearer"}}),
                      401, "missing_credentials"));

  // Unknown: not a key at all, another key id, the right id with the wrong secret.
  std::string other_id = tenant_->key;
  other_id[5] = other_id[5] == 'a' ? 'b' : 'a';
  std::string other_secret = tenant_->key;
  other_secret.back() = other_secret.back() == 'A' ? 'B' : 'A';
  for (const std::string& key :
       {std::string("not-a-key"), std::string("hk_") + std::string(64, 'a'), other_id, other_secret,
        tenant_->key + "x"}) {
    HttpClient c = server_->Client();
    c.set_bearer(key);
    EXPECT_TRUE(IsError(c.Request("PUT", "/v1/users/no-auth", body), 401, "invalid_credentials"))
        << key;
    EXPECT_TRUE(IsError(c.Get("/v1/users/existing"), 401, "invalid_credentials")) << key;
  }

  // Revoked: works, then is revoked, then answers key_revoked.
  HttpClient admin = server_->AdminClient();
  const TenantKey doomed = CreateKey(admin, tenant_->tenant_id, "doomed");
  HttpClient c = server_->Client();
  c.set_bearer(doomed.key);
  ASSERT_EQ(c.Get("/v1/users/existing").status, 200);
  ASSERT_EQ(admin.Delete("/v1/tenants/" + tenant_->tenant_id + "/keys/" + doomed.key_id).status,
            204);
  EXPECT_TRUE(IsError(c.Request("PUT", "/v1/users/no-auth", body), 401, "key_revoked"));
  EXPECT_TRUE(IsError(c.Get("/v1/users/existing"), 401, "key_revoked"));
  EXPECT_TRUE(IsError(c.Request("DELETE", "/v1/users/existing"), 401, "key_revoked"));

  // A key without the scope: 403 naming it.
  const TenantKey reader = CreateKey(admin, tenant_->tenant_id, "reader", {"users:read"});
  HttpClient r = server_->Client();
  r.set_bearer(reader.key);
  EXPECT_TRUE(IsError(r.Request("PUT", "/v1/users/no-auth", body), 403, "missing_scope", "scope"));
  EXPECT_TRUE(IsError(r.Request("DELETE", "/v1/users/existing"), 403, "missing_scope", "scope"));
  EXPECT_EQ(r.Get("/v1/users/existing").status, 200);
}

TEST_F(BadInputTest, MalformedHttpAnswers400MalformedRequestAndCloses) {
  for (const std::string& raw :
       {std::string("GARBAGE\r\n\r\n"), std::string("\x16\x03\x01\x02\x00\x01\x00\r\n\r\n", 11),
        std::string("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
        std::string("GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header Name: v\r\n\r\n"),
        std::string("PUT /v1/users/raw HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                    "Transfer-Encoding: chunked\r\n\r\nzz\r\n")}) {
    const std::string answer = RawExchange("127.0.0.1", server_->port(), raw);
    const auto r = ParseRawResponse(answer);
    EXPECT_TRUE(IsError(r, 400, "malformed_request")) << json(raw).dump() << " -> " << answer;
  }
  must_not_exist_.emplace_back("raw");
  // Unknown routes and methods have their own answers.
  EXPECT_TRUE(IsError(c_->Get("/v1/nothing-here"), 404, "route_not_found"));
  const auto r = c_->Request("POST", "/v1/users/existing", R"({"opt_in":true})");
  EXPECT_TRUE(IsError(r, 405, "method_not_allowed"));
  EXPECT_NE(r.Header("allow").find("GET"), std::string::npos) << r.Header("allow");
}

TEST_F(BadInputTest, HeaderSectionOver16KiBAnswers431) {
  const std::string big(17 * 1024, 'a');
  std::string raw = "PUT /v1/users/big-header HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                    tenant_->key + "\r\nX-Padding: " + big +
                    "\r\nContent-Length: 15\r\n\r\n{\"opt_in\":true}";
  must_not_exist_.emplace_back("big-header");
  auto r = ParseRawResponse(RawExchange("127.0.0.1", server_->port(), raw));
  EXPECT_TRUE(IsError(r, 431, "headers_too_large"));
  // Many small headers add up the same way.
  std::string many = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 800; ++i) many += "X-H" + std::to_string(i) + ": 0123456789abcdef\r\n";
  many += "\r\n";
  ASSERT_GT(many.size(), 16u * 1024);
  r = ParseRawResponse(RawExchange("127.0.0.1", server_->port(), many));
  EXPECT_TRUE(IsError(r, 431, "headers_too_large"));
}

TEST_F(BadInputTest, SilentClientsDoNotHoldUpOthers) {
  std::vector<HttpConnection> silent(20);
  for (auto& s : silent) ASSERT_TRUE(s.Connect("127.0.0.1", server_->port())) << s.error();
  // Some stop half-way through a head, some after a head with a body that never comes.
  HttpConnection half, no_body;
  ASSERT_TRUE(half.Connect("127.0.0.1", server_->port()));
  ASSERT_TRUE(half.SendAll("GET /healthz HTTP/1.1\r\nHo"));
  ASSERT_TRUE(no_body.Connect("127.0.0.1", server_->port()));
  ASSERT_TRUE(
      no_body.SendAll("PUT /v1/users/stalled HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                      tenant_->key + "\r\nContent-Length: 100\r\n\r\n{\"opt_in\":"));
  must_not_exist_.emplace_back("stalled");

  for (int i = 0; i < 20; ++i) {
    HttpClient fresh("127.0.0.1", server_->port(), /*keep_alive=*/false);
    fresh.set_timeout(std::chrono::seconds(2));
    const auto start = Clock::now();
    const auto r = fresh.Get("/healthz");
    const auto took = Clock::now() - start;
    EXPECT_EQ(r.status, 200) << r.Describe();
    EXPECT_LT(took, std::chrono::seconds(1));
  }
  const auto r = c_->Put("/v1/users/while-silent", UserBody("While Silent"));
  EXPECT_EQ(r.status, 201) << r.Describe();
  EXPECT_EQ(c_->Delete("/v1/users/while-silent").status, 204);
}

TEST_F(BadInputTest, ImportReportsEachRefusedLineAndKeepsTheGoodOnes) {
  const std::string ndjson =
      "{\"external_id\":\"imp-good-1\",\"opt_in\":true}\n"
      "{\"external_id\":\"imp-bad-json\",\"opt_in\":tru}\n"
      "{\"external_id\":\"imp-unknown\",\"opt_in\":true,\"nickname\":\"x\"}\n"
      "{\"external_id\":\"imp-email\",\"opt_in\":true,\"devices\":[{\"channel\":\"email\","
      "\"address\":\"nope\"}],\"groups\":[\"ghost\"]}\n"
      "\n"
      "{\"opt_in\":true}\n"
      "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
      "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n"
      "{\"external_id\":\"imp-good-2\",\"opt_in\":false}\n";
  for (const std::string id : {"imp-bad-json", "imp-unknown", "imp-email"}) {
    must_not_exist_.push_back(id);
  }
  const auto r = c_->Import(ndjson);
  ASSERT_EQ(r.status, 200) << r.Describe();
  const auto j = r.Json();
  EXPECT_EQ(j["created"], 2) << r.Describe();
  EXPECT_EQ(j["refused"], 5) << r.Describe();
  EXPECT_EQ(j["complete"], true) << r.Describe();
  ASSERT_EQ(j["errors"].size(), 5u) << r.Describe();
  const std::vector<std::pair<int, std::string>> want = {{2, "malformed_json"},
                                                         {3, "unknown_field"},
                                                         {4, "invalid_email"},
                                                         {6, "missing_field"},
                                                         {7, "json_too_deep"}};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(j["errors"][i]["line"], want[i].first) << r.Describe();
    EXPECT_EQ(j["errors"][i]["code"], want[i].second) << r.Describe();
    EXPECT_FALSE(j["errors"][i].value("message", "").empty()) << r.Describe();
  }
  EXPECT_EQ(j["errors"][2]["field"], "devices[0].address");
  EXPECT_EQ(j["errors"][3]["field"], "external_id");
  EXPECT_EQ(c_->Get("/v1/users/imp-good-1").status, 200);
  EXPECT_EQ(c_->Get("/v1/users/imp-good-2").status, 200);
  EXPECT_EQ(c_->Delete("/v1/users/imp-good-1").status, 204);
  EXPECT_EQ(c_->Delete("/v1/users/imp-good-2").status, 204);
}

// A line longer than 64 KiB is refused with line_too_long wherever it falls in the body: the
// server reads a streamed body in pieces of 256 KiB, and the rule must not depend on whether a
// line happens to lie inside one piece or across two.
TEST_F(BadInputTest, ImportRefusesLinesOver64KiBWhereverTheyFallInTheBody) {
  const std::string long_line =
      R"({"external_id":"imp-long","opt_in":true)" + std::string(100 * 1024, ' ') + "}\n";
  must_not_exist_.emplace_back("imp-long");
  std::string filler;  // ~200 KiB of short users padded to 2 KiB lines, so that the long line
                       // spans the first 256 KiB boundary
  for (int i = 0; filler.size() < 200 * 1024; ++i) {
    const std::string line =
        R"({"external_id":"imp-fill-)" + std::to_string(i) + R"(","opt_in":false)";
    filler += line + std::string(2047 - line.size() - 1, ' ') + "}\n";
  }
  const int filler_lines = static_cast<int>(std::count(filler.begin(), filler.end(), '\n'));
  struct Case {
    std::string what, body;
    int long_line_no;
  };
  const std::vector<Case> cases = {
      {"first line, inside the first piece", long_line, 1},
      {"across the first piece boundary", filler + long_line, filler_lines + 1},
  };
  for (const auto& c : cases) {
    const auto r = c_->Import(c.body);
    const auto j = r.Json();
    EXPECT_EQ(r.status, 200) << c.what << ": " << r.Describe().substr(0, 500);
    EXPECT_EQ(j.value("refused", -1), 1) << c.what << ": " << r.Describe().substr(0, 500);
    const json errors = j.value("errors", json::array());
    const json first_error = errors.empty() ? json::object() : errors[0];
    EXPECT_EQ(first_error.value("code", ""), "line_too_long") << c.what;
    EXPECT_EQ(first_error.value("line", 0), c.long_line_no) << c.what;
    // Leave nothing behind, should the long line have been stored.
    if (c_->Delete("/v1/users/imp-long").status == 204) {
      ADD_FAILURE() << c.what << ": the line over 64 KiB was stored as a user";
    }
  }
  for (int i = 0; i < filler_lines; ++i) {
    EXPECT_EQ(c_->Delete("/v1/users/imp-fill-" + std::to_string(i)).status, 204) << i;
  }
}

TEST_F(BadInputTest, InvalidLengthsKeysLimitsAndCursorsAnswer422NamingTheField) {
  EXPECT_TRUE(IsError(PutUser("long-name", json{{"opt_in", true}, {"name", std::string(257, 'n')}}),
                      422, "invalid_name", "name"));
  const std::string id129(129, 'i');
  must_not_exist_.push_back(id129);
  EXPECT_TRUE(IsError(c_->Request("PUT", "/v1/users/" + id129, R"({"opt_in":true})"), 422,
                      "invalid_external_id", "external_id"));
  EXPECT_TRUE(IsError(c_->Put("/v1/groups/bad%20key", {{"name", "x"}}), 422, "invalid_group_key",
                      "group_key"));
  EXPECT_TRUE(IsError(PutUser("bad-group", json{{"opt_in", true}, {"groups", {"ok", "not ok"}}}),
                      422, "invalid_group_key", "groups[1]"));
  for (const std::string path : {"/v1/groups/anchor-group/members", "/v1/audit"}) {
    const std::string limit_prefix = path + "?limit=";
    for (const std::string limit : {"0", "1001", "-1", "ten", ""}) {
      EXPECT_TRUE(IsError(c_->Get(limit_prefix + limit), 422, "invalid_limit", "limit"))
          << path << " limit=" << limit;
    }
    EXPECT_TRUE(IsError(c_->Get(path + "?cursor=not-a-cursor!"), 422, "invalid_cursor", "cursor"))
        << path;
  }
}

}  // namespace
}  // namespace herald::e2e

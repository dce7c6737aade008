// Attacks on the API of the real `herald serve` (issue 8, items 2-5 and 7), each as the probe
// performed it, with the fixed behaviour asserted: provider URLs that point inside, replayed
// delivery receipts, numbers that overflow a double, floods of one key or of wrong keys, and
// the smaller leaks (ids that count across tenants, world-readable files, empty idempotency
// keys, duplicate JSON members, invisible characters in names, stale provider settings).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "api/receipt_signatures.h"
#include "sim/demo_credentials.h"
#include "support/api_helpers.h"
#include "support/herald_process.h"
#include "support/sim_process.h"

namespace herald::e2e {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr char kPhone[] = "+447911123456";

json Twilio(const std::string& sim_url) {
  return {{"name", "twilio"},
          {"account_sid", std::string(sim::kDemoTwilioAccountSid)},
          {"auth_token", std::string(sim::kDemoTwilioAuthToken)},
          {"from", "+15005550006"},
          {"base_url", sim_url},
          {"h2c", true}};
}

json Vonage(const std::string& sim_url) {
  return {{"name", "vonage"},
          {"api_key", std::string(sim::kDemoVonageApiKey)},
          {"api_secret", std::string(sim::kDemoVonageApiSecret)},
          {"signature_secret", "vonage-signature-secret"},
          {"from", "Herald"},
          {"base_url", sim_url},
          {"h2c", true}};
}

json SendGridAt(const std::string& base_url) {
  return {{"name", "sendgrid"},
          {"api_key", "SG.key"},
          {"from", "noreply@example.com"},
          {"base_url", base_url}};
}

class SecurityApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sim_ = new SimProcess();
    ASSERT_TRUE(sim_->WaitReady());
    server_ =
        new HeraldProcess(HeraldOptions{.args = {"--sim", sim_->url(), "--sim-smtp", sim_->smtp(),
                                                 "--auth-failures-per-minute", "100000"}});
    ASSERT_TRUE(server_->Start()) << server_->last_error();
  }
  static void TearDownTestSuite() {
    if (server_ != nullptr) {
      EXPECT_EQ(server_->Stop(), 0) << server_->Stderr();
    }
    delete server_;
    delete sim_;
    server_ = nullptr;
    sim_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    admin_ = std::make_unique<HttpClient>(server_->AdminClient());
    tenant_ = CreateTenantWithKey(
        *admin_,
        "Security " + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    ASSERT_FALSE(tenant_.key.empty());
    c_ = std::make_unique<HttpClient>(server_->Client());
    c_->set_bearer(tenant_.key);
  }

  // `providers` in failover order (json::array, since a one-element brace list is not one).
  HttpResponse PutProviders(const std::string& channel, const json& providers) {
    return admin_->Put("/v1/tenants/" + tenant_.tenant_id + "/providers/" + channel,
                       {{"providers", providers}});
  }

  // Sends to one user over sms and waits until the delivery left the queue; returns it, with
  // its notification_id.
  json SendAndSettle(const std::string& user) {
    const HttpResponse r = c_->Post(
        "/v1/notifications", {{"to", {{"users", {user}}}}, {"body", "x"}, {"channels", {"sms"}}});
    EXPECT_EQ(r.status, 202) << r.Describe();
    const std::string id = r.Json().value("id", "");
    json d;
    for (auto until = std::chrono::steady_clock::now() + 10s;
         std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(20ms)) {
      const json list = c_->Get("/v1/notifications/" + id + "/deliveries").Json();
      if (list.contains("deliveries") && !list["deliveries"].empty()) {
        d = list["deliveries"][0];
        const std::string status = d.value("status", "");
        if (status != "queued" && status != "dispatched") break;
      }
    }
    d["notification_id"] = id;
    return d;
  }

  std::string DeliveryStatus(const std::string& notification_id) {
    return c_->Get("/v1/notifications/" + notification_id + "/deliveries")
        .Json()["deliveries"][0]
        .value("status", "");
  }

  static SimProcess* sim_;
  static HeraldProcess* server_;
  std::unique_ptr<HttpClient> admin_;
  std::unique_ptr<HttpClient> c_;
  TenantKey tenant_;
};

SimProcess* SecurityApiTest::sim_ = nullptr;
HeraldProcess* SecurityApiTest::server_ = nullptr;

// ---- 2. SSRF through provider settings ------------------------------------------------------

TEST_F(SecurityApiTest, ProviderUrlsThatPointInsideOrUseOtherProtocolsAreRefused) {
  const std::string own = "http://127.0.0.1:" + std::to_string(server_->port());
  for (const std::string& url : std::vector<std::string>{
           "gopher://127.0.0.1:6379/_FLUSHALL", "dict://127.0.0.1:11211/stat", "ftp://127.0.0.1/",
           "file:///etc/passwd", own, own + "/v1/tenants", "https://127.0.0.1:8443",
           "https://169.254.169.254/latest/meta-data", "https://10.0.0.5", "https://192.168.1.1",
           "https://[::1]:443", "https://[::ffff:127.0.0.1]", "https://[fd00::1]",
           "https://localhost:9999", "https://0.0.0.0", "https://100.64.0.1",
           "http://api.sendgrid.com", "https://user:pass@api.sendgrid.com"}) {
    const HttpResponse r = PutProviders("email", json::array({SendGridAt(url)}));
    EXPECT_EQ(r.status, 422) << url << ": " << r.Describe();
    const std::string code = r.Json()["error"].value("code", "");
    EXPECT_TRUE(code == "provider_url_not_allowed" || code == "invalid_url") << url << " " << code;
    EXPECT_EQ(r.Json()["error"].value("field", ""), "providers[0].base_url") << url;
  }
  // FCM's token URL and SMTP's URL are destinations too.
  json fcm = {{"name", "fcm"},
              {"project_id", "p"},
              {"client_email", "a@p.iam.gserviceaccount.com"},
              {"private_key", std::string(sim::kDemoFcmPrivateKeyPem)},
              {"token_url", "http://169.254.169.254/token"}};
  EXPECT_TRUE(IsError(PutProviders("android", json::array({fcm})), 422, "provider_url_not_allowed",
                      "providers[0].token_url"));
  json smtp = {{"name", "smtp"}, {"url", "smtp://127.0.0.1:25"}, {"from", "a@example.com"}};
  EXPECT_TRUE(IsError(PutProviders("email", json::array({smtp})), 422, "provider_url_not_allowed",
                      "providers[0].url"));
  // Weakened TLS toward a public host.
  json weak = SendGridAt("https://api.sendgrid.com");
  weak["verify_tls"] = false;
  EXPECT_TRUE(IsError(PutProviders("email", json::array({weak})), 422, "provider_url_not_allowed",
                      "providers[0].verify_tls"));
  // Nothing of it was stored.
  EXPECT_EQ(admin_->Get("/v1/tenants/" + tenant_.tenant_id + "/providers/email").status, 404);
  EXPECT_EQ(admin_->Get("/v1/tenants/" + tenant_.tenant_id + "/providers/android").status, 404);

  // What is fine: the public default, SMTP submission with STARTTLS, and the simulator, whose
  // address the operator named.
  EXPECT_EQ(PutProviders("email", json::array({SendGridAt("https://api.sendgrid.com")})).status,
            200);
  json submission = {
      {"name", "smtp"}, {"url", "smtp://smtp.example.com:587"}, {"from", "a@example.com"}};
  EXPECT_EQ(PutProviders("email", json::array({submission})).status, 200);
  EXPECT_EQ(PutProviders("sms", json::array({Twilio(sim_->url())})).status, 200);
}

TEST(ProviderDestinationTest, HeraldsOwnPortStaysRefusedWhenLoopbackIsAllowed) {
  HeraldProcess server(HeraldOptions{.args = {"--allow-provider-hosts", "127.0.0.1"}});
  ASSERT_TRUE(server.Start()) << server.last_error();
  HttpClient admin = server.AdminClient();
  const TenantKey t = CreateTenantWithKey(admin, "Own Port");
  const std::string path = "/v1/tenants/" + t.tenant_id + "/providers/email";
  const HttpResponse own = admin.Put(
      path, {{"providers",
              json::array({SendGridAt("http://127.0.0.1:" + std::to_string(server.port()))})}});
  EXPECT_TRUE(IsError(own, 422, "provider_url_not_allowed", "providers[0].base_url"));
  EXPECT_NE(own.Json()["error"].value("message", "").find("Herald's own API"), std::string::npos)
      << own.Describe();
  // Another loopback port is allowed now, in plain http too.
  EXPECT_EQ(
      admin.Put(path, {{"providers", json::array({SendGridAt("http://127.0.0.1:1")})}}).status,
      200);
  EXPECT_TRUE(
      IsError(admin.Put(path, {{"providers", json::array({SendGridAt("https://127.0.0.2")})}}), 422,
              "provider_url_not_allowed"));
}

// ---- 3. Replayable delivery receipts --------------------------------------------------------

TEST_F(SecurityApiTest, ReplayedReceiptsNeverMoveADeliveryBackwards) {
  ASSERT_EQ(PutProviders("sms", json::array({Twilio(sim_->url()), Vonage(sim_->url())})).status,
            200);
  ASSERT_EQ(c_->Put("/v1/users/r1", UserBody("R One", {{{"channel", "sms"}, {"address", kPhone}}}))
                .status,
            201);
  const json d = SendAndSettle("r1");
  ASSERT_EQ(d.value("status", ""), "sent") << d.dump();
  ASSERT_EQ(d.value("provider", ""), "twilio") << d.dump();
  ASSERT_TRUE(d["provider_message_id"].is_string()) << d.dump();
  const std::string sid = d["provider_message_id"];
  ASSERT_FALSE(sid.empty());
  const std::string notification = d.value("notification_id", "");

  const std::string target = "/v1/receipts/twilio/" + tenant_.tenant_id;
  const std::string url = "http://127.0.0.1:" + std::to_string(server_->port()) + target;
  auto twilio = [&](const std::string& form) {
    HttpClient anon = server_->Client();
    const std::string sig =
        api::TwilioSignature(sim::kDemoTwilioAuthToken, url, api::ParseForm(form));
    return anon.Request(
        "POST", target, form,
        {{"Content-Type", "application/x-www-form-urlencoded"}, {"X-Twilio-Signature", sig}});
  };
  const std::string failed = "MessageSid=" + sid + "&MessageStatus=undelivered&ErrorCode=30003";
  const std::string delivered = "MessageSid=" + sid + "&MessageStatus=delivered";
  HttpResponse r = twilio(failed);
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.Json()["recorded"], 1);
  // The attacker replays an earlier, validly signed `delivered` (Twilio signs no time).
  r = twilio(delivered);
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.Json()["stale"], 1);
  EXPECT_EQ(r.Json()["recorded"], 0);
  r = twilio(failed);
  EXPECT_EQ(r.Json()["duplicates"], 1);
  EXPECT_EQ(DeliveryStatus(notification), "failed");

  // Vonage signs a timestamp: one from 2020 is refused whatever else is right.
  const api::FormFields old = {
      {"messageId", sid}, {"status", "delivered"}, {"timestamp", "1580000000"}};
  std::string form = "messageId=" + sid + "&status=delivered&timestamp=1580000000&sig=" +
                     api::VonageSignature("vonage-signature-secret", old);
  HttpClient anon = server_->Client();
  r = anon.Request("POST", "/v1/receipts/vonage/" + tenant_.tenant_id, form,
                   {{"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_TRUE(IsError(r, 403, "receipt_expired", "timestamp")) << r.Describe();
  EXPECT_EQ(DeliveryStatus(notification), "failed");
}

// ---- 4. Numbers beyond a double, and the import that half-wrote -----------------------------

TEST_F(SecurityApiTest, NumbersBeyondADoubleAre400OnEveryRouteNever500) {
  EXPECT_TRUE(
      IsError(c_->Request("PUT", "/v1/users/n1", R"({"name":"x","opt_in":true,"version":1e400})"),
              400, "number_out_of_range"));
  EXPECT_TRUE(IsError(c_->Request("POST", "/v1/notifications",
                                  R"({"to":{"users":["n1"]},"body":"x","priority":-1e400})"),
                      400, "number_out_of_range"));
  EXPECT_TRUE(IsError(c_->Request("PUT", "/v1/groups/g", R"({"name":"g","n":1e400})"), 400,
                      "number_out_of_range"));
  EXPECT_TRUE(IsError(admin_->Request("PATCH", "/v1/tenants/" + tenant_.tenant_id,
                                      R"({"delivery_deadline_minutes":1e400})"),
                      400, "number_out_of_range"));
  // Unauthenticated, before the signature check: a refusal of the signature, not a 500.
  HttpClient anon = server_->Client();
  const HttpResponse receipt = anon.Request("POST", "/v1/receipts/vonage/" + tenant_.tenant_id,
                                            R"({"messageId":"x","timestamp":1e400})",
                                            {{"Content-Type", "application/json"}});
  EXPECT_EQ(receipt.status, 403) << receipt.Describe();
  EXPECT_EQ(c_->Get("/v1/users/n1").status, 404) << "nothing was written";
  EXPECT_EQ(server_->Stderr().find("handler threw"), std::string::npos) << server_->Stderr();
}

TEST_F(SecurityApiTest, AnImportLineThatOverflowsIsRefusedAndTheOthersAreStored) {
  std::string body;
  for (int i = 0; i < 3000; ++i) {
    body += json{{"external_id", "imp" + std::to_string(i)}, {"opt_in", true}}.dump() + "\n";
  }
  body += R"({"external_id":"bad","opt_in":true,"x":1e400})"
          "\n";
  for (int i = 3000; i < 3010; ++i) {
    body += json{{"external_id", "imp" + std::to_string(i)}, {"opt_in", true}}.dump() + "\n";
  }
  const HttpResponse r = c_->Import(body);
  ASSERT_EQ(r.status, 200) << r.Describe();
  const json j = r.Json();
  EXPECT_EQ(j["created"], 3010);
  EXPECT_EQ(j["refused"], 1);
  ASSERT_EQ(j["errors"].size(), 1u);
  EXPECT_EQ(j["errors"][0]["line"], 3001);
  EXPECT_EQ(j["errors"][0]["code"], "number_out_of_range");
  EXPECT_EQ(c_->Get("/v1/users/imp3009").status, 200);
  EXPECT_EQ(c_->Get("/v1/users/bad").status, 404);
}

// ---- 5. Rate limits ---------------------------------------------------------------------------

TEST_F(SecurityApiTest, ATenantsSendQuotaAnswers429WithRetryAfterAndTheDraftsHeaders) {
  const std::string tenant_path = "/v1/tenants/" + tenant_.tenant_id;
  HttpResponse patched = admin_->Patch(
      tenant_path, {{"rate_limits", {{"sends", {{"limit", 5}, {"window_seconds", 60}}}}}});
  ASSERT_EQ(patched.status, 200) << patched.Describe();
  EXPECT_EQ(
      patched.Json()["rate_limits"]["sends"],
      (json{
          {"limit", 5}, {"window_seconds", 60}, {"per_key_limit", nullptr}, {"source", "tenant"}}));
  EXPECT_EQ(patched.Json()["rate_limits"]["reads"]["source"], "default");
  ASSERT_EQ(
      c_->Put("/v1/users/q1", UserBody("Q", {{{"channel", "sms"}, {"address", kPhone}}})).status,
      201);
  const json send = {{"to", {{"users", {"q1"}}}}, {"body", "x"}};
  for (int i = 0; i < 5; ++i) {
    const HttpResponse r = c_->Post("/v1/notifications", send);
    ASSERT_EQ(r.status, 202) << i << ": " << r.Describe();
    EXPECT_EQ(r.Header("ratelimit-policy"), "\"sends\";q=5;w=60");
    EXPECT_EQ(r.Header("ratelimit").rfind("\"sends\";r=" + std::to_string(4 - i) + ";t=", 0), 0u)
        << r.Header("ratelimit");
  }
  const HttpResponse over = c_->Post("/v1/notifications", send);
  EXPECT_TRUE(IsError(over, 429, "rate_limited")) << over.Describe();
  EXPECT_GE(std::stoi("0" + over.Header("retry-after")), 1) << over.Describe();
  EXPECT_EQ(over.Header("ratelimit").rfind("\"sends\";r=0;t=", 0), 0u) << over.Header("ratelimit");
  // Other classes keep their own quota.
  EXPECT_EQ(c_->Get("/v1/users/q1").status, 200);
  // Raising the quota applies at once.
  ASSERT_EQ(admin_->Patch(tenant_path, {{"rate_limits", {{"sends", nullptr}}}}).status, 200);
  EXPECT_EQ(c_->Post("/v1/notifications", send).status, 202);
}

TEST_F(SecurityApiTest, APerKeyLimitKeepsOneKeyFromUsingTheWholeQuota) {
  ASSERT_EQ(
      admin_
          ->Patch("/v1/tenants/" + tenant_.tenant_id,
                  {{"rate_limits",
                    {{"reads", {{"limit", 100}, {"window_seconds", 60}, {"per_key_limit", 3}}}}}})
          .status,
      200);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(c_->Get("/v1/groups/none").status, 404);
  const HttpResponse over = c_->Get("/v1/groups/none");
  EXPECT_TRUE(IsError(over, 429, "rate_limited")) << over.Describe();
  EXPECT_EQ(over.Header("ratelimit-policy"), "\"reads-per-key\";q=3;w=60");
  const TenantKey other = CreateKey(*admin_, tenant_.tenant_id, "second");
  HttpClient second = server_->Client();
  second.set_bearer(other.key);
  EXPECT_EQ(second.Get("/v1/groups/none").status, 404) << "another key has its own share";
}

TEST_F(SecurityApiTest, BadRateLimitsAreRefusedNamingTheField) {
  const std::string path = "/v1/tenants/" + tenant_.tenant_id;
  EXPECT_TRUE(IsError(admin_->Patch(path, {{"rate_limits", {{"sends", {{"limit", 0}}}}}}), 422,
                      "invalid_rate_limit", "rate_limits.sends.limit"));
  EXPECT_TRUE(IsError(
      admin_->Patch(path, {{"rate_limits", {{"sends", {{"limit", 5}, {"window_seconds", 0}}}}}}),
      422, "invalid_rate_limit", "rate_limits.sends.window_seconds"));
  EXPECT_TRUE(IsError(
      admin_->Patch(path, {{"rate_limits", {{"sends", {{"limit", 5}, {"per_key_limit", 6}}}}}}),
      422, "invalid_rate_limit", "rate_limits.sends.per_key_limit"));
  EXPECT_TRUE(IsError(admin_->Patch(path, {{"rate_limits", {{"fax", {{"limit", 5}}}}}}), 422,
                      "unknown_field", "rate_limits.fax"));
  EXPECT_EQ(admin_->Get(path).Json()["rate_limits"]["sends"]["source"], "default");
}

TEST(FailedAuthenticationTest, AnAddressThatKeepsFailingIsAnswered429) {
  HeraldProcess server(HeraldOptions{.args = {"--auth-failures-per-minute", "10"}});
  ASSERT_TRUE(server.Start()) << server.last_error();
  HttpClient admin = server.AdminClient();
  const TenantKey t = CreateTenantWithKey(admin, "Stuffed");
  HttpClient wrong = server.Client();
  wrong.set_bearer("hk_" + t.key_id.substr(4) + "_" + std::string(43, 'A'));
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(IsError(wrong.Get("/v1/users/x"), 401, "invalid_credentials")) << i;
  }
  const HttpResponse blocked = wrong.Get("/v1/users/x");
  EXPECT_TRUE(IsError(blocked, 429, "too_many_failed_authentications", "Authorization"));
  EXPECT_GE(std::stoi("0" + blocked.Header("retry-after")), 1) << blocked.Describe();
  EXPECT_EQ(blocked.Header("ratelimit-policy"), "\"failed-authentications\";q=10;w=60");
  // The block is by address, before any key is looked at: no oracle for the next guess.
  HttpClient right = server.Client();
  right.set_bearer(t.key);
  EXPECT_EQ(right.Get("/v1/users/x").status, 429);
}

// ---- 7. Smaller leaks and gaps ------------------------------------------------------------------

TEST_F(SecurityApiTest, DeliveryAndAuditIdsShowNothingOfAnyonesVolume) {
  ASSERT_EQ(
      c_->Put("/v1/users/v1", UserBody("V", {{{"channel", "sms"}, {"address", kPhone}}})).status,
      201);
  const json first = SendAndSettle("v1");
  const json second = SendAndSettle("v1");
  const std::regex delivery_id("dlv_[A-Za-z0-9_-]{22}");
  const std::string a = first.value("id", "");
  const std::string b = second.value("id", "");
  EXPECT_TRUE(std::regex_match(a, delivery_id)) << a;
  EXPECT_TRUE(std::regex_match(b, delivery_id)) << b;
  EXPECT_NE(a.substr(0, 12), b.substr(0, 12)) << "neighbouring ids look alike: " << a << " " << b;
  const json audit = c_->Get("/v1/audit?limit=2").Json();
  ASSERT_EQ(audit["records"].size(), 2u);
  for (const json& rec : audit["records"]) {
    ASSERT_TRUE(rec["id"].is_string()) << rec.dump();
    EXPECT_TRUE(std::regex_match(rec["id"].get<std::string>(), std::regex("aud_[A-Za-z0-9_-]{22}")))
        << rec.dump();
  }
  // The page cursor carries no row number either.
  const std::string cursor = audit.value("next_cursor", "");
  ASSERT_FALSE(cursor.empty());
  EXPECT_EQ(c_->Get("/v1/audit?limit=2&cursor=" + cursor).status, 200);
  EXPECT_TRUE(
      IsError(c_->Get("/v1/audit?limit=2&cursor=" + cursor.substr(0, cursor.size() - 2) + "AA"),
              422, "invalid_cursor", "cursor"))
      << "an altered cursor does not open";
}

TEST_F(SecurityApiTest, TheDatabaseFilesAreReadableByHeraldsUserOnly) {
  for (const char* name :
       {"herald.db", "herald.db-wal", "herald.db-shm", "admin_token", "master_key"}) {
    struct stat st {};
    ASSERT_EQ(::stat((server_->data_dir() / name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_mode & 077, 0u) << name << " is mode " << std::oct << (st.st_mode & 0777);
  }
}

TEST_F(SecurityApiTest, AnEmptyIdempotencyKeyIs422) {
  const HttpResponse r =
      c_->Request("POST", "/v1/notifications", R"({"to":{"users":["x"]},"body":"x"})",
                  {{"Idempotency-Key", ""}});
  EXPECT_TRUE(IsError(r, 422, "invalid_idempotency_key", "Idempotency-Key")) << r.Describe();
}

TEST_F(SecurityApiTest, DuplicateJsonMembersAreRefused) {
  EXPECT_TRUE(
      IsError(c_->Request("PUT", "/v1/users/d1",
                          R"({"name":"Alice","opt_in":false,"name":"Mallory","opt_in":true})"),
              422, "duplicate_field", "name"));
  EXPECT_TRUE(IsError(
      c_->Request(
          "PUT", "/v1/users/d1",
          R"({"opt_in":true,"devices":[{"channel":"email","channel":"sms","address":"a@b.co"}]})"),
      422, "duplicate_field", "channel"));
  const HttpResponse imported = c_->Import(R"({"external_id":"d2","opt_in":false,"opt_in":true})"
                                           "\n");
  ASSERT_EQ(imported.status, 200) << imported.Describe();
  EXPECT_EQ(imported.Json()["errors"][0]["code"], "duplicate_field");
  EXPECT_EQ(c_->Get("/v1/users/d1").status, 404);
  EXPECT_EQ(c_->Get("/v1/users/d2").status, 404);
}

TEST_F(SecurityApiTest, InvisibleFormatCharactersInNamesAndIdsAre422) {
  const std::string rlo = "\u202E";  // RIGHT-TO-LEFT OVERRIDE: "evil\u202Egpj.exe"
  EXPECT_TRUE(IsError(c_->Put("/v1/users/f1", UserBody("Invoice" + rlo + "fdp.exe")), 422,
                      "invalid_name", "name"));
  EXPECT_TRUE(IsError(c_->Put("/v1/users/" + PathEscape("f\u200B1"), UserBody("F")), 422,
                      "invalid_external_id"));
  EXPECT_TRUE(IsError(c_->Put("/v1/groups/g1", json{{"name", "Team\u2066A"}}), 422, "invalid_name",
                      "name"));
  EXPECT_TRUE(
      IsError(admin_->Post("/v1/tenants", {{"name", "Acme\uFEFF"}}), 422, "invalid_name", "name"));
  EXPECT_TRUE(IsError(admin_->Post("/v1/tenants/" + tenant_.tenant_id + "/keys",
                                   {{"name", "ci\u200Ekey"}, {"scopes", {"users:read"}}}),
                      422, "invalid_name", "name"));
  // Joiners are how some names are spelt (Persian, Indic scripts) and emoji are joined.
  EXPECT_EQ(
      c_->Put("/v1/users/f2", UserBody("\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645")).status,
      201);
}

TEST_F(SecurityApiTest, ChangedProviderSettingsApplyToTheNextSend) {
  ASSERT_EQ(
      c_->Put("/v1/users/p1", UserBody("P", {{{"channel", "sms"}, {"address", kPhone}}})).status,
      201);
  ASSERT_EQ(PutProviders("sms", json::array({Twilio(sim_->url())})).status, 200);
  json d = SendAndSettle("p1");
  EXPECT_EQ(d.value("status", ""), "sent") << d.dump();
  EXPECT_EQ(d.value("provider", ""), "twilio");
  ASSERT_EQ(PutProviders("sms", json::array({Vonage(sim_->url())})).status, 200);
  d = SendAndSettle("p1");  // at once, not 30 s later
  EXPECT_EQ(d.value("status", ""), "sent") << d.dump();
  EXPECT_EQ(d.value("provider", ""), "vonage");
}

}  // namespace
}  // namespace herald::e2e

// Fault injection through PUT /sim/faults/<provider>, observed with curl.
#include "sim/sim_test_support.h"

namespace herald::sim::testing {
namespace {

class FaultsTest : public SimTest {
 protected:
  std::string Jwt() { return key_.ApnsJwt("KEYID12345", Now()); }
  CurlResult Twilio(const std::string& to = "+14155550100", const std::string& flags = "") {
    return Http(flags + " -u AC1:tok --data-urlencode " + ShellQuote("To=" + to) +
                    " --data-urlencode From=+14155550199 --data-urlencode Body=hi",
                "/2010-04-01/Accounts/AC1/Messages.json");
  }
  CurlResult Vonage(const std::string& to = "447700900000") {
    return Http(
        "--data-urlencode api_key=k --data-urlencode api_secret=s --data-urlencode "
        "from=H --data-urlencode text=hi --data-urlencode " +
            ShellQuote("to=" + to),
        "/sms/json");
  }
  CurlResult Sendgrid(const std::string& to = "a@example.com") {
    json mail = {{"personalizations", {{{"to", {{{"email", to}}}}}}},
                 {"from", {{"email", "f@example.com"}}},
                 {"subject", "s"},
                 {"content", {{{"type", "text/plain"}, {"value", "v"}}}}};
    return Http("-H 'authorization: Bearer k' " + Data(mail.dump()), "/v3/mail/send");
  }
  CurlResult Fcm(const std::string& device = "dev") {
    std::string claims = json{
        {"iss", "a@b"},
        {"scope", "https://www.googleapis.com/auth/firebase.messaging"},
        {"aud", "https://oauth2.googleapis.com/token"},
        {"iat", Now()},
        {"exp",
         Now() + 3600}}.dump();
    std::string assertion = crypto::Base64UrlEncode(R"({"alg":"RS256"})") + "." +
                            crypto::Base64UrlEncode(claims) + ".c2ln";
    std::string token =
        Http(
            "--data-urlencode grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer "
            "--data-urlencode " +
                ShellQuote("assertion=" + assertion),
            "/token")
            .Json()
            .value("access_token", "");
    json msg = {{"message", {{"token", device}, {"notification", {{"title", "t"}}}}}};
    return H2("-H " + ShellQuote("authorization: Bearer " + token) + " " + Data(msg.dump()),
              "/v1/projects/p/messages:send");
  }
  Es256Key key_;
};

TEST_F(FaultsTest, ErrorRateOneAnswersEveryRequestWithTheProvidersServerError) {
  PutFaults("apns", {{"error_rate", 1.0}});
  for (int i = 0; i < 20; ++i) {
    CurlResult r = ApnsPush(Jwt());
    ASSERT_EQ(r.status, 500);
    ASSERT_EQ(r.Json()["reason"], "InternalServerError");
  }
  PutFaults("apns", {{"error_rate", 1.0}, {"status", 503}});
  CurlResult r = ApnsPush(Jwt());
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.Json()["reason"], "ServiceUnavailable");
  EXPECT_EQ(Fcm().status, 200);  // other providers are untouched
  PutFaults("fcm", {{"error_rate", 1.0}});
  r = Fcm();
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.Json()["error"]["details"][0]["errorCode"], "INTERNAL");
  PutFaults("twilio", {{"error_rate", 1.0}, {"status", 503}});
  EXPECT_EQ(Twilio().status, 503);
  PutFaults("vonage", {{"error_rate", 1.0}});
  EXPECT_EQ(Vonage().Json()["messages"][0]["status"], "5");
  PutFaults("sendgrid", {{"error_rate", 1.0}});
  EXPECT_EQ(Sendgrid().status, 500);
  json stats = Stats();
  EXPECT_EQ(stats["apns"]["refused"], 21);
  EXPECT_EQ(stats["apns"]["accepted"], 0);
}

TEST_F(FaultsTest, ErrorRateHalfFailsAboutHalf) {
  PutFaults("vonage", {{"error_rate", 0.5}});
  int failed = 0;
  for (int i = 0; i < 60; ++i) failed += Vonage().Json()["messages"][0]["status"] != "0";
  EXPECT_GT(failed, 10);  // binomial(60, 0.5): outside 10..50 with probability < 1e-7
  EXPECT_LT(failed, 50);
  EXPECT_EQ(Stats()["vonage"]["refused"], failed);
}

TEST_F(FaultsTest, ThrottleAnswers429WithRetryAfterInEachProvidersShape) {
  for (const char* p : {"apns", "fcm", "twilio", "vonage", "sendgrid"}) {
    PutFaults(p, {{"throttle_rate", 1.0}});
  }
  CurlResult r = ApnsPush(Jwt());
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.Json()["reason"], "TooManyRequests");
  EXPECT_EQ(r.Header("retry-after"), "1");
  r = Fcm();
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.Json()["error"]["details"][0]["errorCode"], "QUOTA_EXCEEDED");
  EXPECT_EQ(r.Header("retry-after"), "1");
  r = Twilio();
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.Json()["code"], 20429);
  r = Vonage();
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.Json()["messages"][0]["status"], "1");
  r = Sendgrid();
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.Header("retry-after"), "1");
}

TEST_F(FaultsTest, LatencyDelaysTheAnswerOnBothWires) {
  PutFaults("apns", {{"latency_ms", 400}});
  CurlResult r = ApnsPush(Jwt());
  EXPECT_EQ(r.status, 200);
  EXPECT_GE(r.seconds, 0.39);
  PutFaults("twilio", {{"latency_ms", 300}});
  r = Twilio();
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.http_version, "1.1");
  EXPECT_GE(r.seconds, 0.29);
  // Other requests on the server are not held up meanwhile.
  EXPECT_LT(Vonage().seconds, 0.25);
}

TEST_F(FaultsTest, TimeoutAfterAcceptRecordsButNeverAnswers) {
  PutFaults("apns", {{"timeout_after_accept_rate", 1.0}});
  CurlResult r = ApnsPush(Jwt(), "--max-time 1");
  EXPECT_EQ(r.exit_code, 28) << r.errors;  // curl: operation timed out
  EXPECT_EQ(r.status, 0);
  PutFaults("twilio", {{"timeout_after_accept_rate", 1.0}});
  r = Twilio("+14155550100", "--max-time 1");
  EXPECT_EQ(r.exit_code, 28);
  json stats = Stats();
  EXPECT_EQ(stats["apns"]["accepted"], 1);
  EXPECT_EQ(stats["twilio"]["accepted"], 1);
  EXPECT_EQ(Messages().size(), 2u);
  // The simulator itself is still answering.
  EXPECT_EQ(Vonage().status, 200);
}

TEST_F(FaultsTest, OutageAnswers503AndClosesTheConnection) {
  PutFaults("twilio", {{"outage", true}});
  CurlResult r = Twilio();
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.Header("connection"), "close");
  PutFaults("apns", {{"outage", true}});
  r = ApnsPush(Jwt());
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.Json()["reason"], "ServiceUnavailable");
  CurlResult cleared = Http("-X DELETE", "/sim/faults");
  EXPECT_EQ(cleared.status, 200);
  EXPECT_EQ(Twilio().status, 201);
  EXPECT_EQ(ApnsPush(Jwt()).status, 200);
}

TEST_F(FaultsTest, InvalidAddressesGetEachProvidersInvalidAddressAnswer) {
  const std::string other_token(64, 'b');
  PutFaults("apns", {{"invalid_addresses", {other_token}}});
  PutFaults("fcm", {{"invalid_addresses", {"gone-device"}}});
  PutFaults("twilio", {{"invalid_addresses", {"+14155550111"}}});
  PutFaults("vonage", {{"invalid_addresses", {"447700900111"}}});
  PutFaults("sendgrid", {{"invalid_addresses", {"bounce@example.com"}}});
  CurlResult r = ApnsPush(Jwt(), "", other_token);
  EXPECT_EQ(r.status, 410);
  EXPECT_EQ(r.Json()["reason"], "Unregistered");
  EXPECT_TRUE(r.Json()["timestamp"].is_number());
  EXPECT_EQ(ApnsPush(Jwt()).status, 200);
  r = Fcm("gone-device");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.Json()["error"]["details"][0]["errorCode"], "UNREGISTERED");
  r = Twilio("+14155550111");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["code"], 21211);
  EXPECT_EQ(Vonage("+447700900111").Json()["messages"][0]["status"], "7");
  EXPECT_EQ(Sendgrid("Bounce@Example.com").status, 400);
  json stats = Stats();
  for (const char* p : {"apns", "fcm", "twilio", "vonage", "sendgrid"}) {
    EXPECT_EQ(stats[p]["refused"], 1) << p;
  }
}

TEST_F(FaultsTest, BadFaultSettingsAreRefusedWith400) {
  for (const char* body :
       {R"({"error_rate":2})", R"({"throttle_rate":-0.1})", R"({"status":"500"})",
        R"({"latency_ms":1.5})", R"({"outage":"yes"})", R"({"invalid_addresses":"a@b"})",
        R"({"errror_rate":0.5})", R"([1,2])", "not json"}) {
    CurlResult r = Http("-X PUT " + Data(body), "/sim/faults/apns");
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_TRUE(r.Json()["error"]["message"].is_string()) << r.body;
  }
  EXPECT_EQ(Http("-X PUT " + Data("{}"), "/sim/faults/pigeon").status, 404);
  EXPECT_EQ(ApnsPush(Jwt()).status, 200);  // nothing was set
}

}  // namespace
}  // namespace herald::sim::testing

// FCM (token endpoint + messages:send), SendGrid, Twilio and Vonage, driven by curl over
// HTTP/1.1 and h2c.
#include "sim/sim_test_support.h"

namespace herald::sim::testing {
namespace {

constexpr const char* kScope = "https://www.googleapis.com/auth/firebase.messaging";

class HttpApisTest : public SimTest {
 protected:
  // An RS256-shaped assertion (the simulator checks structure and claims, not the signature).
  static std::string Assertion(const json& claims) {
    return crypto::Base64UrlEncode(json{{"alg", "RS256"}, {"typ", "JWT"}}.dump()) + "." +
           crypto::Base64UrlEncode(claims.dump()) + "." +
           crypto::Base64UrlEncode(std::string(256, '\x5a'));
  }
  json Claims() const {
    return {{"iss", "herald@project.iam.gserviceaccount.com"},
            {"scope", kScope},
            {"aud", base_ + "/token"},
            {"iat", Now()},
            {"exp", Now() + 3600}};
  }
  CurlResult TokenRequest(
      const std::string& assertion,
      const std::string& grant = "urn:ietf:params:oauth:grant-type:jwt-bearer") {
    return Http("--data-urlencode " + ShellQuote("grant_type=" + grant) + " --data-urlencode " +
                    ShellQuote("assertion=" + assertion),
                "/token");
  }
  std::string AccessToken() {
    CurlResult r = TokenRequest(Assertion(Claims()));
    EXPECT_EQ(r.status, 200) << r.body;
    return r.Json().value("access_token", "");
  }
  CurlResult FcmSend(const std::string& flags, const std::string& token, const json& body) {
    return Http(flags + " -H " + ShellQuote("authorization: Bearer " + token) +
                    " -H 'content-type: application/json' " + Data(body.dump()),
                "/v1/projects/demo/messages:send");
  }
  static json FcmMessage(const std::string& device, const std::string& delivery_id) {
    return {{"message",
             {{"token", device},
              {"notification", {{"title", "T"}, {"body", "B"}}},
              {"data", {{"delivery_id", delivery_id}}}}}};
  }
};

TEST_F(HttpApisTest, FcmTokenEndpointChecksTheAssertion) {
  CurlResult r = TokenRequest(Assertion(Claims()));
  ASSERT_EQ(r.status, 200) << r.body;
  json token = r.Json();
  EXPECT_EQ(token["token_type"], "Bearer");
  EXPECT_EQ(token["expires_in"], 3599);
  EXPECT_EQ(token["access_token"].get<std::string>().rfind("sim-", 0), 0u);

  json bad_scope = Claims();
  bad_scope["scope"] = "https://www.googleapis.com/auth/cloud-platform.read-only";
  r = TokenRequest(Assertion(bad_scope));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["error"], "invalid_grant");
  json too_long = Claims();
  too_long["exp"] = Now() + 7200;
  EXPECT_EQ(TokenRequest(Assertion(too_long)).status, 400);
  json no_iss = Claims();
  no_iss.erase("iss");
  EXPECT_EQ(TokenRequest(Assertion(no_iss)).status, 400);
  EXPECT_EQ(TokenRequest(Assertion(Claims()), "client_credentials").Json()["error"],
            "unsupported_grant_type");
  EXPECT_EQ(TokenRequest("a.b").Json()["error"], "invalid_grant");
}

TEST_F(HttpApisTest, FcmSendWithIssuedTokenOverHttp11AndH2) {
  std::string token = AccessToken();
  CurlResult r = FcmSend("", token, FcmMessage("device-token:1", "d1"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.http_version, "1.1");
  EXPECT_EQ(r.Json()["name"].get<std::string>().rfind("projects/demo/messages/", 0), 0u);
  r = FcmSend("--http2-prior-knowledge", token, FcmMessage("device-token:2", "d2"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.http_version, "2");
  // The same delivery id again is a duplicate.
  EXPECT_EQ(FcmSend("--http2-prior-knowledge", token, FcmMessage("device-token:2", "d2")).status,
            200);
  json fcm = Stats()["fcm"];
  EXPECT_EQ(fcm["accepted"], 3);
  EXPECT_EQ(fcm["duplicates"], 1);
  EXPECT_EQ(fcm["unique_addresses"], 2);
  json messages = Messages("?provider=fcm&address=device-token:1");
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0]["title"], "T");
  EXPECT_EQ(messages[0]["body"], "B");
}

TEST_F(HttpApisTest, FcmRefusesUnknownTokensAndBadMessages) {
  CurlResult r = FcmSend("", "sim-not-issued", FcmMessage("device", "d"));
  EXPECT_EQ(r.status, 401);
  json error = r.Json()["error"];
  EXPECT_EQ(error["status"], "UNAUTHENTICATED");
  EXPECT_EQ(error["details"][0]["errorCode"], "THIRD_PARTY_AUTH_ERROR");
  std::string token = AccessToken();
  r = FcmSend("", token, FcmMessage("bad token with spaces", "d"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["error"]["details"][0]["errorCode"], "INVALID_ARGUMENT");
  r = FcmSend("", token, json{{"message", {{"token", "t"}, {"data", {{"n", 1}}}}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Stats()["fcm"]["refused"], 3);
}

TEST_F(HttpApisTest, SendgridRecordsOneMessagePerRecipient) {
  json mail = {{"personalizations",
                {{{"to", {{{"email", "a@example.com"}}, {{"email", "B@Example.com"}}}},
                  {"custom_args", {{"delivery_id", "dlv-1"}}}}}},
               {"from", {{"email", "noreply@herald.test"}}},
               {"subject", "Greetings"},
               {"content", {{{"type", "text/plain"}, {"value", "Hello there"}}}}};
  CurlResult r = Http("-H 'content-type: application/json' " + Data(mail.dump()), "/v3/mail/send");
  EXPECT_EQ(r.status, 401);
  EXPECT_TRUE(r.Json()["errors"].is_array());
  r = Http(
      "-H 'authorization: Bearer SG.key' -H 'content-type: application/json' " + Data(mail.dump()),
      "/v3/mail/send");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_FALSE(r.Header("x-message-id").empty());
  json messages = Messages("?provider=sendgrid");
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[1]["address"], "B@Example.com");
  EXPECT_EQ(messages[1]["title"], "Greetings");
  EXPECT_EQ(messages[1]["body"], "Hello there");
  EXPECT_EQ(messages[1]["delivery_id"], "dlv-1");
  EXPECT_EQ(Messages("?address=b@example.com").size(), 1u);  // addresses compare normalized
  mail.erase("from");
  r = H2("-H 'authorization: Bearer SG.key' " + Data(mail.dump()), "/v3/mail/send");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["errors"][0]["field"], "from.email");
  json sendgrid = Stats()["sendgrid"];
  EXPECT_EQ(sendgrid["accepted"], 2);
  EXPECT_EQ(sendgrid["unique_addresses"], 2);
}

TEST_F(HttpApisTest, TwilioNeedsBasicAuthAndAValidNumber) {
  const std::string path = "/2010-04-01/Accounts/AC123/Messages.json";
  const std::string form =
      "--data-urlencode 'To=+14155550100' --data-urlencode 'From=+14155550199' "
      "--data-urlencode 'Body=Your code is 1234' --data-urlencode "
      "'StatusCallback=https://herald.test/cb?delivery_id=dlv-9&x=1' ";
  CurlResult r = Http(form, path);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.Json()["code"], 20003);
  EXPECT_EQ(Http("-u AC999:secret " + form, path).status, 401);  // another account's credentials
  r = Http("-u AC123:secret " + form, path);
  ASSERT_EQ(r.status, 201) << r.body;
  json message = r.Json();
  EXPECT_EQ(message["status"], "queued");
  EXPECT_EQ(message["sid"].get<std::string>().rfind("SM", 0), 0u);
  EXPECT_EQ(message["to"], "+14155550100");
  r =
      H2("-u AC123:secret --data-urlencode 'To=12345' --data-urlencode 'From=+14155550199' "
         "--data-urlencode 'Body=x'",
         path);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["code"], 21211);
  json messages = Messages("?provider=twilio");
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0]["delivery_id"], "dlv-9");
  EXPECT_EQ(messages[0]["body"], "Your code is 1234");
  EXPECT_EQ(Stats()["twilio"]["refused"], 3);
}

TEST_F(HttpApisTest, VonageReportsStatusPerMessage) {
  const std::string form =
      "--data-urlencode 'from=Herald' --data-urlencode 'to=447700900000' "
      "--data-urlencode 'text=Hi from Vonage' --data-urlencode 'client-ref=dlv-7' ";
  CurlResult r = Http(form, "/sms/json");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Json()["messages"][0]["status"], "4");
  r = Http(form + "--data-urlencode api_key=k --data-urlencode api_secret=s", "/sms/json");
  ASSERT_EQ(r.status, 200);
  json reply = r.Json();
  EXPECT_EQ(reply["message-count"], "1");
  EXPECT_EQ(reply["messages"][0]["status"], "0");
  EXPECT_EQ(reply["messages"][0]["client-ref"], "dlv-7");
  EXPECT_FALSE(reply["messages"][0]["message-id"].get<std::string>().empty());
  EXPECT_EQ(H2(form + "--data-urlencode api_key=k --data-urlencode api_secret=s", "/sms/json")
                .Json()["messages"][0]["status"],
            "0");
  json vonage = Stats()["vonage"];
  EXPECT_EQ(vonage["accepted"], 2);
  EXPECT_EQ(vonage["duplicates"], 1);
  EXPECT_EQ(vonage["refused"], 1);
}

}  // namespace
}  // namespace herald::sim::testing

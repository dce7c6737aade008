// APNs over HTTP/2 (h2c prior knowledge and TLS with ALPN), driven by curl, nghttp and h2load.
#include <cctype>
#include <iostream>

#include "sim/sim_test_support.h"

namespace herald::sim::testing {
namespace {

class ApnsTest : public SimTest {};

// 8-4-4-4-12 lower-case hex with the version nibble 4 and the variant nibble 8, 9, a or b.
bool IsLowerCaseUuidV4(const std::string& s) {
  if (s.size() != 36 || s[14] != '4' || std::string_view("89ab").find(s[19]) == std::string::npos) {
    return false;
  }
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-'
             : !std::isxdigit(static_cast<unsigned char>(s[i])) || std::isupper(s[i])) {
      return false;
    }
  }
  return true;
}

TEST_F(ApnsTest, SignedJwtOverH2cIsAcceptedAndApnsIdEchoed) {
  Es256Key key;
  RegisterApnsKey("KEYID12345", key);
  const std::string apns_id = "8f1c3a2e-6b1d-4c57-9a57-3f0c1d2e4b5a";
  CurlResult r = ApnsPush(key.ApnsJwt("KEYID12345", Now()), "-H 'apns-id: " + apns_id + "'");
  EXPECT_EQ(r.status, 200) << r.body << r.errors;
  EXPECT_EQ(r.http_version, "2");
  EXPECT_EQ(r.Header("apns-id"), apns_id);
  EXPECT_TRUE(r.body.empty());
  json messages = Messages("?provider=apns");
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0]["address"], kDeviceToken);
  EXPECT_EQ(messages[0]["id"], apns_id);
  EXPECT_EQ(messages[0]["title"], "Hello");
  EXPECT_EQ(messages[0]["body"], "World");
  EXPECT_EQ(Stats()["apns"]["accepted"], 1);
}

TEST_F(ApnsTest, TamperedJwtIsInvalidProviderToken) {
  Es256Key key;
  RegisterApnsKey("KEYID12345", key);
  std::string jwt = key.ApnsJwt("KEYID12345", Now());
  // Same signature, different claims.
  size_t dot = jwt.find('.');
  size_t dot2 = jwt.find('.', dot + 1);
  std::string forged = jwt.substr(0, dot + 1) +
                       crypto::Base64UrlEncode(json{{"iss", "EVILTEAM00"}, {"iat", Now()}}.dump()) +
                       jwt.substr(dot2);
  CurlResult r = ApnsPush(forged);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.Json()["reason"], "InvalidProviderToken");
  // Signed by another key than the registered one.
  Es256Key other;
  r = ApnsPush(other.ApnsJwt("KEYID12345", Now()));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.Json()["reason"], "InvalidProviderToken");
  EXPECT_EQ(Stats()["apns"]["refused"], 2);
  EXPECT_EQ(Stats()["apns"]["accepted"], 0);
}

TEST_F(ApnsTest, NoAuthorizationIsMissingProviderToken) {
  CurlResult r = ApnsPush("");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.Json()["reason"], "MissingProviderToken");
}

TEST_F(ApnsTest, TokenOlderThanAnHourIsExpiredProviderToken) {
  Es256Key key;
  RegisterApnsKey("KEYID12345", key);
  CurlResult r = ApnsPush(key.ApnsJwt("KEYID12345", Now() - 3700));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.Json()["reason"], "ExpiredProviderToken");
}

TEST_F(ApnsTest, UnregisteredKidIsCheckedForStructureOnly) {
  Es256Key key;  // never registered
  EXPECT_EQ(ApnsPush(key.ApnsJwt("OTHERKID00", Now())).status, 200);
  CurlResult r = ApnsPush("not-a-jwt");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.Json()["reason"], "InvalidProviderToken");
  std::string wrong_alg =
      key.Jwt({{"alg", "HS256"}, {"kid", "OTHERKID00"}}, {{"iss", "TEAM123456"}, {"iat", Now()}});
  EXPECT_EQ(ApnsPush(wrong_alg).Json()["reason"], "InvalidProviderToken");
}

TEST_F(ApnsTest, RequestsAreValidatedLikeApns) {
  Es256Key key;
  std::string jwt = key.ApnsJwt("KEYID12345", Now());
  std::string auth = "-H " + ShellQuote("authorization: bearer " + jwt) + " ";
  CurlResult r = H2(auth + Data(R"({"aps":{"alert":"x"}})"), "/3/device/" + kDeviceToken);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["reason"], "MissingTopic");
  r = ApnsPush(jwt, "", "not-hex-token");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["reason"], "BadDeviceToken");
  r = ApnsPush(jwt, "", kDeviceToken, R"({"aps":{"alert":")" + std::string(5000, 'x') + "\"}}");
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.Json()["reason"], "PayloadTooLarge");
  r = ApnsPush(jwt, "", kDeviceToken, R"({"aps":{"badge":1}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["reason"], "PayloadEmpty");
  r = ApnsPush(jwt, "-H 'apns-id: not-a-uuid'");
  EXPECT_EQ(r.Json()["reason"], "BadMessageId");
  // Without apns-id, one is minted: a lower-case UUID.
  r = ApnsPush(jwt);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(IsLowerCaseUuidV4(r.Header("apns-id"))) << r.Header("apns-id");
  EXPECT_EQ(Stats()["apns"]["refused"], 5);
}

TEST_F(ApnsTest, SameApnsIdTwiceCountsOneDuplicate) {
  Es256Key key;
  std::string jwt = key.ApnsJwt("KEYID12345", Now());
  const std::string id = "-H 'apns-id: 11111111-2222-4333-8444-555555555555'";
  EXPECT_EQ(ApnsPush(jwt, id).status, 200);
  EXPECT_EQ(ApnsPush(jwt, id).status, 200);
  EXPECT_EQ(ApnsPush(jwt, "-H 'apns-id: 11111111-2222-4333-8444-666666666666'").status, 200);
  json apns = Stats()["apns"];
  EXPECT_EQ(apns["accepted"], 3);
  EXPECT_EQ(apns["duplicates"], 1);
  EXPECT_EQ(apns["unique_addresses"], 1);
}

TEST_F(ApnsTest, TlsNegotiatesH2AndHttp11ByAlpnWithTheSimulatorsCertificate) {
  Es256Key key;
  std::string args = "-H " + ShellQuote("authorization: bearer " + key.ApnsJwt("K1", Now())) +
                     " -H 'apns-topic: t' " + Data(R"({"aps":{"alert":"tls"}})") + " --cacert " +
                     ca_file_ + " ";
  CurlResult r =
      Curl(dir_, "--http2 " + args + ShellQuote(tls_base_ + "/3/device/" + kDeviceToken));
  EXPECT_EQ(r.status, 200) << r.errors;
  EXPECT_EQ(r.http_version, "2");
  r = Curl(dir_, "--http1.1 " + args + ShellQuote(tls_base_ + "/3/device/" + kDeviceToken));
  EXPECT_EQ(r.status, 200) << r.errors;
  EXPECT_EQ(r.http_version, "1.1");
  EXPECT_EQ(Stats()["apns"]["accepted"], 2);
}

TEST_F(ApnsTest, NghttpSeesThousandStreamsAdvertisedAndGets200) {
  ASSERT_TRUE(HaveTool("nghttp")) << "install the Debian package nghttp2-client";
  Es256Key key;
  std::string payload = dir_.Write("payload.json", R"({"aps":{"alert":{"title":"n","body":"h"}}})");
  CommandResult r =
      RunCommand("nghttp -v -d " + payload + " -H " +
                 ShellQuote("authorization: bearer " + key.ApnsJwt("K1", Now())) +
                 " -H 'apns-topic: t' -H 'apns-id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee' " +
                 ShellQuote(base_ + "/3/device/" + kDeviceToken));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("SETTINGS_MAX_CONCURRENT_STREAMS(0x03):1000"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(":status: 200"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("apns-id: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"), std::string::npos);
  EXPECT_EQ(Messages("?provider=apns")[0]["title"], "n");
}

TEST_F(ApnsTest, H2loadTwentyThousandPushesAllSucceed) {
  ASSERT_TRUE(HaveTool("h2load")) << "install the Debian package nghttp2-client";
  Es256Key key;
  RegisterApnsKey("KEYID12345", key);
  std::string payload =
      dir_.Write("payload.json", R"({"aps":{"alert":{"title":"load","body":"test"}}})");
  CommandResult r =
      RunCommand("h2load -n 20000 -c 2 -m 100 -d " + payload + " -H " +
                 ShellQuote("authorization: bearer " + key.ApnsJwt("KEYID12345", Now())) +
                 " -H 'apns-topic: com.example.app' -H 'apns-push-type: alert' " +
                 ShellQuote(base_ + "/3/device/" + kDeviceToken));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("status codes: 20000 2xx, 0 3xx, 0 4xx, 0 5xx"), std::string::npos)
      << r.output;
  // "finished in 1.23s, 16260.16 req/s, ..."
  size_t finished = r.output.find("finished in ");
  size_t comma = r.output.find(", ", finished);
  size_t unit = r.output.find(" req/s", comma);
  if (finished != std::string::npos && comma != std::string::npos && unit != std::string::npos) {
    std::string rate = r.output.substr(comma + 2, unit - comma - 2);
    std::cout << "[ h2load  ] APNs endpoint: " << rate << " req/s (20000 requests, 2 "
              << "connections, 100 streams each)\n";
    RecordProperty("h2load_req_per_s", rate);
  }
  json apns = Stats()["apns"];
  EXPECT_EQ(apns["accepted"], 20000);
  EXPECT_EQ(apns["refused"], 0);
}

}  // namespace
}  // namespace herald::sim::testing

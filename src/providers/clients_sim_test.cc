// Every provider client against the simulator, for every outcome class: accepted (and recorded
// with the right address, title and body), retry, throttled, invalid_address, rejected and
// auth_error. One table row per provider; each test runs for all six.
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <functional>

#include "providers/provider_util.h"
#include "providers/sim_fixture_test.h"

namespace herald::providers::testing {
namespace {

struct ProviderCase {
  std::string name;
  Channel channel;
  std::string address;
  // What the simulator records for title "Hello" and body "World": SMS carries both in the text.
  std::string recorded_title;
  std::string recorded_body;
  bool records_delivery_id;       // the protocol carries the delivery id (Twilio: callback only)
  bool throttle_has_retry_after;  // SMTP has no Retry-After
  // A message this provider refuses for good (payload, content).
  std::function<Message(const Message&)> rejectable;
};

Message WithBody(const Message& m, std::string body) {
  Message out = m;
  out.body = std::move(body);
  return out;
}

const std::vector<ProviderCase>& Cases() {
  static const std::vector<ProviderCase> cases = {
      {"apns", Channel::kIos, kApnsToken, "Hello", "World", true, true,
       [](const Message& m) { return WithBody(m, std::string(5000, 'x')); }},  // 413
      {"fcm", Channel::kAndroid, kFcmToken, "Hello", "World", true, true,
       [](const Message& m) { return WithBody(m, std::string(5000, 'x')); }},  // too big
      {"smtp", Channel::kEmail, "ada@example.com", "Hello", "World", true, false, nullptr},
      {"sendgrid", Channel::kEmail, "ada@example.com", "Hello", "World", true, true,
       [](const Message& m) { return WithBody(m, ""); }},  // no content
      {"twilio", Channel::kSms, "+15551234567", "", "Hello\nWorld", false, true,
       [](const Message& m) {
         Message out = WithBody(m, "");
         out.title.clear();
         return out;  // 21602: a body is required
       }},
      {"vonage", Channel::kSms, "+15551234567", "", "Hello\nWorld", true, true,
       [](const Message& m) {
         Message out = WithBody(m, "");
         out.title.clear();
         return out;  // status 2: missing text
       }},
  };
  return cases;
}

std::string NewP256KeyPem() {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

class ClientOutcomeTest : public SimClientTest, public ::testing::WithParamInterface<ProviderCase> {
 protected:
  const ProviderCase& P() const { return GetParam(); }
  Message Hello(std::string delivery_id = "del-1") const {
    return Msg(P().channel, P().address, "Hello", "World", std::move(delivery_id));
  }
  std::unique_ptr<Provider> Client() { return Make(Config(P().name)); }
};

TEST_P(ClientOutcomeTest, AcceptedMessageIsRecordedWithAddressTitleAndBody) {
  auto provider = Client();
  ASSERT_NE(provider, nullptr);
  SendResult r = SendOne(*provider, Hello());
  ASSERT_EQ(r.outcome, Outcome::kAccepted) << r.reason;
  EXPECT_EQ(r.provider, P().name);
  EXPECT_FALSE(r.provider_message_id.empty());
  json got = Messages(P().name, UrlEncode(P().address));
  ASSERT_EQ(got.size(), 1u) << got.dump();
  EXPECT_EQ(got[0]["title"], P().recorded_title);
  EXPECT_EQ(got[0]["body"], P().recorded_body);
  if (P().records_delivery_id) {
    const std::string id = got[0]["delivery_id"];
    EXPECT_TRUE(id == "del-1" || id == UuidFor("del-1")) << id;
  }
  if (P().name != "smtp") {  // SMTP's id is our Message-ID; the sim records its queue id
    EXPECT_NE(r.provider_message_id.find(got[0]["id"].get<std::string>()), std::string::npos)
        << r.provider_message_id << " vs " << got[0].dump();
  }
  EXPECT_EQ(Stats(P().name)["accepted"], 1);
}

TEST_P(ClientOutcomeTest, ABatchEndsWithOneResultPerMessageInOrder) {
  auto provider = Client();
  ASSERT_NE(provider, nullptr);
  PutFaults(P().name, {{"invalid_addresses", {P().address}}});
  std::vector<Message> batch;
  for (int i = 0; i < 5; ++i) {
    Message m = Hello("del-" + std::to_string(i));
    if (i != 2)
      m.address = P().name == "apns"             ? std::string(64, 'b')
                  : P().name == "fcm"            ? kFcmToken + "x"
                  : P().channel == Channel::kSms ? "+15557654321"
                                                 : "bob@example.com";
    batch.push_back(std::move(m));
  }
  auto results = SendBatch(*provider, std::move(batch));
  ASSERT_EQ(results.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(results[i].outcome, i == 2 ? Outcome::kInvalidAddress : Outcome::kAccepted)
        << i << ": " << results[i].reason;
  }
  EXPECT_EQ(Stats(P().name)["accepted"], 4);
}

TEST_P(ClientOutcomeTest, ServerErrorsAreRetry) {
  auto provider = Client();
  ASSERT_NE(provider, nullptr);
  PutFaults(P().name, {{"error_rate", 1.0}});
  SendResult r = SendOne(*provider, Hello());
  EXPECT_EQ(r.outcome, Outcome::kRetry) << r.reason;
  EXPECT_EQ(r.provider, P().name);
  if (P().name != "smtp" && P().name != "vonage") {
    EXPECT_EQ(r.http_status, 500);
  }
  if (P().name == "smtp") {
    EXPECT_EQ(r.http_status, 451);
  }
  PutFaults(P().name, {{"error_rate", 1.0}, {"status", P().name == "smtp" ? 421 : 503}});
  r = SendOne(*provider, Hello());
  EXPECT_EQ(r.outcome, Outcome::kRetry) << r.reason;
  EXPECT_EQ(Stats(P().name)["accepted"], 0);
}

TEST_P(ClientOutcomeTest, OutageIsRetry) {
  auto provider = Client();
  ASSERT_NE(provider, nullptr);
  PutFaults(P().name, {{"outage", true}});
  SendResult r = SendOne(*provider, Hello());
  EXPECT_EQ(r.outcome, Outcome::kRetry) << r.reason;
  EXPECT_EQ(Stats(P().name)["accepted"], 0);
}

TEST_P(ClientOutcomeTest, ThrottlingIsThrottledWithRetryAfter) {
  auto provider = Client();
  ASSERT_NE(provider, nullptr);
  PutFaults(P().name, {{"throttle_rate", 1.0}});
  SendResult r = SendOne(*provider, Hello());
  EXPECT_EQ(r.outcome, Outcome::kThrottled) << r.reason;
  if (P().throttle_has_retry_after) {
    EXPECT_EQ(r.retry_after_ms, 1000);
  }
  EXPECT_EQ(Stats(P().name)["accepted"], 0);
}

TEST_P(ClientOutcomeTest, UnknownAddressIsInvalidAddress) {
  auto provider = Client();
  ASSERT_NE(provider, nullptr);
  PutFaults(P().name, {{"invalid_addresses", {P().address}}});
  SendResult r = SendOne(*provider, Hello());
  EXPECT_EQ(r.outcome, Outcome::kInvalidAddress) << r.reason;
  EXPECT_EQ(Stats(P().name)["accepted"], 0);
}

TEST_P(ClientOutcomeTest, PermanentRefusalIsRejected) {
  auto provider = Client();
  ASSERT_NE(provider, nullptr);
  Message m = Hello();
  if (P().rejectable) {
    m = P().rejectable(m);
  } else {  // SMTP: a permanent 5xx at the end of DATA
    PutFaults(P().name, {{"error_rate", 1.0}, {"status", 554}});
  }
  SendResult r = SendOne(*provider, m);
  EXPECT_EQ(r.outcome, Outcome::kRejected) << r.reason;
  EXPECT_EQ(Stats(P().name)["accepted"], 0);
}

TEST_P(ClientOutcomeTest, RefusedCredentialsAreAuthError) {
  json config = Config(P().name);
  if (P().name == "apns") {
    // The simulator verifies the demo kid's signatures: a token signed with another key fails.
    config["private_key"] = NewP256KeyPem();
  } else {
    // The simulator takes any well-formed credentials for the other five; it refuses them on
    // demand, in each protocol's own shape (401 + Twilio 20003, Vonage status 4, SMTP 535 5.7.8).
    PutFaults(P().name, {{"error_rate", 1.0}, {"status", P().name == "smtp" ? 535 : 401}});
  }
  auto provider = Make(config);
  ASSERT_NE(provider, nullptr);
  SendResult r = SendOne(*provider, Hello());
  EXPECT_EQ(r.outcome, Outcome::kAuthError) << r.reason;
  if (P().name == "apns") {
    EXPECT_EQ(r.http_status, 403);
    EXPECT_EQ(r.reason, "InvalidProviderToken");
  }
  EXPECT_EQ(Stats(P().name)["accepted"], 0);
}

INSTANTIATE_TEST_SUITE_P(AllProviders, ClientOutcomeTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<ProviderCase>& info) {
                           return info.param.name;
                         });

// ---- protocol-specific paths ------------------------------------------------------------------

class ClientProtocolTest : public SimClientTest {};

TEST_F(ClientProtocolTest, ApnsCarriesTheDeliveryIdAsApnsIdAndCountsResendsAsDuplicates) {
  auto provider = Make(Config("apns"));
  ASSERT_NE(provider, nullptr);
  for (int i = 0; i < 2; ++i) {
    SendResult r = SendOne(*provider, Msg(Channel::kIos, kApnsToken, "Hello", "World", "d-7"));
    ASSERT_EQ(r.outcome, Outcome::kAccepted) << r.reason;
    EXPECT_EQ(r.provider_message_id, UuidFor("d-7"));
  }
  EXPECT_EQ(Stats("apns")["duplicates"], 1);
  EXPECT_EQ(Stats("apns")["unique_addresses"], 1);
}

// APNs refuses provider tokens older than an hour with 403 ExpiredProviderToken. The clock the
// client mints its token by says "70 minutes ago" on its first reading (the token's iat), then
// now + later_offset_ms from then on (a clock that was off and got corrected).
std::unique_ptr<Provider> ApnsWithClock(net::HttpClient* client, const json& config,
                                        UnixMillis later_offset_ms) {
  auto readings = std::make_shared<std::atomic<int>>(0);
  auto clock = [readings, later_offset_ms] {
    const UnixMillis now = NowMillis();
    return readings->fetch_add(1) == 0 ? now - 70 * 60 * 1000 : now + later_offset_ms;
  };
  auto p = MakeApns(config, client, clock);
  EXPECT_TRUE(p.ok());
  return p.ok() ? std::move(*p) : nullptr;
}

TEST_F(ClientProtocolTest, ApnsMintsANewTokenWhenApnsCallsItsTokenExpiredAndResends) {
  // 30 minutes behind later: the stale token is then 40 minutes old for the client, short of
  // its 50-minute refresh, so only APNs's answer can make it mint a new one.
  auto provider = ApnsWithClock(client_.get(), Config("apns"), -30 * 60 * 1000);
  ASSERT_NE(provider, nullptr);
  SendResult r = SendOne(*provider, Msg(Channel::kIos, kApnsToken, "Hello", "World", "d-exp"));
  EXPECT_EQ(r.outcome, Outcome::kAccepted) << r.reason;
  EXPECT_EQ(Stats("apns")["refused"], 1);  // the first try, with the stale token
  EXPECT_EQ(Stats("apns")["accepted"], 1);
  // The new token serves the next push at once.
  r = SendOne(*provider, Msg(Channel::kIos, kApnsToken, "Hello", "again", "d-exp-2"));
  EXPECT_EQ(r.outcome, Outcome::kAccepted) << r.reason;
  EXPECT_EQ(Stats("apns")["refused"], 1);
}

TEST_F(ClientProtocolTest, ApnsTriesOnlyOnceMoreWhenItsTokenStaysExpired) {
  // The clock stays 70 minutes behind: whatever token the client holds is stale, and the push
  // ends auth_error after one more try instead of looping.
  auto provider = ApnsWithClock(client_.get(), Config("apns"), -70 * 60 * 1000);
  ASSERT_NE(provider, nullptr);
  SendResult r = SendOne(*provider, Msg(Channel::kIos, kApnsToken, "Hello", "World", "d-exp"));
  EXPECT_EQ(r.outcome, Outcome::kAuthError);
  EXPECT_EQ(r.http_status, 403);
  EXPECT_EQ(r.reason, "ExpiredProviderToken");
  EXPECT_EQ(Stats("apns")["refused"], 2);
  EXPECT_EQ(Stats("apns")["accepted"], 0);
}

TEST_F(ClientProtocolTest, FcmFetchesOneAccessTokenForConcurrentMessages) {
  auto provider = Make(Config("fcm"));
  ASSERT_NE(provider, nullptr);
  std::vector<Message> batch;
  batch.reserve(50);
  for (int i = 0; i < 50; ++i) {
    batch.push_back(
        Msg(Channel::kAndroid, kFcmToken + std::to_string(i), "T", "B", "d" + std::to_string(i)));
  }
  for (const SendResult& r : SendBatch(*provider, std::move(batch))) {
    EXPECT_EQ(r.outcome, Outcome::kAccepted) << r.reason;
  }
  EXPECT_EQ(Stats("fcm")["accepted"], 50);
  EXPECT_EQ(Stats("fcm")["unique_addresses"], 50);
}

TEST_F(ClientProtocolTest, TimeoutAfterAcceptIsRetryThatMayDuplicate) {
  json config = Config("twilio");
  config["timeout_ms"] = 300;
  auto provider = Make(config);
  ASSERT_NE(provider, nullptr);
  PutFaults("twilio", {{"timeout_after_accept_rate", 1.0}});
  SendResult r = SendOne(*provider, Msg(Channel::kSms, "+15551234567", "", "Hi"));
  EXPECT_EQ(r.outcome, Outcome::kRetry);
  EXPECT_NE(r.reason.find("timeout"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("may have reached"), std::string::npos) << r.reason;
  EXPECT_EQ(Stats("twilio")["accepted"], 1);  // the simulator did take it
}

TEST_F(ClientProtocolTest, LatencyIsWaitedOutWithinTheTimeout) {
  PutFaults("sendgrid", {{"latency_ms", 200}});
  auto provider = Make(Config("sendgrid"));
  ASSERT_NE(provider, nullptr);
  auto start = std::chrono::steady_clock::now();
  SendResult r = SendOne(*provider, Msg(Channel::kEmail, "ada@example.com", "Hi", "There"));
  EXPECT_EQ(r.outcome, Outcome::kAccepted) << r.reason;
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(190));
}

}  // namespace
}  // namespace herald::providers::testing

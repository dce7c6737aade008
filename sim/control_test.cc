// The /sim/ control API: the record, its filters and limits, and clearing.
#include "sim/sim_test_support.h"

namespace herald::sim::testing {
namespace {

class ControlTest : public SimTest {
 protected:
  void Vonage(const std::string& to, const std::string& text) {
    CurlResult r = Http(
        "--data-urlencode api_key=k --data-urlencode api_secret=s --data-urlencode "
        "from=H --data-urlencode " +
            ShellQuote("text=" + text) + " --data-urlencode " + ShellQuote("to=" + to),
        "/sms/json");
    ASSERT_EQ(r.Json()["messages"][0]["status"], "0") << r.body;
  }
};

TEST_F(ControlTest, MessagesFilterByProviderAndAddressNewestLast) {
  Vonage("447700900001", "one");
  Vonage("447700900002", "two");
  Vonage("447700900001", "three");
  Es256Key key;
  ASSERT_EQ(ApnsPush(key.ApnsJwt("K", Now())).status, 200);

  json all = Messages();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0]["body"], "one");
  EXPECT_EQ(all[3]["provider"], "apns");
  for (const auto& m : all) {
    for (const char* field : {"provider", "address", "id", "title", "body", "received_at"}) {
      EXPECT_TRUE(m.contains(field)) << field;
    }
  }
  json vonage = Messages("?provider=vonage");
  EXPECT_EQ(vonage.size(), 3u);
  json one = Messages("?provider=vonage&address=%2B447700900001");  // '+' form matches too
  ASSERT_EQ(one.size(), 2u);
  EXPECT_EQ(one[0]["body"], "one");
  EXPECT_EQ(one[1]["body"], "three");
  json newest = Messages("?provider=vonage&limit=2");
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_EQ(newest[0]["body"], "two");
  EXPECT_EQ(newest[1]["body"], "three");
  EXPECT_TRUE(Messages("?address=nobody").empty());
  json vonage_stats = Stats()["vonage"];
  EXPECT_EQ(vonage_stats["accepted"], 3);
  EXPECT_EQ(vonage_stats["unique_addresses"], 2);
  EXPECT_EQ(vonage_stats["duplicates"], 0);  // no client-ref, nothing to count on
}

TEST_F(ControlTest, BadQueriesAreRefused) {
  for (const char* q : {"?limit=0", "?limit=10001", "?limit=abc", "?limit=-1"}) {
    EXPECT_EQ(Http("", std::string("/sim/messages") + q).status, 400) << q;
  }
  EXPECT_EQ(Http("", "/sim/messages?limit=10000").status, 200);
  EXPECT_EQ(Http("", "/sim/messages?provider=pigeon").status, 404);
  EXPECT_EQ(Http("-X POST", "/sim/stats").status, 405);
  EXPECT_EQ(Http("", "/sim/nothing").status, 404);
}

TEST_F(ControlTest, StatsListEveryProvider) {
  json stats = Stats();
  for (const char* p : {"apns", "fcm", "smtp", "sendgrid", "twilio", "vonage"}) {
    ASSERT_TRUE(stats.contains(p)) << p;
    for (const char* c : {"accepted", "refused", "unique_addresses", "duplicates"}) {
      EXPECT_EQ(stats[p][c], 0) << p << "." << c;
    }
  }
}

TEST_F(ControlTest, DeleteMessagesClearsTheRecordAndTheStats) {
  Vonage("447700900001", "one");
  ASSERT_EQ(Messages().size(), 1u);
  CurlResult r = H2("-X DELETE", "/sim/messages");  // the control API speaks h2c too
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.http_version, "2");
  EXPECT_TRUE(Messages().empty());
  EXPECT_EQ(Stats()["vonage"]["accepted"], 0);
  Vonage("447700900001", "again");
  EXPECT_EQ(Stats()["vonage"]["unique_addresses"], 1);
}

TEST_F(ControlTest, FaultsCanBeReadBackAndCleared) {
  PutFaults("smtp", {{"latency_ms", 5}, {"invalid_addresses", {"X@Example.com"}}});
  json faults = Http("", "/sim/faults").Json();
  EXPECT_EQ(faults["smtp"]["latency_ms"], 5);
  EXPECT_EQ(faults["smtp"]["invalid_addresses"][0], "x@example.com");
  EXPECT_EQ(faults["apns"]["latency_ms"], 0);
  EXPECT_EQ(Http("-X DELETE", "/sim/faults").status, 200);
  EXPECT_EQ(Http("", "/sim/faults/smtp").Json()["latency_ms"], 0);
}

}  // namespace
}  // namespace herald::sim::testing

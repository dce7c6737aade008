// Lifecycle and transport edges of the simulator as a whole.
#include <chrono>
#include <thread>

#include "sim/exchange.h"
#include "sim/sim_test_support.h"

namespace herald::sim::testing {
namespace {

class SimulatorTest : public SimTest {};

TEST_F(SimulatorTest, StartFailsWhenThePortIsTaken) {
  SimulatorOptions options;
  options.listen = "127.0.0.1:" + std::to_string(sim_->port());
  options.smtp_listen = "";
  auto second = MakeSimulator(options);
  Status s = second->Start();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().kind, ErrorKind::kUnavailable);
  EXPECT_EQ(s.error().code, "listen_failed");
  EXPECT_FALSE(MakeSimulator(SimulatorOptions{.listen = "nonsense"})->Start().ok());
}

TEST_F(SimulatorTest, ExposesItsCertificate) {
  EXPECT_NE(sim_->tls_port(), 0);
  EXPECT_NE(sim_->smtp_port(), 0);
  EXPECT_EQ(sim_->tls_cert_pem().rfind("-----BEGIN CERTIFICATE-----", 0), 0u);
  CommandResult r = RunCommand("openssl x509 -noout -text -in " + ca_file_);
  EXPECT_NE(r.output.find("prime256v1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("DNS:localhost, IP Address:127.0.0.1"), std::string::npos);
}

TEST_F(SimulatorTest, Http11LargeBodyIsAnsweredWithoutWaitingForExpectContinue) {
  Es256Key key;
  std::string big = R"({"aps":{"alert":")" + std::string(6000, 'x') + "\"}}";
  CurlResult r = Http("-H " + ShellQuote("authorization: bearer " + key.ApnsJwt("K", Now())) +
                          " -H 'apns-topic: t' " + Data(big),
                      "/3/device/" + kDeviceToken);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.http_version, "1.1");
  EXPECT_EQ(r.Json()["reason"], "PayloadTooLarge");
  EXPECT_LT(r.seconds, 0.9);  // curl waits 1 s for a 100 Continue that never comes
  std::string huge(kMaxBodyBytes + 10, 'x');
  EXPECT_EQ(H2(Data(huge), "/v3/mail/send").status, 413);
  EXPECT_EQ(Http(Data(huge), "/v3/mail/send").status, 413);
}

TEST_F(SimulatorTest, StopClosesConnectionsHeldByTimeoutAfterAccept) {
  PutFaults("apns", {{"timeout_after_accept_rate", 1.0}});
  Es256Key key;
  std::string jwt = key.ApnsJwt("K", Now());
  CurlResult held;
  std::thread client([&] { held = ApnsPush(jwt, "--max-time 20"); });
  // Wait until the simulator has the push (it is recorded before being held).
  for (int i = 0; i < 100 && Stats()["apns"]["accepted"] != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto start = std::chrono::steady_clock::now();
  sim_->Stop();
  client.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_NE(held.exit_code, 0);
  EXPECT_NE(held.exit_code, 28);  // not a client timeout: the server went away
  EXPECT_EQ(held.status, 0);
}

}  // namespace
}  // namespace herald::sim::testing

// Test-only (included by src/providers/*_test.cc): the provider clients against an in-process
// simulator (sim/simulator.h, port 0) through a real net::HttpClient. Provider settings start
// from SimProviderConfigs, so the demo credentials are exercised too.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "providers/provider.h"
#include "providers/sim_defaults.h"
#include "sim/simulator.h"

namespace herald::providers::testing {

using nlohmann::json;

inline const std::string kApnsToken(64, 'a');
inline const std::string kFcmToken = "fcm-registration:token_0123456789";

class SimClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sim::SimulatorOptions options;
    options.listen = "127.0.0.1:0";
    options.smtp_listen = "127.0.0.1:0";
    options.threads = 2;
    sim_ = sim::MakeSimulator(options);
    Status started = sim_->Start();
    ASSERT_TRUE(started.ok()) << started.error().message;
    base_ = "http://127.0.0.1:" + std::to_string(sim_->port());
    smtp_ = "127.0.0.1:" + std::to_string(sim_->smtp_port());
    client_ = net::MakeHttpClient();
    ASSERT_NE(client_, nullptr);
  }
  void TearDown() override {
    client_.reset();  // completes whatever is in flight before the simulator goes
    if (sim_) sim_->Stop();
  }

  // The simulator's default config of `provider` (the one SimProviderConfigs hands out).
  json Config(std::string_view provider) const {
    for (Channel c : kAllChannels) {
      for (const std::string& text : SimProviderConfigs(c, base_, smtp_)) {
        json config = json::parse(text);
        if (config["name"] == provider) return config;
      }
    }
    ADD_FAILURE() << "no simulator config for " << provider;
    return json::object();
  }
  std::unique_ptr<Provider> Make(const json& config) {
    auto p = MakeProvider(config.dump(), client_.get());
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
    return p.ok() ? std::move(*p) : nullptr;
  }

  static Message Msg(Channel channel, std::string address, std::string title, std::string body,
                     std::string delivery_id = "del-1") {
    Message m;
    m.delivery_id = std::move(delivery_id);
    m.tenant_id = "ten_test";
    m.channel = channel;
    m.address = std::move(address);
    m.title = std::move(title);
    m.body = std::move(body);
    m.deadline = NowMillis() + 10 * 60 * 1000;
    return m;
  }

  static std::vector<SendResult> SendBatch(Provider& p, std::vector<Message> batch) {
    std::promise<std::vector<SendResult>> done;
    auto f = done.get_future();
    p.Send(std::move(batch), [&done](std::vector<SendResult> r) { done.set_value(std::move(r)); });
    if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      ADD_FAILURE() << "no answer within 30 s";
      return {};
    }
    return f.get();
  }
  static SendResult SendOne(Provider& p, Message m) {
    std::vector<Message> batch;
    batch.push_back(std::move(m));
    auto results = SendBatch(p, std::move(batch));
    return results.size() == 1 ? results[0] : SendResult{};
  }

  // The simulator's control API, over h2c like the providers' requests (libcurl 7.88 must not mix
  // HTTP/1.1 and h2c requests to one origin: see net/curl_client.cc).
  net::HttpResponse Control(std::string method, const std::string& path, std::string body = {}) {
    net::HttpRequest req;
    req.method = std::move(method);
    req.url = base_ + path;
    req.h2c = true;
    req.body = std::move(body);
    if (!req.body.empty()) req.headers = {{"content-type", "application/json"}};
    return client_->Send(std::move(req)).get();
  }
  void PutFaults(const std::string& provider, const json& faults) {
    net::HttpResponse r = Control("PUT", "/sim/faults/" + provider, faults.dump());
    ASSERT_EQ(r.status, 200) << r.body;
  }
  void ClearFaults() { ASSERT_EQ(Control("DELETE", "/sim/faults").status, 200); }
  json Messages(const std::string& provider, const std::string& address = {}) {
    std::string query = "?provider=" + provider + "&limit=10000";
    if (!address.empty()) query += "&address=" + address;
    return json::parse(Control("GET", "/sim/messages" + query).body)["messages"];
  }
  json Stats(const std::string& provider) {
    return json::parse(Control("GET", "/sim/stats").body)["providers"][provider];
  }

  std::unique_ptr<sim::Simulator> sim_;
  std::string base_;
  std::string smtp_;
  std::unique_ptr<net::HttpClient> client_;
};

}  // namespace herald::providers::testing

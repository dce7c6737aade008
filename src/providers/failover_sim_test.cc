// The failover chain against the simulator: SimProviderConfigs' chains built with MakeProvider
// deliver on every channel, and a ProviderRouter over Twilio then Vonage moves every message to
// Vonage while Twilio is out, opens Twilio's breaker within a second, and closes it again through
// a half-open probe once Twilio is back.
#include "common/timer_queue.h"
#include "providers/provider_util.h"
#include "providers/router.h"
#include "providers/sim_fixture_test.h"

namespace herald::providers::testing {
namespace {

class SimDefaultsTest : public SimClientTest {};

std::string AddressFor(Channel c) {
  switch (c) {
    case Channel::kIos: return kApnsToken;
    case Channel::kAndroid: return kFcmToken;
    case Channel::kEmail: return "ada@example.com";
    case Channel::kSms: return "+15551234567";
  }
  return {};
}

TEST_F(SimDefaultsTest, ChainsNameTheProvidersInFailoverOrder) {
  auto names = [&](Channel c) {
    std::vector<std::string> out;
    for (const std::string& config : SimProviderConfigs(c, base_, smtp_)) {
      out.push_back(json::parse(config)["name"]);
    }
    return out;
  };
  EXPECT_EQ(names(Channel::kIos), std::vector<std::string>{"apns"});
  EXPECT_EQ(names(Channel::kAndroid), std::vector<std::string>{"fcm"});
  EXPECT_EQ(names(Channel::kEmail), (std::vector<std::string>{"smtp", "sendgrid"}));
  EXPECT_EQ(names(Channel::kSms), (std::vector<std::string>{"twilio", "vonage"}));
  // Without an SMTP port, e-mail goes to SendGrid alone.
  EXPECT_EQ(SimProviderConfigs(Channel::kEmail, base_, "").size(), 1u);
}

TEST_F(SimDefaultsTest, EveryDefaultProviderDeliversToTheSimulator) {
  for (Channel c : kAllChannels) {
    for (const std::string& config : SimProviderConfigs(c, base_ + "/", smtp_)) {
      const std::string name = json::parse(config)["name"];
      auto provider = MakeProvider(config, client_.get());
      ASSERT_TRUE(provider.ok()) << name << ": " << provider.error().message;
      EXPECT_EQ((*provider)->channel(), c);
      SendResult r = SendOne(**provider, Msg(c, AddressFor(c), "Hi", "from " + name, name));
      EXPECT_EQ(r.outcome, Outcome::kAccepted) << name << ": " << r.reason;
      json got = Messages(name, UrlEncode(AddressFor(c)));
      ASSERT_EQ(got.size(), 1u) << name;
      EXPECT_NE(got[0]["body"].get<std::string>().find("from " + name), std::string::npos);
    }
  }
}

// ---- failover -------------------------------------------------------------------------------

class SmsFailoverTest : public SimClientTest {
 protected:
  std::unique_ptr<ProviderRouter> Router() {
    std::vector<std::unique_ptr<Provider>> chain;
    for (const std::string& config : SimProviderConfigs(Channel::kSms, base_, smtp_)) {
      auto p = MakeProvider(config, client_.get());
      EXPECT_TRUE(p.ok());
      if (p.ok()) chain.push_back(std::move(*p));
    }
    return std::make_unique<ProviderRouter>(std::move(chain), &timers_);
  }
  static RouteOutcome Route(ProviderRouter& router, Message m) {
    std::promise<RouteOutcome> done;
    auto f = done.get_future();
    router.Send(std::move(m), [&done](RouteOutcome o) { done.set_value(std::move(o)); });
    if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      ADD_FAILURE() << "the router did not finish within 30 s";
      return {};
    }
    return f.get();
  }
  Message Sms(int i) {
    return Msg(Channel::kSms, "+1555000" + std::to_string(1000 + i), "", "msg " + std::to_string(i),
               "sms-" + std::to_string(i));
  }

  TimerQueue timers_;
};

TEST_F(SmsFailoverTest, HealthyPrimaryTakesEverything) {
  auto router = Router();
  for (int i = 0; i < 10; ++i) {
    RouteOutcome o = Route(*router, Sms(i));
    EXPECT_EQ(o.result.outcome, Outcome::kAccepted) << o.result.reason;
    EXPECT_EQ(o.result.provider, "twilio");
  }
  EXPECT_EQ(Stats("twilio")["accepted"], 10);
  EXPECT_EQ(Stats("vonage")["accepted"], 0);
}

TEST_F(SmsFailoverTest, PrimaryOutageFailsOverOpensTheBreakerAndRecovers) {
  auto router = Router();
  ASSERT_EQ(router->provider_name(0), "twilio");
  PutFaults("twilio", {{"outage", true}});
  const auto outage_start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration opened_after{};
  int sent = 0;
  // Messages at a steady pace until the breaker is open (it must be within a second), then a
  // few more that must skip Twilio altogether.
  int after_open = 0;
  while (after_open < 5) {
    RouteOutcome o = Route(*router, Sms(sent++));
    ASSERT_EQ(o.result.outcome, Outcome::kAccepted) << o.result.reason;
    EXPECT_EQ(o.result.provider, "vonage");
    if (router->breaker_state(0) == CircuitBreaker::State::kOpen) {
      if (after_open++ == 0) opened_after = std::chrono::steady_clock::now() - outage_start;
      if (after_open > 1) {
        EXPECT_EQ(o.attempts, 1) << "an open breaker still let a call through";
      }
    }
    ASSERT_LT(std::chrono::steady_clock::now() - outage_start, std::chrono::seconds(2))
        << "the breaker did not open";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_LT(opened_after, std::chrono::seconds(1));
  EXPECT_EQ(Stats("twilio")["accepted"], 0);
  EXPECT_EQ(Stats("vonage")["accepted"], sent);
  EXPECT_EQ(Messages("vonage").size(), static_cast<size_t>(sent));

  // Twilio comes back: once the cool-down ends, a half-open probe succeeds and closes the breaker.
  ClearFaults();
  const auto recovery_start = std::chrono::steady_clock::now();
  bool closed = false;
  int twilio_after = 0;
  while (std::chrono::steady_clock::now() - recovery_start < std::chrono::seconds(10)) {
    RouteOutcome o = Route(*router, Sms(sent++));
    ASSERT_EQ(o.result.outcome, Outcome::kAccepted) << o.result.reason;
    if (o.result.provider == "twilio") ++twilio_after;
    if (router->breaker_state(0) == CircuitBreaker::State::kClosed) {
      closed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(closed) << "the breaker did not close after recovery";
  EXPECT_EQ(twilio_after, 1);  // exactly the probe
  for (int i = 0; i < 5; ++i) {
    RouteOutcome o = Route(*router, Sms(sent++));
    EXPECT_EQ(o.result.provider, "twilio");
    EXPECT_EQ(o.attempts, 1);
  }
  EXPECT_EQ(Stats("twilio")["accepted"].get<int>() + Stats("vonage")["accepted"].get<int>(), sent);
  EXPECT_EQ(Stats("twilio")["duplicates"], 0);
  EXPECT_EQ(Stats("vonage")["duplicates"], 0);
}

}  // namespace
}  // namespace herald::providers::testing

#include "providers/router.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

namespace herald::providers {
namespace {

// A provider whose answer the test sets; answers synchronously on the caller's thread.
class ScriptedProvider final : public Provider {
 public:
  explicit ScriptedProvider(std::string name) : name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  Channel channel() const override { return Channel::kSms; }
  void Send(std::vector<Message> batch,
            std::function<void(std::vector<SendResult>)> done) override {
    std::vector<SendResult> out;
    for (auto& m : batch) {
      calls++;
      SendResult r;
      r.outcome = outcome.load();
      r.retry_after_ms = retry_after_ms;
      if (r.outcome == Outcome::kAccepted) r.provider_message_id = name_ + "-" + m.delivery_id;
      out.push_back(r);
    }
    done(std::move(out));
  }
  std::atomic<Outcome> outcome{Outcome::kAccepted};
  std::atomic<int> calls{0};
  int retry_after_ms = -1;

 private:
  std::string name_;
};

struct Chain {
  ScriptedProvider* primary;
  ScriptedProvider* secondary;
  std::unique_ptr<ProviderRouter> router;
};

Chain MakeChain(TimerQueue* timers, RouterOptions options = {}) {
  auto a = std::make_unique<ScriptedProvider>("twilio");
  auto b = std::make_unique<ScriptedProvider>("vonage");
  Chain c{a.get(), b.get(), nullptr};
  std::vector<std::unique_ptr<Provider>> list;
  list.push_back(std::move(a));
  list.push_back(std::move(b));
  c.router = std::make_unique<ProviderRouter>(std::move(list), timers, options);
  return c;
}

RouteOutcome SendAndWait(ProviderRouter& router, const std::string& id,
                         UnixMillis deadline = NowMillis() + 60'000) {
  std::promise<RouteOutcome> p;
  Message m;
  m.delivery_id = id;
  m.deadline = deadline;
  router.Send(m, [&p](RouteOutcome o) { p.set_value(std::move(o)); });
  return p.get_future().get();
}

TEST(ProviderRouter, AcceptedByThePrimaryNamesIt) {
  TimerQueue timers;
  auto c = MakeChain(&timers);
  auto o = SendAndWait(*c.router, "d1");
  EXPECT_EQ(o.result.outcome, Outcome::kAccepted);
  EXPECT_EQ(o.result.provider, "twilio");
  EXPECT_EQ(o.result.provider_message_id, "twilio-d1");
  EXPECT_EQ(o.attempts, 1);
}

TEST(ProviderRouter, PrimaryOutageFailsOverAndOpensItsBreaker) {
  TimerQueue timers;
  auto c = MakeChain(&timers);
  c.primary->outcome = Outcome::kRetry;
  for (int i = 0; i < 100; ++i) {
    auto o = SendAndWait(*c.router, "d" + std::to_string(i));
    ASSERT_EQ(o.result.outcome, Outcome::kAccepted);
    EXPECT_EQ(o.result.provider, "vonage");
  }
  EXPECT_EQ(c.secondary->calls, 100);
  EXPECT_EQ(c.router->breaker_state(0), CircuitBreaker::State::kOpen);
  EXPECT_LE(c.primary->calls, 5) << "the open breaker keeps traffic off the primary";
}

TEST(ProviderRouter, BreakerClosesAfterRecovery) {
  TimerQueue timers;
  RouterOptions options;
  options.breaker.open_ms = 100;
  auto c = MakeChain(&timers, options);
  c.primary->outcome = Outcome::kRetry;
  for (int i = 0; i < 10; ++i) SendAndWait(*c.router, "a" + std::to_string(i));
  ASSERT_EQ(c.router->breaker_state(0), CircuitBreaker::State::kOpen);
  c.primary->outcome = Outcome::kAccepted;
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  auto o = SendAndWait(*c.router, "probe");
  EXPECT_EQ(o.result.provider, "twilio") << "the half-open probe goes to the primary";
  EXPECT_EQ(c.router->breaker_state(0), CircuitBreaker::State::kClosed);
}

TEST(ProviderRouter, PermanentAnswersDoNotFailOver) {
  TimerQueue timers;
  auto c = MakeChain(&timers);
  c.primary->outcome = Outcome::kInvalidAddress;
  auto o = SendAndWait(*c.router, "d");
  EXPECT_EQ(o.result.outcome, Outcome::kInvalidAddress);
  EXPECT_EQ(c.secondary->calls, 0);
  c.primary->outcome = Outcome::kRejected;
  EXPECT_EQ(SendAndWait(*c.router, "e").result.outcome, Outcome::kRejected);
  EXPECT_EQ(c.secondary->calls, 0);
}

TEST(ProviderRouter, AllDownRetriesHonouringRetryAfterUntilRecovery) {
  TimerQueue timers;
  auto c = MakeChain(&timers);
  c.primary->outcome = Outcome::kThrottled;
  c.primary->retry_after_ms = 50;
  c.secondary->outcome = Outcome::kRetry;
  std::promise<RouteOutcome> p;
  Message m;
  m.delivery_id = "d";
  m.deadline = NowMillis() + 10'000;
  const UnixMillis start = NowMillis();
  c.router->Send(m, [&p](RouteOutcome o) { p.set_value(std::move(o)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  c.secondary->outcome = Outcome::kAccepted;
  auto o = p.get_future().get();
  EXPECT_EQ(o.result.outcome, Outcome::kAccepted);
  EXPECT_EQ(o.result.provider, "vonage");
  EXPECT_GE(NowMillis() - start, 50) << "Retry-After was honoured";
  EXPECT_GE(o.attempts, 3);
}

TEST(ProviderRouter, NeverRetriesPastTheDeadline) {
  TimerQueue timers;
  auto c = MakeChain(&timers);
  c.primary->outcome = Outcome::kRetry;
  c.secondary->outcome = Outcome::kRetry;
  c.primary->retry_after_ms = 5'000;
  auto o = SendAndWait(*c.router, "d", NowMillis() + 1'000);
  EXPECT_TRUE(o.expired);
  EXPECT_EQ(o.result.outcome, Outcome::kRetry);
  EXPECT_EQ(o.attempts, 2) << "one round, then the deadline left no time";
}

TEST(RetryPolicy, FullJitterStaysUnderTheCeilingAndTheDeadline) {
  RetryPolicy policy({.base_ms = 100, .cap_ms = 1000});
  const UnixMillis now = 1'000'000;
  for (int attempt = 1; attempt < 12; ++attempt) {
    for (int i = 0; i < 50; ++i) {
      auto at = policy.NextAttempt(attempt, -1, now, now + 100'000);
      ASSERT_TRUE(at.has_value());
      EXPECT_LE(*at - now, std::min<int64_t>(1000, int64_t{100} << (attempt - 1)));
      EXPECT_GE(*at, now);
    }
  }
  EXPECT_EQ(*policy.NextAttempt(1, 700, now, now + 1000), now + 700);
  EXPECT_FALSE(policy.NextAttempt(1, 2000, now, now + 1000).has_value());
}

}  // namespace
}  // namespace herald::providers

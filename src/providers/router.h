// ProviderRouter: the failover chain of one tenant's channel. A message goes to the first
// provider whose circuit breaker allows it; a transient answer (retry, throttled, auth error)
// moves it to the next provider at once; when every provider failed transiently, the retry
// policy schedules another round (Retry-After honoured, never past the deadline). Permanent
// answers (accepted, invalid address, rejected) end it. Every outcome names the provider.
//
// Thread-safety: Send from any thread; `done` runs exactly once, on a provider's completion
// thread or the timer thread — quick and non-blocking. The providers, the timer queue and the
// router must outlive every Send in flight.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/timer_queue.h"
#include "providers/circuit_breaker.h"
#include "providers/provider.h"
#include "providers/retry_policy.h"

namespace herald::providers {

struct RouterOptions {
  BreakerOptions breaker;
  RetryOptions retry;
  int max_rounds = 50;  // rounds over the whole chain, a guard besides the deadline
};

struct RouteOutcome {
  SendResult result;              // the final answer (its provider names who gave it)
  int attempts = 0;               // provider calls made
  bool expired = false;           // gave up because the deadline left no time for another round
  std::vector<SendResult> trail;  // every answer on the way, in order
};

class ProviderRouter {
 public:
  ProviderRouter(std::vector<std::unique_ptr<Provider>> chain, TimerQueue* timers,
                 RouterOptions options = {});

  void Send(Message message, std::function<void(RouteOutcome)> done);

  size_t size() const { return chain_.size(); }
  std::string_view provider_name(size_t i) const { return chain_[i].provider->name(); }
  CircuitBreaker::State breaker_state(size_t i) const;

 private:
  struct Link {
    std::unique_ptr<Provider> provider;
    std::unique_ptr<CircuitBreaker> breaker;
  };
  struct Attempt;
  void Try(std::shared_ptr<Attempt> a, size_t index);
  void EndRound(std::shared_ptr<Attempt> a);

  std::vector<Link> chain_;
  TimerQueue* timers_;
  RouterOptions options_;
  RetryPolicy retry_;
};

// True for the outcomes that end a delivery at a provider (no failover, no retry).
bool IsFinal(Outcome o);

}  // namespace herald::providers

#include "providers/router.h"

namespace herald::providers {

std::string_view ToString(Outcome o) {
  switch (o) {
    case Outcome::kAccepted: return "accepted";
    case Outcome::kRetry: return "retry";
    case Outcome::kThrottled: return "throttled";
    case Outcome::kInvalidAddress: return "invalid_address";
    case Outcome::kRejected: return "rejected";
    case Outcome::kAuthError: return "auth_error";
  }
  return "retry";
}

bool IsFinal(Outcome o) {
  return o == Outcome::kAccepted || o == Outcome::kInvalidAddress || o == Outcome::kRejected;
}

struct ProviderRouter::Attempt {
  Message message;
  std::function<void(RouteOutcome)> done;
  RouteOutcome outcome;
  int round = 0;
  int retry_after_ms = -1;  // the largest Retry-After seen this round
  bool any_allowed = false;
};

ProviderRouter::ProviderRouter(std::vector<std::unique_ptr<Provider>> chain, TimerQueue* timers,
                               RouterOptions options)
    : timers_(timers), options_(options), retry_(options.retry) {
  for (auto& p : chain) {
    chain_.push_back(Link{std::move(p), std::make_unique<CircuitBreaker>(options.breaker)});
  }
}

CircuitBreaker::State ProviderRouter::breaker_state(size_t i) const {
  return chain_[i].breaker->state(NowMillis());
}

void ProviderRouter::Send(Message message, std::function<void(RouteOutcome)> done) {
  auto a = std::make_shared<Attempt>();
  a->message = std::move(message);
  a->done = std::move(done);
  if (chain_.empty()) {
    a->outcome.result.outcome = Outcome::kRejected;
    a->outcome.result.reason = "no provider is configured for this channel";
    a->done(std::move(a->outcome));
    return;
  }
  Try(std::move(a), 0);
}

void ProviderRouter::Try(std::shared_ptr<Attempt> a, size_t index) {
  for (; index < chain_.size(); ++index) {
    Link& link = chain_[index];
    if (!link.breaker->Allow(NowMillis())) continue;
    a->any_allowed = true;
    ++a->outcome.attempts;
    std::vector<Message> batch{a->message};
    link.provider->Send(std::move(batch), [this, a, index](std::vector<SendResult> results) {
      SendResult r = results.empty() ? SendResult{} : std::move(results.front());
      if (r.provider.empty()) r.provider = std::string(chain_[index].provider->name());
      // A provider that answers at all is healthy unless the answer says it is not.
      const bool healthy = r.outcome != Outcome::kRetry && r.outcome != Outcome::kAuthError &&
                           r.outcome != Outcome::kThrottled;
      chain_[index].breaker->Record(healthy, NowMillis());
      a->outcome.trail.push_back(r);
      if (IsFinal(r.outcome)) {
        a->outcome.result = std::move(r);
        a->done(std::move(a->outcome));
        return;
      }
      a->retry_after_ms = std::max(a->retry_after_ms, r.retry_after_ms);
      a->outcome.result = std::move(r);
      Try(a, index + 1);
    });
    return;
  }
  EndRound(std::move(a));
}

void ProviderRouter::EndRound(std::shared_ptr<Attempt> a) {
  ++a->round;
  const UnixMillis now = NowMillis();
  if (!a->any_allowed && a->outcome.trail.empty()) {
    a->outcome.result.outcome = Outcome::kRetry;
    a->outcome.result.reason = "every provider's circuit breaker is open";
  }
  std::optional<UnixMillis> next;
  if (a->round < options_.max_rounds) {
    int wait = a->retry_after_ms;
    if (!a->any_allowed) wait = std::max(wait, options_.breaker.open_ms / 2);
    next = retry_.NextAttempt(a->round, wait, now, a->message.deadline);
  }
  if (!next) {
    a->outcome.expired = a->round < options_.max_rounds;
    a->done(std::move(a->outcome));
    return;
  }
  a->retry_after_ms = -1;
  a->any_allowed = false;
  timers_->At(*next, [this, a]() mutable { Try(std::move(a), 0); });
}

}  // namespace herald::providers

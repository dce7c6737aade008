#include "providers/circuit_breaker.h"

#include <algorithm>

namespace herald::providers {

CircuitBreaker::CircuitBreaker(BreakerOptions options)
    : options_(options),
      buckets_(static_cast<size_t>(std::max(1, options.buckets))),
      current_open_ms_(options.open_ms) {}

std::string_view CircuitBreaker::ToString(State s) {
  switch (s) {
    case State::kClosed: return "closed";
    case State::kOpen: return "open";
    case State::kHalfOpen: return "half_open";
  }
  return "closed";
}

bool CircuitBreaker::Allow(UnixMillis now) {
  std::lock_guard lock(mu_);
  if (state_ == State::kOpen && now >= open_until_) {
    state_ = State::kHalfOpen;
    probes_left_ = options_.half_open_probes;
  }
  switch (state_) {
    case State::kClosed: return true;
    case State::kOpen: return false;
    case State::kHalfOpen:
      if (probes_left_ <= 0) return false;
      --probes_left_;
      return true;
  }
  return true;
}

void CircuitBreaker::Record(bool success, UnixMillis now) {
  std::lock_guard lock(mu_);
  if (state_ == State::kHalfOpen) {
    if (success) {
      Close();
    } else {
      current_open_ms_ = std::min(current_open_ms_ * 2, options_.max_open_ms);
      Open(now);
    }
    return;
  }
  if (state_ == State::kOpen) return;  // a late answer from before the breaker opened
  const int64_t width = std::max(1, options_.window_ms / static_cast<int>(buckets_.size()));
  const int64_t slot = now / width;
  Bucket& b = buckets_[static_cast<size_t>(slot % static_cast<int64_t>(buckets_.size()))];
  if (b.slot != slot) b = Bucket{slot, 0, 0};
  ++b.calls;
  if (!success) ++b.failures;
  int calls = 0;
  int failures = 0;
  const int64_t oldest = slot - static_cast<int64_t>(buckets_.size()) + 1;
  for (const Bucket& x : buckets_) {
    if (x.slot >= oldest) {
      calls += x.calls;
      failures += x.failures;
    }
  }
  if (calls >= options_.min_calls &&
      static_cast<double>(failures) >= options_.failure_ratio * static_cast<double>(calls)) {
    Open(now);
  }
}

CircuitBreaker::State CircuitBreaker::state(UnixMillis now) {
  std::lock_guard lock(mu_);
  if (state_ == State::kOpen && now >= open_until_) return State::kHalfOpen;
  return state_;
}

void CircuitBreaker::Open(UnixMillis now) {
  state_ = State::kOpen;
  open_until_ = now + current_open_ms_;
  probes_left_ = 0;
}

void CircuitBreaker::Close() {
  state_ = State::kClosed;
  current_open_ms_ = options_.open_ms;
  for (Bucket& b : buckets_) b = Bucket{};
}

}  // namespace herald::providers

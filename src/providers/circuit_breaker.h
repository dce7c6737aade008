// A circuit breaker for one provider: closed → open when the failure rate over a sliding time
// window crosses a threshold (with a minimum number of calls), open → half-open after a
// cool-down that grows while the provider stays down, half-open lets a few probes through and
// closes on their success or opens again on a failure.
//
// Thread-safety: every method may be called from any thread (one small mutex).
#pragma once

#include <cstdint>
#include <mutex>
#include <string_view>
#include <vector>

#include "common/clock.h"

namespace herald::providers {

struct BreakerOptions {
  int window_ms = 1000;        // the sliding window the failure rate is measured over
  int buckets = 10;            // window granularity
  int min_calls = 5;           // fewer calls than this in the window never open the breaker
  double failure_ratio = 0.5;  // open at or above this failure rate
  int open_ms = 500;           // first cool-down; doubles on each failed probe
  int max_open_ms = 30'000;
  int half_open_probes = 1;  // calls let through while half-open
};

class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };

  explicit CircuitBreaker(BreakerOptions options = {});

  // May a call go to the provider now? In half-open, each true answer takes a probe slot.
  bool Allow(UnixMillis now);
  // The result of a call that was allowed.
  void Record(bool success, UnixMillis now);
  State state(UnixMillis now);
  static std::string_view ToString(State s);

 private:
  struct Bucket {
    int64_t slot = -1;  // which window slot this bucket counts for
    int calls = 0;
    int failures = 0;
  };
  void Open(UnixMillis now);
  void Close();

  BreakerOptions options_;
  std::mutex mu_;
  State state_ = State::kClosed;
  std::vector<Bucket> buckets_;
  UnixMillis open_until_ = 0;
  int current_open_ms_;
  int probes_left_ = 0;
};

}  // namespace herald::providers

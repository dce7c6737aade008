// When to try a failed delivery again: Retry-After first, otherwise exponential backoff with
// full jitter (sleep = random(0, min(cap, base * 2^attempt))), and never past the deadline.
// Thread-safe (the random source is thread-local).
#pragma once

#include <cstdint>
#include <optional>

#include "common/clock.h"

namespace herald::providers {

struct RetryOptions {
  int base_ms = 200;
  int cap_ms = 60'000;
};

class RetryPolicy {
 public:
  explicit RetryPolicy(RetryOptions options = {}) : options_(options) {}
  // The time of the next attempt after `attempt` failed attempts (1 = the first failed), or
  // nullopt when that time would not leave the attempt before `deadline`.
  std::optional<UnixMillis> NextAttempt(int attempt, int retry_after_ms, UnixMillis now,
                                        UnixMillis deadline) const;

 private:
  RetryOptions options_;
};

}  // namespace herald::providers

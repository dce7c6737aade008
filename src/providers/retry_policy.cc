#include "providers/retry_policy.h"

#include <algorithm>
#include <random>

namespace herald::providers {

std::optional<UnixMillis> RetryPolicy::NextAttempt(int attempt, int retry_after_ms, UnixMillis now,
                                                   UnixMillis deadline) const {
  int64_t delay = 0;
  if (retry_after_ms >= 0) {
    delay = retry_after_ms;
  } else {
    const int shift = std::clamp(attempt - 1, 0, 30);
    const int64_t ceiling =
        std::min<int64_t>(options_.cap_ms, static_cast<int64_t>(options_.base_ms) << shift);
    thread_local std::mt19937_64 rng{std::random_device{}()};
    delay = std::uniform_int_distribution<int64_t>(0, std::max<int64_t>(ceiling, 0))(rng);
  }
  const UnixMillis at = now + delay;
  if (at >= deadline) return std::nullopt;
  return at;
}

}  // namespace herald::providers

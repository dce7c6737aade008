#include "pipeline/concurrency_limit.h"

#include <algorithm>
#include <cmath>

namespace herald {

ConcurrencyLimit::ConcurrencyLimit(ConcurrencyLimitOptions options)
    : options_(options), limit_(static_cast<double>(options.initial)) {
  floor_ms_.fill(-1);
}

size_t ConcurrencyLimit::limit() const {
  std::lock_guard lock(mu_);
  return static_cast<size_t>(limit_);
}

void ConcurrencyLimit::OnSample(Channel channel, double latency_ms, size_t in_flight) {
  std::lock_guard lock(mu_);
  double& floor = floor_ms_[static_cast<size_t>(channel)];
  if (floor < 0 || latency_ms < floor) floor = latency_ms;
  // 1 while latency is within the tolerance of its floor, falling towards 0.5 as it rises.
  const double allowed = floor * options_.tolerance + options_.slack_ms;
  gradient_sum_ += std::clamp(allowed / std::max(latency_ms, 1e-3), 0.5, 1.0);
  if (static_cast<double>(in_flight) >= limit_ * 0.5) ++busy_samples_;
  if (++samples_ < options_.window) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - window_start_ < std::chrono::milliseconds(options_.window_ms)) return;

  const double gradient = gradient_sum_ / static_cast<double>(samples_);
  double next = limit_ * gradient;
  // Grow only when the limit was actually in use: an idle sender learns nothing about capacity.
  if (gradient >= 0.95 && busy_samples_ * 2 >= samples_) next += std::sqrt(limit_) + 1;
  limit_ = std::clamp(next, static_cast<double>(options_.min), static_cast<double>(options_.max));
  const double drift = std::pow(options_.floor_drift_per_s,
                                std::chrono::duration<double>(now - window_start_).count());
  window_start_ = now;
  for (double& f : floor_ms_) {
    if (f >= 0) f *= drift;
  }
  samples_ = 0;
  gradient_sum_ = 0;
  busy_samples_ = 0;
}

}  // namespace herald

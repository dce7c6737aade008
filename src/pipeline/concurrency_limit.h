// An adaptive limit on provider sends in flight (a gradient limiter, after TCP Vegas and Netflix's
// concurrency-limits): the limit grows while send latency stays near its floor and shrinks when
// latency rises above it, which means requests are queueing somewhere (our HTTP client, the
// network, the provider). The point is to keep just enough sends in flight for the throughput
// the path can give: a fixed limit is either too low for a slow provider (100 ms round trips want
// thousands in flight) or, against a fast one, lets queues build that add latency and — since a
// send the provider took but whose answer we have not recorded is sent again after a crash —
// raise the duplicates a crash can cause.
//
// Latency floors are kept per channel (APNs and SMTP answer at very different speeds); the
// limit is one, over all sends. Thread-safe.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <mutex>

#include "model/model.h"

namespace herald {

struct ConcurrencyLimitOptions {
  size_t initial = 64;
  size_t min = 8;
  size_t max = 4096;
  size_t window = 64;       // samples per adjustment, at least
  int window_ms = 20;       // and at least this long, so that the limit moves at a human pace
  double tolerance = 1.25;  // latency up to tolerance × floor (+ slack) counts as unqueued
  double slack_ms = 1.0;    // absolute allowance, so loopback jitter is not taken for queueing
  // The floors rise by this factor per second and are learnt again from the fastest sends, so a
  // provider that became slower for good is not taken for a queue forever.
  double floor_drift_per_s = 1.1;
};

class ConcurrencyLimit {
 public:
  explicit ConcurrencyLimit(ConcurrencyLimitOptions options = {});

  size_t limit() const;
  // One completed send: its latency and how many sends were in flight when it started.
  void OnSample(Channel channel, double latency_ms, size_t in_flight);

 private:
  const ConcurrencyLimitOptions options_;
  mutable std::mutex mu_;
  double limit_;
  std::array<double, 4> floor_ms_;  // per channel; < 0 = none yet
  size_t samples_ = 0;
  double gradient_sum_ = 0;
  size_t busy_samples_ = 0;  // samples sent while in flight was near the limit
  std::chrono::steady_clock::time_point window_start_ = std::chrono::steady_clock::now();
};

}  // namespace herald

#include "pipeline/concurrency_limit.h"

#include <gtest/gtest.h>

namespace herald {
namespace {

ConcurrencyLimitOptions Options() {
  ConcurrencyLimitOptions o;
  o.initial = 64;
  o.min = 8;
  o.max = 1000;
  o.window = 10;
  o.floor_drift_per_s = 1.0;  // no drift: the tests run faster than any drift would matter
  o.window_ms = 0;            // windows by samples alone: the tests feed them at once
  return o;
}

// `windows` windows of samples at `latency_ms` with `in_flight` sends outstanding.
void Feed(ConcurrencyLimit& limit, int windows, double latency_ms, size_t in_flight,
          Channel channel = Channel::kIos) {
  for (int i = 0; i < windows * 10; ++i) limit.OnSample(channel, latency_ms, in_flight);
}

TEST(ConcurrencyLimitTest, GrowsWhileLatencyStaysAtItsFloorAndTheLimitIsUsed) {
  ConcurrencyLimit limit(Options());
  Feed(limit, 20, 5.0, 1000);
  EXPECT_GT(limit.limit(), 64u * 2);
}

TEST(ConcurrencyLimitTest, DoesNotGrowWhenTheSenderIsIdle) {
  ConcurrencyLimit limit(Options());
  Feed(limit, 20, 5.0, 2);  // far below the limit: nothing learnt about capacity
  EXPECT_EQ(limit.limit(), 64u);
}

TEST(ConcurrencyLimitTest, ShrinksWhenLatencyRisesAboveItsFloor) {
  ConcurrencyLimit limit(Options());
  Feed(limit, 20, 5.0, 1000);
  const size_t grown = limit.limit();
  Feed(limit, 5, 60.0, 1000);  // requests queue: 12 times the floor
  EXPECT_LT(limit.limit(), grown / 4);
  Feed(limit, 50, 60.0, 1000);
  EXPECT_EQ(limit.limit(), 8u);  // never below the minimum
}

TEST(ConcurrencyLimitTest, FloorsArePerChannel) {
  ConcurrencyLimit limit(Options());
  // SMTP answers in 400 ms, APNs in 5 ms: both at their own floor, so no queueing is seen.
  for (int i = 0; i < 200; ++i) {
    limit.OnSample(Channel::kIos, 5.0, 1000);
    limit.OnSample(Channel::kEmail, 400.0, 1000);
  }
  EXPECT_GT(limit.limit(), 64u * 2);
}

TEST(ConcurrencyLimitTest, StaysWithinItsMaximum) {
  ConcurrencyLimit limit(Options());
  Feed(limit, 2000, 5.0, 100000);
  EXPECT_EQ(limit.limit(), 1000u);
}

}  // namespace
}  // namespace herald

#include "observe/metrics.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>

namespace herald::observe {
namespace {

bool Contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST(HistogramTest, CountsAreCumulativeWithInfLast) {
  Histogram h({0.1, 1, 10});
  h.Observe(0.05);
  h.Observe(0.1);  // on a bound: counted in that bucket (le means <=)
  h.Observe(5);
  h.Observe(50);
  EXPECT_EQ(h.CumulativeCounts(), (std::vector<uint64_t>{2, 2, 3, 4}));
  EXPECT_EQ(h.Count(), 4u);
  EXPECT_NEAR(h.Sum(), 55.15, 1e-6);
}

TEST(HistogramTest, BoundsAreSortedAndDeduplicated) {
  Histogram h({5, 1, 5, 2});
  EXPECT_EQ(h.bounds(), (std::vector<double>{1, 2, 5}));
  EXPECT_EQ(h.CumulativeCounts().size(), 4u);
}

TEST(HistogramTest, SumKeepsMicrosecondPrecision) {
  Histogram h(LatencyBuckets());
  for (int i = 0; i < 1000; ++i) h.Observe(0.000123);
  EXPECT_NEAR(h.Sum(), 0.123, 1e-9);
}

TEST(HistogramTest, ConcurrentObservationsAreAllCounted) {
  Histogram h(LatencyBuckets());
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h] {
      for (int i = 0; i < 10000; ++i) h.Observe(0.002);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.Count(), 40000u);
  EXPECT_EQ(h.CumulativeCounts().back(), 40000u);
  EXPECT_NEAR(h.Sum(), 80.0, 1e-6);
}

TEST(RegistryTest, BucketBoundsAreWrittenAsPlainDecimals) {
  Registry r;
  r.GetHistogram("herald_small", "S.", LatencyBuckets()).Observe(0.0002);
  const std::string text = r.Render();
  EXPECT_TRUE(Contains(text, "herald_small_bucket{le=\"0.0001\"} 0\n"));
  EXPECT_TRUE(Contains(text, "herald_small_bucket{le=\"0.00025\"} 1\n"));
  EXPECT_TRUE(Contains(text, "herald_small_bucket{le=\"10\"} 1\n"));
  EXPECT_TRUE(Contains(text, "herald_small_sum 0.0002\n"));
}

TEST(LatencyBucketsTest, SpanHundredMicrosecondsToTenSeconds) {
  const std::vector<double> b = LatencyBuckets();
  ASSERT_EQ(b.size(), 16u);
  EXPECT_DOUBLE_EQ(b.front(), 0.0001);
  EXPECT_DOUBLE_EQ(b.back(), 10);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
}

TEST(RegistryTest, SameNameAndLabelsReturnTheSameMetric) {
  Registry r;
  Counter& a = r.GetCounter("herald_sends_total", "Sends.", {{"channel", "sms"}});
  Counter& b = r.GetCounter("herald_sends_total", "Sends.", {{"channel", "sms"}});
  Counter& c = r.GetCounter("herald_sends_total", "Sends.", {{"channel", "email"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  a.Inc();
  b.Inc(2);
  EXPECT_EQ(a.Value(), 3u);
  EXPECT_EQ(c.Value(), 0u);
}

TEST(RegistryTest, OneNameHoldsOneType) {
  Registry r;
  r.GetCounter("herald_x", "X.");
  EXPECT_THROW(r.GetGauge("herald_x", "X."), std::logic_error);
  EXPECT_THROW(r.GetHistogram("herald_x", "X.", LatencyBuckets()), std::logic_error);
}

TEST(RegistryTest, RendersCountersAndGaugesWithHelpAndType) {
  Registry r;
  r.GetCounter("herald_requests_total", "HTTP requests.", {{"route", "/v1/users"}, {"code", "200"}})
      .Inc(7);
  r.GetGauge("herald_queue_depth", "Jobs waiting.").Set(-3);
  const std::string text = r.Render();
  EXPECT_TRUE(Contains(text, "# HELP herald_requests_total HTTP requests.\n"));
  EXPECT_TRUE(Contains(text, "# TYPE herald_requests_total counter\n"));
  EXPECT_TRUE(Contains(text, "herald_requests_total{route=\"/v1/users\",code=\"200\"} 7\n"));
  EXPECT_TRUE(Contains(text, "# TYPE herald_queue_depth gauge\n"));
  EXPECT_TRUE(Contains(text, "herald_queue_depth -3\n"));
  // Families come out in name order, HELP before TYPE before samples.
  EXPECT_LT(text.find("herald_queue_depth"), text.find("herald_requests_total"));
  EXPECT_LT(text.find("# HELP herald_queue_depth"), text.find("# TYPE herald_queue_depth"));
}

TEST(RegistryTest, EscapesLabelValuesAndHelp) {
  Registry r;
  r.GetCounter("herald_e_total", "Line one\nback\\slash", {{"v", "a\"b\\c\nd"}}).Inc();
  const std::string text = r.Render();
  EXPECT_TRUE(Contains(text, "# HELP herald_e_total Line one\\nback\\\\slash\n"));
  EXPECT_TRUE(Contains(text, "herald_e_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
}

TEST(RegistryTest, RendersHistogramBucketsSumAndCount) {
  Registry r;
  Histogram& h =
      r.GetHistogram("herald_latency_seconds", "Latency.", {0.005, 0.5, 2.5}, {{"channel", "ios"}});
  h.Observe(0.001);
  h.Observe(0.2);
  h.Observe(0.3);
  h.Observe(7);
  const std::string text = r.Render();
  EXPECT_TRUE(Contains(text, "# TYPE herald_latency_seconds histogram\n"));
  EXPECT_TRUE(Contains(text, "herald_latency_seconds_bucket{channel=\"ios\",le=\"0.005\"} 1\n"));
  EXPECT_TRUE(Contains(text, "herald_latency_seconds_bucket{channel=\"ios\",le=\"0.5\"} 3\n"));
  EXPECT_TRUE(Contains(text, "herald_latency_seconds_bucket{channel=\"ios\",le=\"2.5\"} 3\n"));
  EXPECT_TRUE(Contains(text, "herald_latency_seconds_bucket{channel=\"ios\",le=\"+Inf\"} 4\n"));
  EXPECT_TRUE(Contains(text, "herald_latency_seconds_sum{channel=\"ios\"} 7.501\n"));
  EXPECT_TRUE(Contains(text, "herald_latency_seconds_count{channel=\"ios\"} 4\n"));
}

TEST(RegistryTest, UnlabelledHistogramGetsOnlyTheLeLabel) {
  Registry r;
  r.GetHistogram("herald_h", "H.", {1}).Observe(0.5);
  const std::string text = r.Render();
  EXPECT_TRUE(Contains(text, "herald_h_bucket{le=\"1\"} 1\n"));
  EXPECT_TRUE(Contains(text, "herald_h_bucket{le=\"+Inf\"} 1\n"));
  EXPECT_TRUE(Contains(text, "herald_h_sum 0.5\n"));
  EXPECT_TRUE(Contains(text, "herald_h_count 1\n"));
}

TEST(RegistryTest, EmptyRegistryRendersNothing) { EXPECT_EQ(Registry().Render(), ""); }

}  // namespace
}  // namespace herald::observe

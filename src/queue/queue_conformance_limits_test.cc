// The Queue conformance suite (see queue_conformance_test.cc): in-flight limits per tenant and
// per channel, and fairness between tenants (DESIGN §4.7: one tenant's flood cannot starve
// another tenant's earlier deadline).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "queue/queue_conformance.h"

namespace herald::queue_test {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST_P(QueueConformanceTest, TenantAtItsLimitIsPassedOver) {
  QueueOptions o;
  o.max_in_flight_per_tenant = 2;
  auto q = Open(o);
  Push(*q, {Job(1, 1, 1 * kMinute), Job(2, 1, 2 * kMinute), Job(3, 1, 3 * kMinute),
            Job(4, 1, 4 * kMinute, 10, Channel::kSms), Job(11, 2, 8 * kMinute),
            Job(12, 2, 9 * kMinute, 10, Channel::kIos), Job(13, 2, 10 * kMinute)});
  std::vector<Lease> got = Take(*q, 10, milliseconds(0));
  EXPECT_THAT(Keys(got), ElementsAre(1, 2, 11, 12));
  EXPECT_EQ(InFlight(*q), 4u);
  EXPECT_EQ(Queued(*q, 3u), 3u);
  EXPECT_THAT(Take(*q, 10, milliseconds(0)), IsEmpty());

  Ack(*q, got[1]);  // tenant 1 has a free slot again: its earliest job goes next
  EXPECT_THAT(Keys(Take(*q, 10, milliseconds(0))), ElementsAre(3));
  Retry(*q, got[0]);  // frees a slot too, and the job is due again at once
  EXPECT_THAT(Keys(Take(*q, 10, milliseconds(0))), ElementsAre(1));
}

TEST_P(QueueConformanceTest, LimitsCanChangeWhileJobsAreInFlight) {
  QueueOptions o;
  o.max_in_flight_per_tenant = 1;
  auto q = Open(o);
  Push(*q, {Job(1, 1, 1 * kMinute), Job(2, 1, 2 * kMinute), Job(3, 1, 3 * kMinute),
            Job(11, 2, 9 * kMinute)});
  EXPECT_THAT(Keys(Take(*q, 10, milliseconds(0))), ElementsAre(1, 11));
  o.max_in_flight_per_tenant = 3;  // raised: tenant 1's waiting jobs go at once
  q->SetLimits(o);
  std::vector<Lease> got = Take(*q, 10, milliseconds(0));
  EXPECT_THAT(Keys(got), ElementsAre(2, 3));
  o.max_in_flight_per_tenant = 1;  // lowered below what is in flight: nothing more until done
  q->SetLimits(o);
  Push(*q, {Job(4, 1, 4 * kMinute)});
  EXPECT_THAT(Take(*q, 10, milliseconds(0)), IsEmpty());
  Ack(*q, got[0]);
  Ack(*q, got[1]);
  EXPECT_THAT(Take(*q, 10, milliseconds(0)), IsEmpty());  // job 1 is still in flight
  q->SetLimits(QueueOptions{});                           // no limits at all
  EXPECT_THAT(Keys(Take(*q, 10, milliseconds(0))), ElementsAre(4));
}

TEST_P(QueueConformanceTest, ChannelAtItsLimitIsPassedOver) {
  QueueOptions o;
  o.max_in_flight_per_channel = 2;
  auto q = Open(o);
  Push(*q, {Job(1, 1, 1 * kMinute), Job(2, 2, 2 * kMinute), Job(3, 3, 3 * kMinute),
            Job(4, 1, 4 * kMinute, 10, Channel::kSms), Job(5, 2, 5 * kMinute, 10, Channel::kIos),
            Job(6, 3, 6 * kMinute, 10, Channel::kSms), Job(7, 1, 7 * kMinute, 10, Channel::kSms)});
  std::vector<Lease> got = Take(*q, 10, milliseconds(0));
  EXPECT_THAT(Keys(got), ElementsAre(1, 2, 4, 5, 6));
  EXPECT_THAT(Take(*q, 10, milliseconds(0)), IsEmpty());
  Ack(*q, got[0]);
  EXPECT_THAT(Keys(Take(*q, 10, milliseconds(0))), ElementsAre(3));
  Ack(*q, got[2]);
  EXPECT_THAT(Keys(Take(*q, 10, milliseconds(0))), ElementsAre(7));
}

TEST_P(QueueConformanceTest, BothLimitsTogether) {
  QueueOptions o;
  o.max_in_flight_per_channel = 3;
  o.max_in_flight_per_tenant = 2;
  auto q = Open(o);
  std::vector<DeliveryJob> jobs;
  for (int64_t i = 0; i < 30; ++i) {
    jobs.push_back(Job(i, i % 3, i * kMinute, 10, kAllChannels[i % 4]));
  }
  Push(*q, jobs);
  std::vector<Lease> got = Take(*q, 100, milliseconds(0));
  EXPECT_EQ(got.size(), 6u);  // 3 tenants x 2; no channel over 3
  size_t per_channel[4] = {};
  for (const Lease& l : got) ++per_channel[static_cast<size_t>(l.job.channel)];
  for (size_t n : per_channel) EXPECT_LE(n, 3u);
  EXPECT_THAT(Keys(got), ElementsAre(0, 1, 2, 3, 4, 5));
}

TEST_P(QueueConformanceTest, DelayedJobOfATenantAtItsLimitWaitsForItsSlot) {
  QueueOptions o;
  o.max_in_flight_per_tenant = 1;
  auto q = Open(o);
  Push(*q, {Job(1, 1, kMinute)});
  std::vector<Lease> first = Take(*q, 1, milliseconds(0));
  ASSERT_EQ(first.size(), 1u);
  DeliveryJob delayed = Job(2, 1, kMinute);
  delayed.not_before = NowMillis() + 50;
  Push(*q, {delayed, Job(3, 2, 10 * kMinute)});
  EXPECT_THAT(Keys(Take(*q, 5, milliseconds(200))), ElementsAre(3));
  EXPECT_THAT(Take(*q, 5, milliseconds(100)), IsEmpty());
  Ack(*q, first[0]);
  EXPECT_THAT(Keys(Take(*q, 5, milliseconds(0))), ElementsAre(2));
}

// The case: tenant A floods with later deadlines, then tenant B sends a few with earlier
// ones; B's go next, not after A's flood.
TEST_P(QueueConformanceTest, LaterDeadlineFloodDoesNotDelayAnotherTenantsEarlierDeadline) {
  auto q = Open();
  const int64_t kFlood = Scaled(*q, 100000);
  std::vector<DeliveryJob> flood;
  for (int64_t i = 0; i < kFlood; ++i) {
    flood.push_back(Job(i, 1, 20 * kMinute + i % 1000));
    if (flood.size() == 1000) {  // in batches, as a fan-out pushes
      Push(*q, std::move(flood));
      flood.clear();
    }
  }
  std::vector<DeliveryJob> b;
  for (int64_t i = 0; i < 10; ++i) b.push_back(Job(kFlood + i, 2, 10 * kMinute, 5));
  Push(*q, b);
  EXPECT_EQ(Queued(*q, static_cast<size_t>(kFlood + 10)), static_cast<size_t>(kFlood + 10));

  std::vector<Lease> got = Take(*q, 4, milliseconds(0));
  std::vector<Lease> more = Take(*q, 6, milliseconds(0));
  got.insert(got.end(), more.begin(), more.end());
  ASSERT_EQ(got.size(), 10u);
  for (const Lease& l : got) EXPECT_EQ(l.job.tenant, 2);
  std::vector<Lease> next = Take(*q, 1, milliseconds(0));
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].job.tenant, 1);
}

// With a per-tenant limit, B progresses while A's flood (all earlier) is still queued: a
// dispatcher taking 16 at a time and finishing them gets B's 10 jobs out within two rounds.
TEST_P(QueueConformanceTest, FloodAtItsTenantLimitLeavesRoomForAnotherTenant) {
  QueueOptions o;
  o.max_in_flight_per_tenant = 8;
  auto q = Open(o);
  const int64_t kFlood = Scaled(*q, 100000);
  std::vector<DeliveryJob> flood;
  for (int64_t i = 0; i < kFlood; ++i) flood.push_back(Job(i, 1, 5 * kMinute));
  Push(*q, std::move(flood));
  std::vector<DeliveryJob> b;
  for (int64_t i = 0; i < 10; ++i) b.push_back(Job(kFlood + i, 2, 10 * kMinute));
  Push(*q, b);

  size_t a_taken = 0, b_taken = 0;
  for (int round = 0; round < 2; ++round) {
    std::vector<Lease> got = Take(*q, 16, milliseconds(0));
    for (const Lease& l : got) {
      (l.job.tenant == 1 ? a_taken : b_taken) += 1;
      Ack(*q, l);
    }
  }
  EXPECT_EQ(b_taken, 10u);
  EXPECT_EQ(a_taken, 16u);  // A goes on at its limit too
  EXPECT_EQ(Queued(*q, static_cast<size_t>(kFlood - 16)), static_cast<size_t>(kFlood - 16));
}

}  // namespace
}  // namespace herald::queue_test

// The Queue conformance suite: every backend must pass it. Written only against the Queue
// interface (queue.h), it runs once per backend in Backends() below; the fixture is in
// queue_conformance.h and the tests are spread over queue_conformance*_test.cc. This file holds
// the backend list, order, delayed jobs, waiting, duplicates and Close.
#include "queue/queue_conformance.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <future>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "queue/jetstream/jetstream_queue.h"
#include "testing/nats/nats_test_cluster.h"

namespace herald::queue_test {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// ---- backends ----

// JetStream: one stream for the test binary, on the 3-node cluster the test support starts
// (once per test binary), emptied when each test's queue is destroyed: creating its 32 R3
// consumers takes ~15 s on two cores, too long to repeat for every test. Leases last 2 s here,
// so that the lease tests do not wait 30.
std::unique_ptr<Queue> OpenJetStream(QueueOptions o) {
  natstest::NatsTestCluster* cluster = natstest::NatsTestCluster::Shared();
  if (cluster == nullptr) {
    ADD_FAILURE() << "no NATS cluster: nats-server is installed by scripts/install-deps";
    return nullptr;
  }
  JetStreamQueueOptions options;
  options.urls = cluster->Urls();
  options.stream = "CT" + std::to_string(::getpid());
  options.ack_wait = std::chrono::milliseconds(2000);
  options.purge_on_close = true;
  static int opened = 0;
  options.message_id_prefix = "t" + std::to_string(++opened) + ".";
  Result<std::unique_ptr<Queue>> q = OpenJetStreamQueue(options, o);
  if (!q.ok()) {
    ADD_FAILURE() << q.error().message;
    return nullptr;
  }
  return std::move(*q);
}

std::vector<QueueFactory> Backends() {
  return {QueueFactory{"Local", [](QueueOptions o) { return MakeLocalQueue(o); }},
          QueueFactory{"JetStream", OpenJetStream}};
}

// ---- order ----

TEST_P(QueueConformanceTest, TakesEarliestDeadlineFirstAcrossTenants) {
  auto q = Open();
  Push(*q, {Job(1, 7, 30 * kMinute), Job(2, 8, 10 * kMinute), Job(3, 9, 20 * kMinute)});
  Push(*q, {Job(4, 8, 25 * kMinute), Job(5, 7, 5 * kMinute), Job(6, 9, 15 * kMinute)});
  EXPECT_EQ(Queued(*q, 6u), 6u);
  EXPECT_THAT(Keys(Take(*q, 3, milliseconds(0))), ElementsAre(5, 2, 6));
  EXPECT_THAT(Keys(Take(*q, 10, milliseconds(0))), ElementsAre(3, 4, 1));
  EXPECT_EQ(Queued(*q, 0u), 0u);
  EXPECT_EQ(InFlight(*q), 6u);
}

TEST_P(QueueConformanceTest, TakeReturnsTheJobAsPushed) {
  auto q = Open();
  DeliveryJob j = Job(42, 3, kMinute, 5, Channel::kSms);
  j.notification = 77;
  j.attempt = 2;
  j.not_before = NowMillis() - 1000;
  Push(*q, {j});
  std::vector<Lease> got = Take(*q, 5, milliseconds(0));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].job.delivery, 42);
  EXPECT_EQ(got[0].job.notification, 77);
  EXPECT_EQ(got[0].job.tenant, 3);
  EXPECT_EQ(got[0].job.deadline, j.deadline);
  EXPECT_EQ(got[0].job.not_before, j.not_before);
  EXPECT_EQ(got[0].job.channel, Channel::kSms);
  EXPECT_EQ(got[0].job.priority, 5);
  EXPECT_EQ(got[0].job.attempt, 2);
}

TEST_P(QueueConformanceTest, HigherPriorityBreaksDeadlineTies) {
  auto q = Open();
  Push(*q, {Job(1, 1, kMinute, 5), Job(2, 2, kMinute, 10), Job(3, 1, 2 * kMinute, 10),
            Job(4, 3, kMinute, 7), Job(5, 1, kMinute / 2, 1)});
  EXPECT_THAT(DrainOneByOne(*q), ElementsAre(5, 2, 4, 1, 3));
}

TEST_P(QueueConformanceTest, EqualJobsComeOutInEnqueueOrder) {
  auto q = Open();
  if (!Strict(*q)) GTEST_SKIP() << "the backend keeps arrival order per class and shard only";
  Push(*q, {Job(30, 2, kMinute), Job(10, 1, kMinute), Job(20, 3, kMinute, 10, Channel::kIos)});
  Push(*q, {Job(5, 1, kMinute), Job(40, 2, kMinute, 10, Channel::kSms)});
  EXPECT_THAT(Keys(Take(*q, 10, milliseconds(0))), ElementsAre(30, 10, 20, 5, 40));
}

// Broadcast-like runs (one deadline, enqueue order) interleaved with pushes earlier and later in
// the order, taken while pushes go on: every take is the earliest job queued at that moment.
TEST_P(QueueConformanceTest, OrderHoldsUnderInterleavedRunsAndOutOfOrderPushes) {
  auto q = Open();
  if (!Strict(*q)) GTEST_SKIP() << "jobs pushed after a fetch wait for the next one";
  std::mt19937 rng(7);
  struct Expected {
    UnixMillis deadline;
    int priority;
    int64_t seq;
    int64_t key;
    bool operator<(const Expected& o) const {
      if (deadline != o.deadline) return deadline < o.deadline;
      if (priority != o.priority) return priority > o.priority;
      return seq < o.seq;
    }
  };
  std::set<Expected> model;
  int64_t next_key = 1, seq = 0;
  for (int round = 0; round < 300; ++round) {
    std::vector<DeliveryJob> batch;
    const UnixMillis deadline = (1 + static_cast<int>(rng() % 20)) * kMinute;
    const auto priority = static_cast<uint8_t>(rng() % 3 == 0 ? 5 + rng() % 10 : 10);
    const int run = static_cast<int>(rng() % 40);
    batch.reserve(static_cast<size_t>(run) + 2);
    for (int i = 0; i < run; ++i) batch.push_back(Job(next_key++, 1, deadline, priority));
    for (int i = static_cast<int>(rng() % 3); i > 0; --i) {  // strays, before or after the run
      batch.push_back(Job(next_key++, 1, (1 + static_cast<int>(rng() % 20)) * kMinute,
                          static_cast<uint8_t>(rng() % 20)));
    }
    for (const DeliveryJob& j : batch) {
      model.insert(Expected{j.deadline, j.priority, seq++, j.delivery});
    }
    Push(*q, batch);
    for (int takes = static_cast<int>(rng() % 30); takes > 0 && !model.empty(); --takes) {
      std::vector<Lease> got = Take(*q, 1, milliseconds(0));
      ASSERT_EQ(got.size(), 1u);
      ASSERT_EQ(got[0].job.delivery, model.begin()->key) << "round " << round;
      model.erase(model.begin());
    }
  }
  while (!model.empty()) {
    std::vector<Lease> got = Take(*q, 1, milliseconds(0));
    ASSERT_EQ(got.size(), 1u);
    ASSERT_EQ(got[0].job.delivery, model.begin()->key);
    model.erase(model.begin());
  }
  EXPECT_THAT(Take(*q, 1, milliseconds(0)), IsEmpty());
}

TEST_P(QueueConformanceTest, TakeZeroTakesNothing) {
  auto q = Open();
  Push(*q, {Job(1, 1, kMinute)});
  EXPECT_THAT(Take(*q, 0, milliseconds(0)), IsEmpty());
  EXPECT_EQ(Queued(*q, 1u), 1u);
}

// ---- delayed jobs ----

TEST_P(QueueConformanceTest, DelayedJobIsNotTakenBeforeItsTime) {
  auto q = Open();
  DeliveryJob j = Job(1, 1, kMinute);
  j.not_before = NowMillis() + 60 * 1000;
  Push(*q, {j});
  EXPECT_EQ(Queued(*q, 1u), 1u);
  EXPECT_THAT(Take(*q, 1, milliseconds(100)), IsEmpty());
  EXPECT_EQ(Queued(*q, 1u), 1u);
  EXPECT_EQ(InFlight(*q), 0u);
}

TEST_P(QueueConformanceTest, DelayedRetryBecomesDueOnTime) {
  auto q = Open();
  Push(*q, {Job(1, 1, kMinute)});
  std::vector<Lease> got = Take(*q, 1, milliseconds(0));
  ASSERT_EQ(got.size(), 1u);
  const UnixMillis due = NowMillis() + 300;
  Retry(*q, got[0], due);
  EXPECT_EQ(InFlight(*q), 0u);
  EXPECT_EQ(Queued(*q, 1u), 1u);
  EXPECT_THAT(Take(*q, 1, milliseconds(0)), IsEmpty());

  const auto start = std::chrono::steady_clock::now();
  got = Take(*q, 1, milliseconds(10000));
  const UnixMillis taken_at = NowMillis();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].job.attempt, 1);
  EXPECT_GE(taken_at, due);
  // Woken by the job's time, not by a slow poll or the end of the wait.
  EXPECT_LT(ElapsedMs(start), 2000);
}

TEST_P(QueueConformanceTest, DueDelayedJobCompetesByDeadline) {
  auto q = Open();
  DeliveryJob delayed = Job(1, 1, kMinute);
  delayed.not_before = NowMillis() + 500;
  Push(*q, {delayed, Job(2, 2, 5 * kMinute)});
  EXPECT_THAT(Keys(Take(*q, 5, milliseconds(0))), ElementsAre(2));
  Push(*q, {Job(3, 2, 2 * kMinute)});
  std::this_thread::sleep_for(milliseconds(600));
  EXPECT_THAT(Keys(Take(*q, 5, milliseconds(0))), ElementsAre(1, 3));
}

TEST_P(QueueConformanceTest, WaitEndsEarlyWhenASoonerDelayedJobArrives) {
  auto q = Open();
  DeliveryJob late = Job(1, 1, kMinute);
  late.not_before = NowMillis() + 60 * 1000;
  Push(*q, {late});
  const auto start = std::chrono::steady_clock::now();
  auto taker = std::async(std::launch::async, [&] { return Take(*q, 1, milliseconds(20000)); });
  std::this_thread::sleep_for(milliseconds(50));
  DeliveryJob soon = Job(2, 2, kMinute);
  soon.not_before = NowMillis() + 100;
  Push(*q, {soon});
  EXPECT_THAT(Keys(taker.get()), ElementsAre(2));
  EXPECT_LT(ElapsedMs(start), 5000);
}

// ---- waiting ----

TEST_P(QueueConformanceTest, TakeWaitsAndWakesOnPush) {
  auto q = Open();
  const auto start = std::chrono::steady_clock::now();
  auto taker = std::async(std::launch::async, [&] { return Take(*q, 4, milliseconds(20000)); });
  std::this_thread::sleep_for(milliseconds(50));
  Push(*q, {Job(1, 1, kMinute)});
  EXPECT_THAT(Keys(taker.get()), ElementsAre(1));
  EXPECT_LT(ElapsedMs(start), 5000);
}

TEST_P(QueueConformanceTest, EndlessWaitsAndFarTimesAreHandled) {
  auto q = Open();
  DeliveryJob never = Job(1, 1, kMinute);
  never.not_before = INT64_MAX;
  Push(*q, {never});
  EXPECT_THAT(Take(*q, 1, milliseconds(50)), IsEmpty());
  auto taker = std::async(std::launch::async, [&] { return Take(*q, 1, milliseconds::max()); });
  std::this_thread::sleep_for(milliseconds(50));
  Push(*q, {Job(2, 1, kMinute)});
  ASSERT_EQ(taker.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_THAT(Keys(taker.get()), ElementsAre(2));
}

TEST_P(QueueConformanceTest, TakeReturnsEmptyWhenTheWaitEnds) {
  auto q = Open();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(Take(*q, 1, milliseconds(100)), IsEmpty());
  EXPECT_GE(ElapsedMs(start), 90);
}

TEST_P(QueueConformanceTest, CloseWakesABlockedTake) {
  auto q = Open();
  const auto start = std::chrono::steady_clock::now();
  auto taker = std::async(std::launch::async, [&] { return Take(*q, 1, milliseconds(30000)); });
  std::this_thread::sleep_for(milliseconds(50));
  q->Close();
  EXPECT_THAT(taker.get(), IsEmpty());
  EXPECT_LT(ElapsedMs(start), 5000);
  Status late = q->Push({Job(1, 1, kMinute)});
  EXPECT_FALSE(late.ok()) << "a Push after Close must say it queued nothing";
  EXPECT_EQ(Queued(*q, 0u), 0u);
  EXPECT_THAT(Take(*q, 1, milliseconds(10)), IsEmpty());
}

TEST_P(QueueConformanceTest, CloseWakesEveryBlockedTake) {
  auto q = Open();
  std::vector<std::future<std::vector<Lease>>> takers;
  takers.reserve(4);
  for (int i = 0; i < 4; ++i) {
    takers.push_back(
        std::async(std::launch::async, [&] { return Take(*q, 1, milliseconds(30000)); }));
  }
  std::this_thread::sleep_for(milliseconds(50));
  q->Close();
  for (auto& t : takers) {
    ASSERT_EQ(t.wait_for(std::chrono::seconds(5)), std::future_status::ready);
    EXPECT_THAT(t.get(), IsEmpty());
  }
}

// ---- duplicates, Done, Retry ----

TEST_P(QueueConformanceTest, DuplicateKeysAreIgnoredWhileQueuedOrInFlight) {
  auto q = Open();
  Push(*q, {Job(1, 1, kMinute), Job(1, 1, kMinute)});
  Push(*q, {Job(1, 2, 0)});
  EXPECT_EQ(Queued(*q, 1u), 1u);
  std::vector<Lease> got = Take(*q, 5, milliseconds(0));
  ASSERT_THAT(Keys(got), ElementsAre(1));
  EXPECT_EQ(got[0].job.tenant, 1);
  Push(*q, {Job(1, 1, kMinute)});
  EXPECT_EQ(Queued(*q, 0u), 0u);
  EXPECT_EQ(InFlight(*q), 1u);
  Ack(*q, got[0]);
  EXPECT_EQ(InFlight(*q), 0u);
  // Finished: the key may come again (JetStream knows a job by key and attempt for its
  // duplicate window, so there only a later attempt may).
  DeliveryJob again = Job(1, 1, kMinute);
  if (!Strict(*q)) again.attempt = 1;
  Push(*q, {again});
  EXPECT_EQ(Queued(*q, 1u), 1u);
}

TEST_P(QueueConformanceTest, DuplicateOfADelayedJobIsIgnored) {
  auto q = Open();
  DeliveryJob j = Job(1, 1, kMinute);
  j.not_before = NowMillis() + 60 * 1000;
  Push(*q, {j});
  Push(*q, {Job(1, 1, kMinute)});
  EXPECT_EQ(Queued(*q, 1u), 1u);
  EXPECT_THAT(Take(*q, 1, milliseconds(0)), IsEmpty());
}

TEST_P(QueueConformanceTest, DoneTwiceIsHarmless) {
  QueueOptions o;
  o.max_in_flight_per_tenant = 1;
  auto q = Open(o);
  Push(*q, {Job(1, 1, kMinute), Job(2, 1, kMinute), Job(3, 1, kMinute)});
  std::vector<Lease> got = Take(*q, 1, milliseconds(0));
  ASSERT_EQ(got.size(), 1u);
  Ack(*q, got[0]);
  Ack(*q, got[0]);
  EXPECT_EQ(InFlight(*q), 0u);
  EXPECT_THAT(Keys(Take(*q, 5, milliseconds(0))), ElementsAre(2));
  EXPECT_THAT(Take(*q, 5, milliseconds(0)), IsEmpty());  // the limit still holds
}

// ---- leases ----

TEST_P(QueueConformanceTest, AStaleLeaseFreesNothing) {
  auto q = Open();
  Push(*q, {Job(1, 1, kMinute)});
  std::vector<Lease> first = Take(*q, 1, milliseconds(0));
  ASSERT_EQ(first.size(), 1u);
  Retry(*q, first[0], 0);  // given back: due again at once, as attempt 1
  std::vector<Lease> second = Take(*q, 1, milliseconds(5000));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].job.delivery, 1);
  EXPECT_EQ(second[0].job.attempt, 1);
  Ack(*q, first[0]);  // the first lease is over: its Ack, Retry and Extend change nothing
  Retry(*q, first[0], 0);
  ASSERT_TRUE(q->Extend(first).ok());
  EXPECT_EQ(InFlight(*q), 1u);
  EXPECT_THAT(Take(*q, 1, milliseconds(100)), IsEmpty());
  Ack(*q, second[0]);
  EXPECT_EQ(InFlight(*q), 0u);
  EXPECT_EQ(Queued(*q, 0u), 0u);
}

TEST_P(QueueConformanceTest, AcksInOneCallFreeEverySlot) {
  QueueOptions o;
  o.max_in_flight_per_tenant = 3;
  auto q = Open(o);
  Push(*q, {Job(1, 1, kMinute), Job(2, 1, kMinute), Job(3, 1, kMinute), Job(4, 1, kMinute)});
  std::vector<Lease> got = Take(*q, 10, milliseconds(0));
  ASSERT_EQ(got.size(), 3u);
  ASSERT_TRUE(q->Ack(got).ok());
  EXPECT_EQ(InFlight(*q), 0u);
  EXPECT_THAT(Keys(Take(*q, 10, milliseconds(1000))), ElementsAre(4));
}

// A held lease is never handed to a second taker; where leases expire (a remote backend), a job
// whose lease is neither acknowledged nor extended comes back after lease_time(), and one that
// is extended does not.
TEST_P(QueueConformanceTest, AnUnacknowledgedJobComesBackOnlyWhenItsLeaseRunsOut) {
  auto q = Open();
  Push(*q, {Job(1, 1, kMinute), Job(2, 1, kMinute)});
  std::vector<Lease> got = Take(*q, 2, milliseconds(1000));
  ASSERT_EQ(got.size(), 2u);
  const milliseconds lease = q->lease_time();
  if (lease.count() == 0) {  // leases end with the process only
    EXPECT_THAT(Take(*q, 2, milliseconds(300)), IsEmpty());
    EXPECT_EQ(InFlight(*q), 2u);
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  std::vector<Lease> again;
  while (again.empty() && ElapsedMs(start) < 4 * lease.count()) {
    ASSERT_TRUE(q->Extend(std::span(&got[1], 1)).ok());  // job 2 is still being worked on
    again = Take(*q, 2, lease / 4);
  }
  EXPECT_THAT(Keys(again), ElementsAre(1));
  EXPECT_GE(ElapsedMs(start), lease.count() * 9 / 10);
  Ack(*q, again[0]);
  Ack(*q, got[1]);
  EXPECT_THAT(Take(*q, 2, lease + lease / 2), IsEmpty());
}

TEST_P(QueueConformanceTest, StatsCountDelayedJobs) {
  auto q = Open();
  DeliveryJob later = Job(1, 1, kMinute);
  later.not_before = NowMillis() + 60 * 1000;
  Push(*q, {later, Job(2, 1, kMinute)});
  const UnixMillis before = NowMillis();
  QueueStats s = q->Stats();
  EXPECT_EQ(s.queued, 2u);
  EXPECT_EQ(s.delayed, 1u);
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_GE(s.at, before - 2000);
}

INSTANTIATE_TEST_SUITE_P(Backends, QueueConformanceTest, ::testing::ValuesIn(Backends()),
                         [](const ::testing::TestParamInfo<QueueFactory>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace herald::queue_test

// Tests of the local backend beyond the conformance suite (queue_conformance*_test.cc): its
// memory per job, and the flat key set it de-duplicates with.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <unordered_set>
#include <vector>

#include "queue/local/key_set.h"
#include "queue/queue.h"

#if defined(__GLIBC__)  // known only once a standard header is in
#include <malloc.h>
#endif

namespace herald {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__GLIBC__)
constexpr bool kCanMeasureHeap = false;
size_t HeapInUse() { return 0; }
#else
constexpr bool kCanMeasureHeap = true;
size_t HeapInUse() {  // allocated from the heap, plus large blocks mapped on their own
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}
#endif

TEST(LocalQueueTest, MillionJobsFitWellUnder100MB) {
  if (!kCanMeasureHeap) GTEST_SKIP() << "heap use is not measurable in this build";
  constexpr int64_t kJobs = 1000000;
  const UnixMillis now = NowMillis();
  std::vector<DeliveryJob> batch;
  batch.reserve(1000);
  const size_t before = HeapInUse();
  auto q = MakeLocalQueue(QueueOptions{});
  std::mt19937 rng(1);
  for (int64_t key = 0; key < kJobs; ++key) {
    DeliveryJob j;
    j.delivery = key;
    j.notification = key / 100;
    j.tenant = key % 100;
    j.deadline = now + rng() % (20 * 60 * 1000);
    j.channel = kAllChannels[key % 4];
    batch.push_back(j);
    if (batch.size() == 1000) {
      q->Push(batch);
      batch.clear();
    }
  }
  const size_t used = HeapInUse() - before;
  std::printf("[ info ] Local: 1M queued jobs use %.1f MB (%zu bytes a job)\n", used / 1e6,
              used / kJobs);
  EXPECT_EQ(q->queued(), static_cast<size_t>(kJobs));
  EXPECT_LT(used, 70u * 1000 * 1000);
}

TEST(FlatKeySetTest, BehavesAsASet) {
  FlatKeySet set;
  EXPECT_FALSE(set.contains(5));
  EXPECT_TRUE(set.insert(5));
  EXPECT_FALSE(set.insert(5));
  EXPECT_TRUE(set.insert(INT64_MIN));  // the value that marks free slots is a key too
  EXPECT_TRUE(set.insert(0));
  EXPECT_TRUE(set.insert(-1));
  EXPECT_EQ(set.size(), 4u);
  EXPECT_TRUE(set.contains(INT64_MIN));
  EXPECT_TRUE(set.erase(INT64_MIN));
  EXPECT_FALSE(set.erase(INT64_MIN));
  EXPECT_FALSE(set.erase(6));
  EXPECT_TRUE(set.erase(5));
  EXPECT_FALSE(set.contains(5));
  EXPECT_EQ(set.size(), 2u);
}

TEST(FlatKeySetTest, AgreesWithUnorderedSetUnderRandomChurn) {
  FlatKeySet set;
  std::unordered_set<int64_t> model;
  std::mt19937_64 rng(7);
  for (int round = 0; round < 400000; ++round) {
    // A narrow key range, so that probe runs collide and erasures shift keys back.
    const int64_t key = static_cast<int64_t>(rng() % 5000) * 1024;
    const bool grow = (round / 50000) % 2 == 0;  // fill, then drain, then fill again
    if (rng() % 4 != 0 ? grow : !grow) {
      ASSERT_EQ(set.insert(key), model.insert(key).second) << key;
    } else {
      ASSERT_EQ(set.erase(key), model.erase(key) == 1) << key;
    }
    ASSERT_EQ(set.size(), model.size());
  }
  for (int64_t key = 0; key < 5000 * 1024; key += 1024) {
    ASSERT_EQ(set.contains(key), model.contains(key)) << key;
  }
}

TEST(FlatKeySetTest, GivesMemoryBackWhenDrained) {
  FlatKeySet set;
  for (int64_t key = 0; key < 100000; ++key) set.insert(key);
  EXPECT_GE(set.capacity(), 100000u * 4 / 3);
  for (int64_t key = 0; key < 100000; ++key) ASSERT_TRUE(set.erase(key));
  EXPECT_EQ(set.size(), 0u);
  EXPECT_LE(set.capacity(), 32u);
}

}  // namespace
}  // namespace herald

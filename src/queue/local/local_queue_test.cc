// Tests of the local backend beyond the conformance suite (queue_conformance*_test.cc): its
// memory per job.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

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
      ASSERT_TRUE(q->Push(batch).ok());
      batch.clear();
    }
  }
  const size_t used = HeapInUse() - before;
  std::printf("[ info ] Local: 1M queued jobs use %.1f MB (%zu bytes a job)\n", used / 1e6,
              used / kJobs);
  EXPECT_EQ(q->Stats().queued, static_cast<size_t>(kJobs));
  EXPECT_LT(used, 70u * 1000 * 1000);
}

}  // namespace
}  // namespace herald

// The Queue conformance suite's fixture, shared by its files (queue_conformance*_test.cc). The
// suite is written only against the Queue interface (queue.h); every backend must pass it. A
// backend joins by adding a QueueFactory to the list in queue_conformance_test.cc.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "model/notification.h"
#include "queue/queue.h"

namespace herald::queue_test {

using std::chrono::milliseconds;
inline constexpr UnixMillis kMinute = 60 * 1000;

// Opens a fresh, empty queue; the queue cleans up after itself when destroyed.
struct QueueFactory {
  std::string name;
  std::function<std::unique_ptr<Queue>(QueueOptions)> open;
};
inline void PrintTo(const QueueFactory& f, std::ostream* os) { *os << f.name; }

class QueueConformanceTest : public ::testing::TestWithParam<QueueFactory> {
 protected:
  std::unique_ptr<Queue> Open(QueueOptions options = {}) { return GetParam().open(options); }

  // A due job; deadlines are given relative to t0_, the test's start.
  DeliveryJob Job(int64_t delivery, int64_t tenant, UnixMillis deadline_in, uint8_t priority = 10,
                  Channel channel = Channel::kEmail) const {
    DeliveryJob j;
    j.delivery = delivery;
    j.notification = 1000 + tenant;
    j.tenant = tenant;
    j.deadline = t0_ + deadline_in;
    j.channel = channel;
    j.priority = priority;
    return j;
  }

  static std::vector<int64_t> Keys(const std::vector<DeliveryJob>& jobs) {
    std::vector<int64_t> keys;
    keys.reserve(jobs.size());
    for (const DeliveryJob& j : jobs) keys.push_back(j.delivery);
    return keys;
  }

  // Takes one job at a time, without waiting, until none is due or `limit` are taken.
  static std::vector<int64_t> DrainOneByOne(Queue& q, size_t limit = SIZE_MAX) {
    std::vector<int64_t> keys;
    while (keys.size() < limit) {
      std::vector<DeliveryJob> got = q.Take(1, milliseconds(0));
      if (got.empty()) break;
      keys.push_back(got[0].delivery);
      q.Done(got[0]);
    }
    return keys;
  }

  static int64_t ElapsedMs(std::chrono::steady_clock::time_point since) {
    return std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - since)
        .count();
  }

  const UnixMillis t0_ = NowMillis();
};

}  // namespace herald::queue_test

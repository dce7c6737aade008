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
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
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
  // Fails the test (by an exception gtest reports) when the backend cannot be opened.
  std::unique_ptr<Queue> Open(QueueOptions options = {}) {
    std::unique_ptr<Queue> q = GetParam().open(options);
    if (q == nullptr) throw std::runtime_error(GetParam().name + " queue did not open");
    return q;
  }

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

  static std::vector<int64_t> Keys(const std::vector<Lease>& leases) {
    std::vector<int64_t> keys;
    keys.reserve(leases.size());
    for (const Lease& l : leases) keys.push_back(l.job.delivery);
    return keys;
  }

  // The calls of the contract, failing the test when a backend refuses them.
  static void Push(Queue& q, std::vector<DeliveryJob> jobs) {
    Status st = q.Push(std::move(jobs));
    ASSERT_TRUE(st.ok()) << st.error().message;
  }
  static std::vector<Lease> Take(Queue& q, size_t max, milliseconds wait) {
    Result<std::vector<Lease>> got = q.Take(max, wait);
    EXPECT_TRUE(got.ok()) << got.error().message;
    return got.ok() ? std::move(*got) : std::vector<Lease>{};
  }
  static void Ack(Queue& q, const Lease& lease) {
    Status st = q.Ack(std::span(&lease, 1));
    ASSERT_TRUE(st.ok()) << st.error().message;
  }
  static void Retry(Queue& q, const Lease& lease, UnixMillis not_before = 0) {
    Status st = q.Retry(lease, not_before);
    ASSERT_TRUE(st.ok()) << st.error().message;
  }
  // How many jobs a load test moves: all of `n` through the local queue, a twentieth through a
  // remote one (every job is a replicated publish there; the rates are printed either way).
  static int64_t Scaled(const Queue& q, int64_t n) {
    return q.lease_time().count() == 0 ? n : n / 20;
  }

  static size_t Queued(const Queue& q) { return q.Stats().queued; }
  // The count once the snapshot has caught up: a remote backend's Stats may be up to a second
  // behind, so it is read again for up to 3 s until it shows `want` (the local queue's is exact
  // at once). Returns the last count read.
  static size_t Queued(const Queue& q, size_t want) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    size_t n = q.Stats().queued;
    while (n != want && q.lease_time().count() > 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(milliseconds(50));
      n = q.Stats().queued;
    }
    return n;
  }
  static size_t InFlight(const Queue& q) { return q.Stats().in_flight; }

  // Tests of the strict order (QueueOrder::kStrictEdf) do not apply to a backend that declares
  // the order by deadline class; it has tests of its own (queue_conformance_class_test.cc).
  bool Strict(const Queue& q) const { return q.order() == QueueOrder::kStrictEdf; }

  // Takes one job at a time, without waiting, until none is due or `limit` are taken.
  static std::vector<int64_t> DrainOneByOne(Queue& q, size_t limit = SIZE_MAX) {
    std::vector<int64_t> keys;
    while (keys.size() < limit) {
      std::vector<Lease> got = Take(q, 1, milliseconds(0));
      if (got.empty()) break;
      keys.push_back(got[0].job.delivery);
      Ack(q, got[0]);
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

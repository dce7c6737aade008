// The in-process queue backend (DESIGN §2): every job in memory, behind one mutex. Its durable
// state is the store's deliveries table: after a restart the pipeline pushes every non-terminal
// delivery again, and de-duplication absorbs any overlap with a fan-out that is resuming.
//
// Layout, so that Push and Take are O(log n) and a queued job costs about 60 bytes:
//  - a lane per (tenant, channel): its due jobs in the order of the contract, 40 bytes a job, in
//    two parts: a run (a deque in order: every job that arrives no earlier in the order than the
//    run's last one is appended, which is every job of a broadcast, since a fan-out pushes one
//    deadline in enqueue order) and a binary heap (grown by a quarter at a time) for the others.
//    The lane's next job is the earlier of the run's front and the heap's top: a million-job send
//    is taken in O(1) from memory read in order, not through twenty levels of a heap;
//  - per channel, an ordered index of the lanes that may give a job now (non-empty, tenant under
//    its limit), keyed by each lane's head. Take compares the first lane of each channel that is
//    under its limit (at most four) and takes that lane's head, so a tenant or channel at its
//    limit is passed over without scanning its jobs, and never blocks the others;
//  - one timer heap of delayed jobs (not_before in the future); they move to their lanes when
//    due, and a waiting Take sleeps no later than the earliest of them;
//  - a flat set of queued delivery keys and a map of the in-flight ones, to ignore duplicates.
// A tenant's lanes, once made, stay (a few hundred bytes a tenant).
//
// Thread-safety: as Queue, any method from any thread. Waiting takers are woken one at a time
// (a taker that leaves jobs behind wakes the next), all at once only by Close() or by a delayed
// job due sooner than the one they sleep for.
#pragma once

#include <array>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <iterator>
#include <mutex>
#include <set>
#include <unordered_map>
#include <vector>

#include "common/flat_key_set.h"
#include "model/notification.h"
#include "queue/queue.h"

namespace herald {

class LocalQueue final : public Queue {
 public:
  explicit LocalQueue(QueueOptions options);
  LocalQueue(const LocalQueue&) = delete;
  LocalQueue& operator=(const LocalQueue&) = delete;

  QueueOrder order() const override { return QueueOrder::kStrictEdf; }
  std::chrono::milliseconds lease_time() const override { return {}; }
  bool outlives_process() const override { return false; }
  Status Push(std::vector<DeliveryJob> jobs) override;
  Result<std::vector<Lease>> Take(size_t max, std::chrono::milliseconds wait) override;
  Status Ack(std::span<const Lease> leases) override;
  Status Retry(const Lease& lease, UnixMillis not_before) override;
  Status Extend(std::span<const Lease> leases) override;
  QueueStats Stats() const override;
  void SetLimits(QueueOptions options) override;
  void Close() override;

 private:
  static constexpr size_t kChannels = std::size(kAllChannels);

  // A due job in 40 bytes, less what its lane knows (tenant, channel).
  struct Entry {
    int64_t delivery;
    int64_t notification;
    UnixMillis deadline;
    uint64_t rank;       // RankOf(): priority and enqueue order, the ties of a deadline
    uint64_t start_try;  // not_before (48 bits, signed) << 16 | attempt
    bool operator<(const Entry& o) const {
      return deadline != o.deadline ? deadline < o.deadline : rank < o.rank;
    }
  };
  struct Lane;
  // Where a lane stands in its channel's index: the order of its head job.
  struct LaneKey {
    UnixMillis deadline;
    uint64_t rank;
    Lane* lane;
    bool operator<(const LaneKey& o) const {
      return deadline != o.deadline ? deadline < o.deadline : rank < o.rank;
    }
  };
  struct Tenant;
  struct Lane {
    std::deque<Entry> run;    // in order: each entry no earlier than the one before
    std::vector<Entry> heap;  // std::push_heap order, the next job at the front
    Tenant* tenant = nullptr;
    int64_t tenant_key = 0;
    Channel channel = Channel::kEmail;
    bool indexed = false;  // whether `key` is in its channel's index
    LaneKey key{};
  };
  struct Tenant {
    size_t in_flight = 0;
    std::array<Lane, kChannels> lanes;
  };
  struct Delayed {
    DeliveryJob job;
    uint64_t rank;
  };
  struct InFlight {
    int64_t tenant;
    Channel channel;
    uint64_t token;  // the lease's: an older lease of the same job (given back) frees nothing
  };
  // What a change to the queue asks of the waiting takers.
  enum class Wake { kNone, kOne, kAll };

  // All below with mu_ held.
  Wake AddLocked(const DeliveryJob& job, UnixMillis now);
  void ToLaneLocked(const DeliveryJob& job, uint64_t rank);
  void PromoteDueLocked(UnixMillis now);
  void ReindexLocked(Lane& lane);
  Lane* NextLaneLocked();
  static bool Empty(const Lane& lane) { return lane.run.empty() && lane.heap.empty(); }
  static bool HeadInRun(const Lane& lane);  // whether the lane's next job is the run's front
  static const Entry& Head(const Lane& lane) {
    return HeadInRun(lane) ? lane.run.front() : lane.heap.front();
  }
  Lease TakeFromLocked(Lane& lane);
  bool ReleaseLocked(const Lease& lease);
  bool TenantOpen(const Tenant& t) const;
  bool ChannelOpen(size_t channel) const;
  void Notify(Wake wake);

  QueueOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
  uint64_t next_seq_ = 0;                        // counts pushes: enqueue order
  uint64_t next_token_ = 0;                      // counts takes: lease tokens
  std::unordered_map<int64_t, Tenant> tenants_;  // node-based: Lane and Tenant pointers stay
  std::array<std::set<LaneKey>, kChannels> ready_;
  std::array<size_t, kChannels> channel_in_flight_{};
  std::vector<Delayed> timers_;  // heap, the earliest not_before at the front
  FlatKeySet queued_;            // delivery keys in lanes or timers_
  std::unordered_map<int64_t, InFlight> in_flight_;
};

}  // namespace herald

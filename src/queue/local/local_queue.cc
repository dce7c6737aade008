#include "queue/local/local_queue.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "common/clock.h"

namespace herald {
namespace {

// Heap comparator: true when `a` goes after `b`, so the heap's front is the next to go.
struct After {
  template <typename T>
  bool operator()(const T& a, const T& b) const {
    return b < a;
  }
};
struct DelayedAfter {
  template <typename D>
  bool operator()(const D& a, const D& b) const {
    if (a.job.not_before != b.job.not_before) return a.job.not_before > b.job.not_before;
    return a.rank > b.rank;
  }
};

// Orders the jobs of one deadline: higher priority first, then enqueue order. 56 bits of
// sequence outlast any process (2^56 pushes at ten million a second take 228 years).
uint64_t RankOf(uint8_t priority, uint64_t seq) {
  return static_cast<uint64_t>(255 - priority) << 56 | (seq & ((uint64_t{1} << 56) - 1));
}
uint8_t PriorityOf(uint64_t rank) { return static_cast<uint8_t>(255 - (rank >> 56)); }

// not_before and attempt in one word. A due job's not_before is in the past; it is kept to 48
// bits (about 4000 years either side of 1970), so an absurd one comes back clamped.
constexpr int64_t kMaxNotBefore = (int64_t{1} << 47) - 1;
uint64_t PackStartTry(UnixMillis not_before, uint16_t attempt) {
  const int64_t nb = std::clamp<int64_t>(not_before, -kMaxNotBefore - 1, kMaxNotBefore);
  return static_cast<uint64_t>(nb) << 16 | attempt;
}
UnixMillis NotBeforeOf(uint64_t start_try) { return static_cast<int64_t>(start_try) >> 16; }
uint16_t AttemptOf(uint64_t start_try) { return static_cast<uint16_t>(start_try & 0xffff); }

// Heaps grow by a quarter, not double: less memory idle in a large queue, for a few more copies.
template <typename T>
void PushGrowingSlowly(std::vector<T>& v, const T& item) {
  if (v.size() == v.capacity()) v.reserve(v.capacity() + v.capacity() / 4 + 16);
  v.push_back(item);
}

// A heap drained after a flood gives its memory back, a little at a time.
template <typename T>
void ShrinkIfSparse(std::vector<T>& v) {
  if (v.capacity() > 1024 && v.size() < v.capacity() / 4) v.shrink_to_fit();
}

Error Closed() {
  return MakeError(ErrorKind::kUnavailable, "queue_closed",
                   "The queue is closed (the process is shutting down); nothing was queued.");
}

}  // namespace

std::unique_ptr<Queue> MakeLocalQueue(QueueOptions options) {
  return std::make_unique<LocalQueue>(options);
}

Result<int64_t> RebuildLocalQueue(Queue& queue, const UnfinishedJobs& list) {
  int64_t after = 0;
  int64_t total = 0;
  for (;;) {
    Result<std::vector<DeliveryJob>> jobs = list(after, 10'000);
    if (!jobs.ok()) return jobs.take_error();
    if (jobs->empty()) return total;
    after = jobs->back().delivery;
    total += static_cast<int64_t>(jobs->size());
    if (Status pushed = queue.Push(std::move(*jobs)); !pushed.ok()) return pushed.error();
  }
}

LocalQueue::LocalQueue(QueueOptions options) : options_(options) {}

Status LocalQueue::Push(std::vector<DeliveryJob> jobs) {
  Wake wake = Wake::kNone;
  {
    std::lock_guard lock(mu_);
    if (closed_) return Closed();
    const UnixMillis now = NowMillis();
    for (const DeliveryJob& job : jobs) wake = std::max(wake, AddLocked(job, now));
  }
  Notify(wake);
  return Status::Ok();
}

Result<std::vector<Lease>> LocalQueue::Take(size_t max, std::chrono::milliseconds wait) {
  std::vector<Lease> out;
  if (max == 0) return out;
  // Clamped so that the clock arithmetic below cannot overflow (a wait of milliseconds::max()).
  constexpr std::chrono::milliseconds kLongestWait = std::chrono::hours(24 * 365);
  const auto wait_end = std::chrono::steady_clock::now() +
                        std::clamp(wait, std::chrono::milliseconds(0), kLongestWait);
  std::unique_lock lock(mu_);
  while (!closed_) {
    PromoteDueLocked(NowMillis());
    for (Lane* lane = NextLaneLocked(); lane != nullptr && out.size() < max;
         lane = NextLaneLocked()) {
      if (out.empty()) out.reserve(std::min(max, queued_.size() + 1));
      out.push_back(TakeFromLocked(*lane));
    }
    if (!out.empty()) {
      // Jobs left that this taker could not carry are for the next waiting one.
      if (NextLaneLocked() != nullptr) cv_.notify_one();
      return out;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= wait_end) break;
    auto until = wait_end;
    if (!timers_.empty()) {  // wake when the earliest delayed job is due, if that is sooner
      const int64_t due_in = timers_.front().job.not_before - NowMillis();
      const int64_t left =
          std::chrono::duration_cast<std::chrono::milliseconds>(wait_end - now).count();
      if (due_in < left) until = now + std::chrono::milliseconds(std::max<int64_t>(due_in, 0));
    }
    cv_.wait_until(lock, until);
  }
  return out;
}

Status LocalQueue::Ack(std::span<const Lease> leases) {
  size_t released = 0;
  {
    std::lock_guard lock(mu_);
    for (const Lease& lease : leases) released += ReleaseLocked(lease) ? 1 : 0;
  }
  if (released > 1) {
    Notify(Wake::kAll);
  } else if (released == 1) {
    Notify(Wake::kOne);
  }
  return Status::Ok();
}

Status LocalQueue::Retry(const Lease& lease, UnixMillis not_before) {
  Wake wake = Wake::kNone;
  {
    std::lock_guard lock(mu_);
    if (!ReleaseLocked(lease)) return Status::Ok();  // not held: changes nothing
    wake = Wake::kOne;
    if (!closed_) {
      DeliveryJob again = lease.job;
      again.not_before = not_before;
      again.attempt = static_cast<uint16_t>(again.attempt + 1);
      wake = std::max(wake, AddLocked(again, NowMillis()));
    }
  }
  Notify(wake);
  return Status::Ok();
}

Status LocalQueue::Extend(std::span<const Lease> /*leases*/) {
  return Status::Ok();  // leases do not expire here
}

QueueStats LocalQueue::Stats() const {
  std::lock_guard lock(mu_);
  QueueStats s;
  s.queued = queued_.size();
  s.delayed = timers_.size();
  s.in_flight = in_flight_.size();
  s.at = NowMillis();
  return s;
}

void LocalQueue::SetLimits(QueueOptions options) {
  {
    std::lock_guard lock(mu_);
    if (options.max_in_flight_per_tenant == options_.max_in_flight_per_tenant &&
        options.max_in_flight_per_channel == options_.max_in_flight_per_channel) {
      return;
    }
    options_ = options;
    for (auto& [key, tenant] : tenants_) {
      for (Lane& lane : tenant.lanes) ReindexLocked(lane);
    }
  }
  Notify(Wake::kAll);  // a raised limit may free jobs for every waiting taker
}

void LocalQueue::Close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  Notify(Wake::kAll);
}

LocalQueue::Wake LocalQueue::AddLocked(const DeliveryJob& job, UnixMillis now) {
  if (static_cast<size_t>(job.channel) >= kChannels) return Wake::kNone;
  if (in_flight_.contains(job.delivery) || !queued_.insert(job.delivery)) return Wake::kNone;
  const uint64_t rank = RankOf(job.priority, next_seq_++);
  if (job.not_before <= now) {
    ToLaneLocked(job, rank);
    return Wake::kOne;
  }
  // Takers sleep until the earliest delayed job; one due sooner must wake them to sleep less.
  const bool sooner = timers_.empty() || job.not_before < timers_.front().job.not_before;
  PushGrowingSlowly(timers_, Delayed{job, rank});
  std::push_heap(timers_.begin(), timers_.end(), DelayedAfter{});
  return sooner ? Wake::kAll : Wake::kNone;
}

void LocalQueue::ToLaneLocked(const DeliveryJob& job, uint64_t rank) {
  const size_t c = static_cast<size_t>(job.channel);
  auto [it, created] = tenants_.try_emplace(job.tenant);
  Tenant& tenant = it->second;
  Lane& lane = tenant.lanes[c];
  if (created) {
    for (size_t i = 0; i < kChannels; ++i) {
      tenant.lanes[i].tenant = &tenant;
      tenant.lanes[i].tenant_key = job.tenant;
      tenant.lanes[i].channel = kAllChannels[i];
    }
  }
  const Entry entry{job.delivery, job.notification, job.deadline, rank,
                    PackStartTry(job.not_before, job.attempt)};
  if (lane.run.empty() || !(entry < lane.run.back())) {
    lane.run.push_back(entry);
  } else {
    PushGrowingSlowly(lane.heap, entry);
    std::push_heap(lane.heap.begin(), lane.heap.end(), After{});
  }
  if (!lane.indexed || Head(lane).rank == rank) ReindexLocked(lane);
}

void LocalQueue::PromoteDueLocked(UnixMillis now) {
  while (!timers_.empty() && timers_.front().job.not_before <= now) {
    std::pop_heap(timers_.begin(), timers_.end(), DelayedAfter{});
    const Delayed due = timers_.back();
    timers_.pop_back();
    ToLaneLocked(due.job, due.rank);
  }
  ShrinkIfSparse(timers_);
}

void LocalQueue::ReindexLocked(Lane& lane) {
  std::set<LaneKey>& index = ready_[static_cast<size_t>(lane.channel)];
  const bool wanted = !Empty(lane) && TenantOpen(*lane.tenant);
  if (!wanted) {
    if (lane.indexed) index.erase(lane.key);
    lane.indexed = false;
    return;
  }
  const Entry& head = Head(lane);
  const LaneKey key{head.deadline, head.rank, &lane};
  if (lane.indexed) {
    // Re-key the node in place: no allocation on the hot path.
    auto node = index.extract(lane.key);
    node.value() = key;
    index.insert(std::move(node));
  } else {
    index.insert(key);
  }
  lane.key = key;
  lane.indexed = true;
}

LocalQueue::Lane* LocalQueue::NextLaneLocked() {
  Lane* best = nullptr;
  for (size_t c = 0; c < kChannels; ++c) {
    if (ready_[c].empty() || !ChannelOpen(c)) continue;
    const LaneKey& head = *ready_[c].begin();
    if (best == nullptr || head < best->key) best = head.lane;
  }
  return best;
}

bool LocalQueue::HeadInRun(const Lane& lane) {
  if (lane.run.empty()) return false;
  return lane.heap.empty() || !(lane.heap.front() < lane.run.front());
}

Lease LocalQueue::TakeFromLocked(Lane& lane) {
  Entry e;
  if (HeadInRun(lane)) {
    e = lane.run.front();
    lane.run.pop_front();
  } else {
    std::pop_heap(lane.heap.begin(), lane.heap.end(), After{});
    e = lane.heap.back();
    lane.heap.pop_back();
    ShrinkIfSparse(lane.heap);
  }

  Tenant& tenant = *lane.tenant;
  ++tenant.in_flight;
  ++channel_in_flight_[static_cast<size_t>(lane.channel)];
  queued_.erase(e.delivery);
  const uint64_t token = ++next_token_;
  in_flight_.emplace(e.delivery, InFlight{lane.tenant_key, lane.channel, token});
  if (TenantOpen(tenant)) {
    ReindexLocked(lane);
  } else {
    for (Lane& l : tenant.lanes) ReindexLocked(l);  // at its limit: out of every index
  }
  return Lease{
      DeliveryJob{e.delivery, e.notification, lane.tenant_key, e.deadline, NotBeforeOf(e.start_try),
                  lane.channel, PriorityOf(e.rank), AttemptOf(e.start_try)},
      token};
}

bool LocalQueue::ReleaseLocked(const Lease& lease) {
  auto it = in_flight_.find(lease.job.delivery);
  if (it == in_flight_.end() || it->second.token != lease.token) return false;
  const InFlight job = it->second;
  in_flight_.erase(it);
  --channel_in_flight_[static_cast<size_t>(job.channel)];
  Tenant& tenant = tenants_.at(job.tenant);
  const bool was_open = TenantOpen(tenant);
  --tenant.in_flight;
  if (!was_open) {
    for (Lane& l : tenant.lanes) ReindexLocked(l);  // back under its limit: back in the indexes
  }
  return true;
}

bool LocalQueue::TenantOpen(const Tenant& t) const {
  return options_.max_in_flight_per_tenant == 0 || t.in_flight < options_.max_in_flight_per_tenant;
}

bool LocalQueue::ChannelOpen(size_t channel) const {
  return options_.max_in_flight_per_channel == 0 ||
         channel_in_flight_[channel] < options_.max_in_flight_per_channel;
}

void LocalQueue::Notify(Wake wake) {
  if (wake == Wake::kOne) cv_.notify_one();
  if (wake == Wake::kAll) cv_.notify_all();
}

}  // namespace herald

// The dispatcher: takes due delivery jobs from the queue (earliest deadline first), checks at
// the moment of sending that the delivery may still go out (DESIGN §4.2: the user exists, is
// opted in and inside the consent window, the device still exists) — otherwise it ends
// `suppressed` with the reason — and sends it through the tenant channel's ProviderRouter. It
// records every state change as an event (dispatched, sent, retrying, failed, suppressed,
// expired), disables devices the provider calls invalid, and schedules retries on the queue
// (Retry-After honoured, exponential backoff with full jitter) until the deadline, then
// `expired`.
//
// Thread-safety: Start/Stop from one thread. Its worker threads take and load jobs; provider
// completions arrive on the HTTP client's thread and only record and re-queue (quick).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <span>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "observe/metrics.h"
#include "pipeline/concurrency_limit.h"
#include "pipeline/provider_directory.h"
#include "providers/retry_policy.h"
#include "queue/queue.h"
#include "store/store.h"

namespace herald {

struct DispatcherOptions {
  size_t batch = 256;  // jobs taken and loaded at once
  int workers = 4;     // threads taking from the queue (they block on the store)
  providers::RetryOptions retry;
  // Provider sends outstanding at once, over all tenants: the adaptive limit (see
  // concurrency_limit.h) moves between min_in_flight and max_in_flight.
  size_t max_in_flight = 4096;
  size_t min_in_flight = 48;
  // Fairness: one tenant may hold at most this share of the in-flight limit, so that another
  // tenant's deliveries still move while one tenant's flood fills the queue (0 = no cap).
  double tenant_share = 0.75;
};

class Dispatcher {
 public:
  Dispatcher(Store* store, Queue* queue, ProviderDirectory* providers, observe::Registry* metrics,
             DispatcherOptions options = {});
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  void Start();
  // Stops taking jobs, waits up to `grace` for the sends in flight to complete, and writes every
  // recorded state change. What was not taken stays queued in the store for the next start.
  void Stop(std::chrono::milliseconds grace);

  // Sends outstanding at the providers, and the limit on them: the adaptive one, or 0.25% of the
  // queued jobs (up to 1024) when that is more, never above max_in_flight.
  size_t in_flight() const { return in_flight_.load(); }
  size_t in_flight_limit() const;

 private:
  size_t LimitFor(size_t queued) const;  // in_flight_limit() for a queue holding `queued`
  // Leases whose outcomes wait for the store: acknowledged once committed, or given back.
  struct Settlement {
    std::vector<Lease> acks;
    std::vector<std::pair<Lease, UnixMillis>> retries;  // with when they are due again
  };
  struct HeldLease {
    Lease lease;
    std::chrono::steady_clock::time_point since;  // taken or last extended
  };

  void Run();
  void Dispatch(std::vector<Lease> leases);
  void OnOutcome(const Lease& lease, int attempt, UnixMillis dispatched_at,
                 const providers::RouteOutcome& outcome);
  // Records the change; the job leaves the queue once the change is committed.
  void Finish(const Lease& lease, DeliveryUpdate update);
  // Records the change; with `settles`, the lease is acknowledged (retry_at 0) or given back,
  // due at retry_at, once the change is committed.
  void Record(DeliveryUpdate update, const Lease* settles = nullptr, UnixMillis retry_at = 0);
  // Tells the queue: `acks` are over, `retries` go again at retry_at.
  void Settle(std::span<const Lease> acks, std::span<const Lease> retries, UnixMillis retry_at);
  // On a queue whose leases expire: the leases held, extended while their work goes on.
  void Hold(std::span<const Lease> leases);
  void Unhold(std::span<const Lease> leases);
  void ExtendHeldLeases();
  // Hands the recorded changes to the store: all of them when forced, else only once there are
  // enough of them or the oldest has waited long enough.
  void FlushUpdates(bool force = true);
  void SendDone();

  Store* store_;
  Queue* queue_;
  ProviderDirectory* providers_;
  DispatcherOptions options_;
  providers::RetryPolicy retry_;
  observe::Registry* metrics_;
  observe::Histogram& send_latency_;
  observe::Gauge& limit_gauge_;
  ConcurrencyLimit limit_;
  std::array<observe::Counter*, kDeliveryStatusCount> stage_counters_{};

  observe::Counter& take_failures_;
  observe::Counter& settle_failures_;
  observe::Counter& store_failures_;
  observe::Counter& gone_jobs_;

  std::mutex updates_mu_;
  std::vector<DeliveryUpdate> updates_;
  Settlement settle_;                                    // the leases updates_ settle
  std::chrono::steady_clock::time_point oldest_update_;  // when updates_ got its first change

  std::atomic<bool> stopping_{false};
  std::atomic<size_t> in_flight_{0};
  std::atomic<size_t> unrecorded_{0};     // changes handed to the store, not yet committed
  std::atomic<size_t> applied_limit_{0};  // the per-tenant cap last given to the queue
  std::mutex held_mu_;
  std::unordered_map<uint64_t, HeldLease> held_;  // by token
  std::chrono::steady_clock::time_point last_extend_{};
  std::mutex idle_mu_;
  std::condition_variable idle_cv_;
  std::vector<std::thread> workers_;
};

}  // namespace herald

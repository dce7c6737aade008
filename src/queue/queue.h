// The delivery queue: jobs with deadlines, taken earliest-deadline-first across tenants, with
// fairness between tenants, per-channel concurrency limits and delayed retry. This interface is
// all the pipeline knows of queueing; backends live behind it (local/: in process, its durable
// state is the store's deliveries table, rebuilt at start; jetstream/: NATS JetStream streams)
// and pass one conformance suite (src/queue/queue_conformance*_test.cc).
//
// Contract for every backend:
//  - Thread-safe: any thread may call any method concurrently.
//  - Calls that can fail (a remote backend's node or network) return a Status: Push fails as a
//    whole or not at all as far as the caller knows (a failed Push may have queued some jobs;
//    pushing them again is harmless, see de-duplication).
//  - A taken job is a Lease: the job and an opaque token. The job stays "in flight", counted
//    against the limits and handed to no other taker, until the lease is acknowledged (Ack),
//    given back (Retry) or, on a backend whose leases expire (lease_time() > 0), not extended
//    (Extend) within lease_time() — then the job is handed out again. Ack, Retry and Extend of a
//    lease that is no longer held change nothing.
//  - The caller acknowledges a job only once its outcome is durable in the store: a process that
//    dies in between leaves the job to be taken again (at-least-once).
//  - Order (see QueueOrder): among due jobs (not_before <= now), a tenant or channel at its
//    in-flight limit is passed over (its jobs wait, others go).
//  - De-duplication: a job pushed again while it is queued or in flight is ignored, so that a
//    rebuild after a restart may overlap a fan-out that is resuming and a Push retried after a
//    timeout queues nothing twice. The local backend knows a job by its delivery key; JetStream by
//    delivery key and attempt, within its duplicate window. A job taken again after all (a lease
//    that expired, a duplicate past the window) is the dispatcher's to spot: it reads the
//    delivery's status from the store before sending.
//  - Take() hands jobs back as they were pushed (or retried).
//  - Close() wakes every Take(), which then return empty; Push after Close fails.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "common/result.h"
#include "model/notification.h"

namespace herald {

// The order a backend guarantees among due jobs that no limit holds back.
enum class QueueOrder {
  // The earliest deadline is taken first; priority breaks deadline ties (higher first), then
  // enqueue order. The local backend.
  kStrictEdf,
  // Jobs are grouped into deadline classes (minutes wide); an earlier class is taken before a
  // later one, within a class in arrival order per tenant, tenants in turn. A remote backend
  // that keeps no global order (JetStream 2.9 has no priorities).
  kEdfByDeadlineClass,
};

struct QueueOptions {
  // At most this many jobs of one channel in flight at once (provider concurrency); 0 = no limit.
  size_t max_in_flight_per_channel = 0;
  // At most this many jobs of one tenant in flight at once, so that one tenant's flood leaves
  // room for the others; 0 = no limit.
  size_t max_in_flight_per_tenant = 0;
};

// A taken job and the backend's acknowledgement token (meaningless to the caller).
struct Lease {
  DeliveryJob job;
  uint64_t token = 0;
};

// What the queue holds, as of `at`: exact for the local backend, a snapshot at most about a
// second old for a remote one (reading it is cheap either way; callers may read it every round).
struct QueueStats {
  size_t queued = 0;     // due or delayed, not in flight (over every process, where known)
  size_t delayed = 0;    // of those, not yet due
  size_t in_flight = 0;  // leases this process holds
  UnixMillis at = 0;
};

class Queue {
 public:
  virtual ~Queue() = default;

  virtual QueueOrder order() const = 0;
  // How long a lease lasts unless extended; zero when leases never expire (the local backend,
  // whose leases end with the process).
  virtual std::chrono::milliseconds lease_time() const = 0;
  // Whether the queued jobs outlive this process (JetStream) or are rebuilt from the store at the
  // next start (the local backend). A fan-out pushes to the first kind before its page commits.
  virtual bool outlives_process() const = 0;

  // Adds jobs durably: when it returns Ok every job will be handed out (or was a duplicate).
  virtual Status Push(std::vector<DeliveryJob> jobs) = 0;

  // Takes up to `max` due jobs in the backend's order, waiting up to `wait` for the first one.
  // Returns fewer (or none) when no more are due or limits hold the rest back.
  virtual Result<std::vector<Lease>> Take(size_t max, std::chrono::milliseconds wait) = 0;

  // The jobs' outcomes are durable (sent, failed, suppressed, ...): they leave the queue and
  // free their in-flight slots. Not waited for on a remote backend (as Retry).
  virtual Status Ack(std::span<const Lease> leases) = 0;

  // Frees the job's in-flight slot and queues it again, due at `not_before`, with an attempt one
  // more than it was taken with (a backend that cannot rewrite a queued job, JetStream, counts
  // its redeliveries). Not waited for on a remote backend: it may be called from a store thread.
  virtual Status Retry(const Lease& lease, UnixMillis not_before) = 0;

  // The work on these jobs goes on (a slow provider): their leases start over.
  virtual Status Extend(std::span<const Lease> leases) = 0;

  virtual QueueStats Stats() const = 0;

  // Changes the in-flight limits (0 = none), e.g. to follow the dispatcher's adaptive limit.
  // Jobs already in flight stay; a tenant or channel now over its limit is passed over until
  // enough of its jobs are done.
  virtual void SetLimits(QueueOptions options) = 0;

  virtual void Close() = 0;
};

std::unique_ptr<Queue> MakeLocalQueue(QueueOptions options);

// The local backend's durable state is the store's deliveries: at start, before anything is
// taken, every delivery the store holds as not yet terminal is pushed again. `list(after, limit)`
// gives them in key order after `after` (Store::ListUnfinishedDeliveries). Returns how many.
using UnfinishedJobs =
    std::function<Result<std::vector<DeliveryJob>>(int64_t after_delivery, int limit)>;
Result<int64_t> RebuildLocalQueue(Queue& queue, const UnfinishedJobs& list);

}  // namespace herald

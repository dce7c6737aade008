// The delivery queue: jobs with deadlines, taken earliest-deadline-first across tenants, with
// fairness between tenants, per-channel concurrency limits and delayed retry. This interface is
// all the pipeline knows of queueing; backends live behind it (local/: in process, its durable
// state is the store's deliveries table, rebuilt at start; later jetstream/) and pass one
// conformance suite (src/queue/queue_conformance_test.cc).
//
// Contract for every backend:
//  - Thread-safe: any thread may call any method concurrently.
//  - A taken job is "in flight" until Done() or Retry() is called for it with the same
//    delivery key; in-flight jobs count against the limits. A job is never handed to two takers
//    at once.
//  - Order: among due jobs (not_before <= now) the earliest deadline is taken first, except
//    that a tenant or channel at its in-flight limit is passed over (its jobs wait, others go).
//    Priority breaks deadline ties (higher first), then enqueue order.
//  - Take() hands jobs back as they were pushed (or retried).
//  - Done() or Retry() of a job that is not in flight frees nothing; Retry() still queues it.
//  - Close() wakes every Take(), which then return empty; Push after Close is ignored.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include "model/notification.h"

namespace herald {

struct QueueOptions {
  // At most this many jobs of one channel in flight at once (provider concurrency); 0 = no limit.
  size_t max_in_flight_per_channel = 0;
  // At most this many jobs of one tenant in flight at once, so that one tenant's flood leaves
  // room for the others; 0 = no limit.
  size_t max_in_flight_per_tenant = 0;
};

class Queue {
 public:
  virtual ~Queue() = default;

  // Adds jobs. A job whose delivery key is already queued or in flight is ignored (so a rebuild
  // after a restart may overlap a fan-out that is resuming).
  virtual void Push(std::vector<DeliveryJob> jobs) = 0;

  // Takes up to `max` due jobs in the order of the contract, waiting up to `wait` for the first
  // one. Returns fewer (or none) when no more are due or limits hold the rest back.
  virtual std::vector<DeliveryJob> Take(size_t max, std::chrono::milliseconds wait) = 0;

  // The job's work is over (sent, failed, suppressed, ...): frees its in-flight slot.
  virtual void Done(const DeliveryJob& job) = 0;

  // Frees the job's in-flight slot and queues it again, due at job.not_before.
  virtual void Retry(DeliveryJob job) = 0;

  // Jobs queued (due or delayed), not counting those in flight.
  virtual size_t queued() const = 0;
  virtual size_t in_flight() const = 0;

  // Changes the in-flight limits (0 = none), e.g. to follow the dispatcher's adaptive limit.
  // Jobs already in flight stay; a tenant or channel now over its limit is passed over until
  // enough of its jobs are done.
  virtual void SetLimits(QueueOptions options) = 0;

  virtual void Close() = 0;
};

std::unique_ptr<Queue> MakeLocalQueue(QueueOptions options);

}  // namespace herald

// The JetStream queue backend (issue 10): delivery jobs in a replicated, file-backed NATS
// JetStream stream shared by every dispatch process, behind the Queue contract (queue.h).
//
// Shape (docs/architecture.md, "The JetStream queue"):
//  - One WorkQueue stream (R3 by default, file storage, a de-duplication window). A job's
//    subject is <prefix>.c<class>.s<shard>: the class is its deadline's slot on a ring of
//    `classes` slots `class_width` wide (16 x 4 min: an hour, more than any deadline is ahead),
//    the shard its tenant's (tenant key mod `shards`). Each subject has one durable pull consumer
//    that every process shares; a message is handed to one of them at a time.
//  - The publish carries `Nats-Msg-Id` = delivery and attempt, so a Push retried after a timeout
//    queues nothing twice.
//  - Take fetches from the consumers in deadline-class order (the classes whose deadlines are
//    nearest first, starting a quarter of the ring in the past so that overdue jobs go first),
//    shards in turn, into a small in-process stage — a local queue — that orders what was fetched
//    strictly by deadline and applies the per-tenant and per-channel limits. A consumer whose
//    jobs wait in the stage held back by a limit is passed over for the next, so one tenant's
//    flood in a shard leaves the other shards' jobs moving.
//  - A lease is the message's: Ack acknowledges it, Retry is NakWithDelay (the server redelivers
//    at the time; the attempt is the published one plus the redeliveries), Extend is InProgress.
//    A message not acknowledged within ack_wait goes to another taker. Jobs past their deadline
//    are acknowledged by the dispatcher like any other outcome, once their `expired` is stored.
//  - A Push rings a plain NATS subject (<prefix>.bell) so that every process's waiting takers
//    look at once; otherwise a consumer found empty is looked at again after 200 ms.
//
// Order (QueueOrder::kEdfByDeadlineClass): a job of an earlier class goes before a job of a
// later one when both are in the stream; within a class and shard in arrival order; what a
// process has fetched, strictly by deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "queue/queue.h"

namespace herald {

struct JetStreamQueueOptions {
  // Comma-separated server URLs, e.g. "nats://127.0.0.1:4222,nats://127.0.0.1:4223".
  std::string urls;
  std::string stream = "HERALD_JOBS";  // also, lowercased, the subjects' prefix
  int replicas = 3;
  int classes = 16;
  std::chrono::minutes class_width{4};
  int shards = 2;
  std::chrono::milliseconds ack_wait{30'000};  // lease_time()
  int64_t max_ack_pending = 20'000;            // per consumer, over every process
  std::chrono::milliseconds duplicate_window{120'000};
  std::chrono::milliseconds request_timeout{5'000};  // JetStream API calls and publish acks
  size_t stage_target = 1024;                        // jobs fetched ahead into the stage, at most
  // Tests: empty the stream when the queue is destroyed, for the next test's queue, and put
  // this before every message id, since the server remembers the ids of a purged stream for the
  // duplicate window (the next test's delivery 1 would be a "duplicate").
  bool purge_on_close = false;
  std::string message_id_prefix;
};

// Connects, creates the stream and its consumers when absent (and refuses a stream created
// earlier with other settings, saying which), and binds the pull subscriptions. Fails with
// kUnavailable and a sentence naming the URLs when the cluster cannot be reached or has no
// JetStream quorum.
Result<std::unique_ptr<Queue>> OpenJetStreamQueue(const JetStreamQueueOptions& options,
                                                  QueueOptions limits = {});

}  // namespace herald

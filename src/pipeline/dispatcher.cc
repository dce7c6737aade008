#include "pipeline/dispatcher.h"

#include <pthread.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>

#include "observe/log.h"

namespace herald {
namespace {

// Recorded changes are handed to the store 64 at a time, or once the oldest waited 2 ms: every
// store transaction has a fixed cost (locks, a WAL frame per page touched), and a broadcast's
// outcomes arrive a few at a time.
constexpr size_t kFlushAt = 64;
constexpr auto kFlushAge = std::chrono::milliseconds(2);
constexpr size_t kMinTake = 16;  // fewer jobs than this from a non-empty queue: wait 1 ms
// Recorded changes handed to the store and not yet committed, above which no work is taken:
// 0.25% of the jobs waiting in the queue (1 / kQueueShare), within these bounds.
constexpr size_t kQueueShare = 400;
constexpr size_t kMinUnrecorded = 32;
constexpr size_t kMaxUnrecorded = 2048;
// The same share of the queue is the least the in-flight limit goes down to (up to this many).
constexpr size_t kMaxQueueFloor = 1024;
// How many times a job whose delivery is not (yet) in the store goes back to the queue before it
// is dropped.
constexpr int kNotFoundLooks = 3;

// Events never hold PII (DESIGN §4.5), but providers echo addresses in their answers (an SMTP
// server's "550 5.1.1 <ann@example.com>: user unknown"). A reason keeps the provider's codes and
// words; anything that looks like an e-mail address, a phone number or a device token goes.
std::string ScrubReason(std::string_view text) {
  std::string out;
  size_t i = 0;
  while (i < text.size() && out.size() < 240) {
    size_t end = i;
    while (end < text.size() && text[end] != ' ') ++end;
    std::string_view word = text.substr(i, end - i);
    size_t digits = 0;
    size_t hex = 0;
    for (char c : word) {
      digits += std::isdigit(static_cast<unsigned char>(c)) != 0;
      hex += std::isxdigit(static_cast<unsigned char>(c)) != 0;
    }
    if (word.find('@') != std::string_view::npos) {
      out += "<address>";
    } else if (digits >= 7 || hex >= 32) {
      out += "<number>";
    } else {
      out += word;
    }
    if (end < text.size()) out.push_back(' ');
    i = end + 1;
  }
  return out;
}

std::string ReasonOf(const providers::SendResult& r) {
  std::string reason(providers::ToString(r.outcome));
  if (!r.reason.empty()) reason += ": " + ScrubReason(r.reason);
  return reason;
}

}  // namespace

Dispatcher::Dispatcher(Store* store, Queue* queue, ProviderDirectory* providers,
                       observe::Registry* metrics, DispatcherOptions options)
    : store_(store),
      queue_(queue),
      providers_(providers),
      options_(options),
      retry_(options.retry),
      metrics_(metrics),
      send_latency_(metrics->GetHistogram(
          "herald_delivery_accept_to_provider_seconds",
          "From the notification's acceptance to the provider's acceptance of a delivery",
          {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,  1,   2.5,
           5,     10,     20,    30,   60,    120,  300, 600,  1200, 1800})),
      limit_gauge_(metrics->GetGauge("herald_dispatch_in_flight_limit",
                                     "The adaptive limit on provider sends in flight")),
      limit_(ConcurrencyLimitOptions{.initial = std::min<size_t>(64, options.max_in_flight),
                                     .min = options.min_in_flight,
                                     .max = options.max_in_flight}),
      take_failures_(metrics->GetCounter(
          "herald_queue_errors_total", "Queue calls that failed, by operation", {{"op", "take"}})),
      settle_failures_(metrics->GetCounter("herald_queue_errors_total",
                                           "Queue calls that failed, by operation",
                                           {{"op", "settle"}})),
      store_failures_(metrics->GetCounter(
          "herald_dispatch_unrecorded_outcomes_total",
          "Write batches of outcomes the store gave up on (their jobs were sent again)")),
      gone_jobs_(metrics->GetCounter("herald_dispatch_jobs_dropped_total",
                                     "Queue jobs dropped without a send, by reason",
                                     {{"reason", "delivery_not_found"}})) {
  for (DeliveryStatus s : kAllDeliveryStatuses) {
    stage_counters_[static_cast<size_t>(s)] = &metrics_->GetCounter(
        "herald_delivery_events_total", "Delivery state changes recorded, by stage",
        {{"stage", std::string(ToString(s))}});
  }
}

Dispatcher::~Dispatcher() { Stop(std::chrono::milliseconds(0)); }

void Dispatcher::Start() {
  stopping_ = false;
  for (int i = 0; i < std::max(1, options_.workers); ++i) {
    workers_.emplace_back([this] { Run(); });
  }
}

void Dispatcher::Stop(std::chrono::milliseconds grace) {
  if (workers_.empty()) return;
  stopping_ = true;
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  {
    std::unique_lock lock(idle_mu_);
    idle_cv_.wait_for(lock, grace, [this] { return in_flight_.load() == 0; });
  }
  FlushUpdates();
  (void)store_->Flush();
}

void Dispatcher::Run() {
  pthread_setname_np(pthread_self(), "dispatcher");
  while (!stopping_) {
    const size_t queued = queue_->Stats().queued;  // once a round: it takes the queue's lock
    ExtendHeldLeases();
    const size_t limit = LimitFor(queued);
    limit_gauge_.Set(static_cast<int64_t>(limit));
    // Outcomes the store has not committed yet are what a crash would send twice: take no more
    // work while too many of them wait for the writer. "Too many" is a small share of the work
    // waiting (0.25%, at least 32): a big send may risk a few hundred duplicates for throughput,
    // a small one only a few dozen.
    const size_t max_unrecorded =
        std::clamp<size_t>(queued / kQueueShare, kMinUnrecorded, kMaxUnrecorded);
    // Fairness: no tenant takes more than its share of the sends (told to the queue only when
    // it moves). A job's lease lasts until its outcome is committed, so the queue's count also
    // holds the outcomes waiting for the store (at most max_unrecorded, plus those gathering
    // for the next write and one batch taken meanwhile): they are allowed on top of the share.
    const size_t tenant_cap = std::max<size_t>(1, static_cast<size_t>(static_cast<double>(limit) *
                                                                      options_.tenant_share)) +
                              max_unrecorded + kFlushAt + options_.batch;
    if (options_.tenant_share > 0 && applied_limit_.exchange(tenant_cap) != tenant_cap) {
      QueueOptions q;
      q.max_in_flight_per_tenant = tenant_cap;
      queue_->SetLimits(q);
    }
    if (in_flight_.load() >= limit) {
      std::unique_lock lock(idle_mu_);
      idle_cv_.wait_for(lock, std::chrono::milliseconds(5),
                        [&] { return in_flight_.load() < limit; });
      FlushUpdates(/*force=*/false);
      continue;
    }
    const size_t room = limit - in_flight_.load();
    if (unrecorded_.load() >= max_unrecorded) {
      FlushUpdates(/*force=*/false);
      std::unique_lock lock(idle_mu_);
      idle_cv_.wait_for(lock, std::chrono::milliseconds(5),
                        [&] { return unrecorded_.load() < max_unrecorded; });
      continue;
    }
    Result<std::vector<Lease>> taken =
        queue_->Take(std::min(options_.batch, room), std::chrono::milliseconds(20));
    if (!taken.ok()) {  // a remote queue out of reach: nothing taken, try again shortly
      take_failures_.Inc();
      observe::Warn("dispatch_take_failed", {{"error", taken.error().code}});
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    const size_t got = taken->size();
    if (got > 0) Dispatch(std::move(*taken));
    FlushUpdates(/*force=*/false);
    // A few jobs while more wait means slots free up one at a time (at the in-flight limit or a
    // tenant's share of it): let them gather for a millisecond, so that the next take carries
    // a batch instead of each freed slot costing its own queue lock, store read and wake-up.
    if (got < kMinTake && queued > got) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

size_t Dispatcher::in_flight_limit() const { return LimitFor(queue_->Stats().queued); }

size_t Dispatcher::LimitFor(size_t queued) const {
  // The latency-based limit keeps provider queues short; on a machine whose cores the providers
  // (or the simulator) share, it reads CPU contention as queueing and settles at its minimum,
  // where small batches make every send dearer. A deep queue may keep 0.25% of itself in flight
  // whatever the latency: what a crash can send twice stays the same share as for outcomes
  // waiting for the writer (kMinUnrecorded..kMaxUnrecorded above).
  const size_t queue_floor = std::min<size_t>(queued / kQueueShare, kMaxQueueFloor);
  return std::min(options_.max_in_flight, std::max(limit_.limit(), queue_floor));
}

void Dispatcher::Dispatch(std::vector<Lease> leases) {
  std::vector<DeliveryJob> jobs;
  jobs.reserve(leases.size());
  for (const Lease& lease : leases) jobs.push_back(lease.job);
  Hold(leases);
  Result<std::vector<DispatchTarget>> targets = store_->LoadDispatchTargets(jobs);
  if (!targets.ok()) {
    // Storage trouble: give the jobs back for a little later, nothing was sent.
    observe::Log(observe::LogLevel::kWarn, "dispatch_load_failed",
                 {{"error", targets.error().code}});
    Settle({}, leases, NowMillis() + 500);
    return;
  }
  std::unordered_map<int64_t, const DispatchTarget*> by_key;
  for (const DispatchTarget& t : *targets) by_key.emplace(t.delivery, &t);
  const UnixMillis now = NowMillis();
  std::vector<Lease> nothing_to_do;  // acknowledged at once: there is nothing to record
  std::vector<Lease> not_yet;        // looked for again a little later
  for (const Lease& lease : leases) {
    const DeliveryJob& job = lease.job;
    auto found = by_key.find(job.delivery);
    if (found == by_key.end()) {
      // No such delivery. On a queue that outlives the process the fan-out pushes a page before
      // it commits, so the page may commit a moment from now: the job goes back for a second,
      // up to kNotFoundLooks times. Then (or on the local queue at once) the delivery never came
      // to be (its page was rolled back) or was erased with its user.
      if (queue_->outlives_process() && job.attempt < kNotFoundLooks) {
        not_yet.push_back(lease);
        continue;
      }
      gone_jobs_.Inc();
      observe::Info("dispatch_delivery_not_found",
                    {{"delivery", job.delivery}, {"attempt", job.attempt}});
      nothing_to_do.push_back(lease);
      continue;
    }
    const DispatchTarget& t = *found->second;
    if (IsTerminal(t.status)) {  // cancelled, or finished before a restart or on another taker
      nothing_to_do.push_back(lease);
      continue;
    }
    if (!t.suppress_reason.empty()) {
      Finish(lease, DeliveryUpdate{job.delivery, DeliveryStatus::kSuppressed, now, "", job.attempt,
                                   t.suppress_reason, "", false});
      continue;
    }
    if (now >= job.deadline) {
      Finish(lease, DeliveryUpdate{job.delivery, DeliveryStatus::kExpired, now, "", job.attempt,
                                   "deadline_passed", "", false});
      continue;
    }
    Result<std::shared_ptr<providers::ProviderRouter>> router =
        providers_->RouterFor(t.tenant_id, t.channel);
    if (!router.ok()) {
      Finish(lease, DeliveryUpdate{job.delivery, DeliveryStatus::kFailed, now, "", job.attempt,
                                   router.error().code, "", false});
      continue;
    }
    const int attempt = job.attempt + 1;
    // The attempt's `dispatched` event is written with its outcome, in one write (see
    // DeliveryUpdate::dispatched_at): a crash in between re-sends the delivery either way.
    providers::Message m;
    m.delivery_id = DeliveryIdOf(job.delivery);
    m.tenant_id = t.tenant_id;
    m.channel = t.channel;
    m.address = t.address;
    m.title = t.title;
    m.body = t.body;
    m.deadline = job.deadline;
    m.priority = job.priority;
    const UnixMillis accepted_at = t.accepted_at;
    const size_t in_flight_at_start = ++in_flight_;
    const auto sent_at = std::chrono::steady_clock::now();
    (*router)->Send(std::move(m), [this, lease, attempt, accepted_at, in_flight_at_start, sent_at,
                                   dispatched_at = now,
                                   keep = *router](const providers::RouteOutcome& outcome) {
      if (outcome.result.outcome == providers::Outcome::kAccepted) {
        send_latency_.Observe(static_cast<double>(NowMillis() - accepted_at) / 1000.0);
      }
      limit_.OnSample(
          lease.job.channel,
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent_at)
              .count(),
          in_flight_at_start);
      OnOutcome(lease, attempt, dispatched_at, outcome);
      SendDone();
    });
  }
  if (!nothing_to_do.empty()) Settle(nothing_to_do, {}, 0);
  if (!not_yet.empty()) Settle({}, not_yet, NowMillis() + 1'000);
}

void Dispatcher::OnOutcome(const Lease& lease, int attempt, UnixMillis dispatched_at,
                           const providers::RouteOutcome& outcome) {
  const DeliveryJob& job = lease.job;
  const providers::SendResult& r = outcome.result;
  const UnixMillis now = NowMillis();
  // Every change of this attempt; the first one also carries the attempt's `dispatched` event.
  auto update = [&](DeliveryStatus stage, const std::string& provider, std::string reason,
                    std::string message_id, bool disable) {
    DeliveryUpdate u{job.delivery,          stage,  now, provider, attempt, std::move(reason),
                     std::move(message_id), disable};
    u.dispatched_at = std::exchange(dispatched_at, 0);
    u.tenant = job.tenant;
    return u;
  };
  // Providers that failed before the last one answered: each hop of the failover is a step.
  for (size_t i = 0; i + 1 < outcome.trail.size(); ++i) {
    Record(update(DeliveryStatus::kRetrying, outcome.trail[i].provider,
                  "failover after " + ReasonOf(outcome.trail[i]), "", false));
  }
  switch (r.outcome) {
    case providers::Outcome::kAccepted:
      Finish(lease, update(DeliveryStatus::kSent, r.provider, "", r.provider_message_id, false));
      return;
    case providers::Outcome::kInvalidAddress:
      Finish(lease, update(DeliveryStatus::kFailed, r.provider, ReasonOf(r), "", true));
      return;
    case providers::Outcome::kRejected:
      Finish(lease, update(DeliveryStatus::kFailed, r.provider, ReasonOf(r), "", false));
      return;
    case providers::Outcome::kRetry:
    case providers::Outcome::kThrottled:
    case providers::Outcome::kAuthError: break;
  }
  std::optional<UnixMillis> next = retry_.NextAttempt(attempt, r.retry_after_ms, now, job.deadline);
  if (!next) {
    Finish(lease, update(DeliveryStatus::kExpired, r.provider,
                         "deadline_passed after " + ReasonOf(r), "", false));
    return;
  }
  // The queue gives the job back with attempt + 1 (this one), once the change is durable.
  Record(update(DeliveryStatus::kRetrying, r.provider, ReasonOf(r), "", false), &lease, *next);
}

void Dispatcher::Finish(const Lease& lease, DeliveryUpdate update) {
  update.tenant = lease.job.tenant;
  Record(std::move(update), &lease, 0);
}

void Dispatcher::Record(DeliveryUpdate update, const Lease* settles, UnixMillis retry_at) {
  if (update.dispatched_at != 0) {  // the attempt's dispatched event travels with this change
    stage_counters_[static_cast<size_t>(DeliveryStatus::kDispatched)]->Inc();
  }
  stage_counters_[static_cast<size_t>(update.stage)]->Inc();
  bool flush = false;
  {
    std::lock_guard lock(updates_mu_);
    if (updates_.empty()) oldest_update_ = std::chrono::steady_clock::now();
    updates_.push_back(std::move(update));
    if (settles != nullptr && retry_at == 0) settle_.acks.push_back(*settles);
    if (settles != nullptr && retry_at != 0) settle_.retries.emplace_back(*settles, retry_at);
    flush = updates_.size() >= kFlushAt;
  }
  if (flush) FlushUpdates();
}

void Dispatcher::Settle(std::span<const Lease> acks, std::span<const Lease> retries,
                        UnixMillis retry_at) {
  if (!acks.empty()) {
    if (Status st = queue_->Ack(acks); !st.ok()) {
      // The jobs come back (a remote queue's lease runs out): the store already says they are
      // over, so the next taker acknowledges them without sending.
      settle_failures_.Inc();
      observe::Warn("queue_ack_failed", {{"jobs", acks.size()}, {"error", st.error().code}});
    }
  }
  for (const Lease& lease : retries) {
    if (Status st = queue_->Retry(lease, retry_at); !st.ok()) {
      settle_failures_.Inc();
      observe::Warn("queue_retry_failed", {{"error", st.error().code}});
    }
  }
  Unhold(acks);
  Unhold(retries);
}

void Dispatcher::Hold(std::span<const Lease> leases) {
  if (queue_->lease_time().count() == 0) return;  // leases that never expire need no care
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(held_mu_);
  for (const Lease& lease : leases) held_[lease.token] = HeldLease{lease, now};
}

void Dispatcher::Unhold(std::span<const Lease> leases) {
  if (queue_->lease_time().count() == 0) return;
  std::lock_guard lock(held_mu_);
  for (const Lease& lease : leases) held_.erase(lease.token);
}

void Dispatcher::ExtendHeldLeases() {
  const auto lease_time = queue_->lease_time();
  if (lease_time.count() == 0) return;
  // A third of the lease: a send, or its outcome waiting for the store, outlasting that is
  // extended, so that no other taker gets the job meanwhile.
  const auto now = std::chrono::steady_clock::now();
  std::vector<Lease> due;
  {
    std::lock_guard lock(held_mu_);
    if (now - last_extend_ < lease_time / 6) return;
    last_extend_ = now;
    for (auto& [token, held] : held_) {
      if (now - held.since >= lease_time / 3) {
        due.push_back(held.lease);
        held.since = now;
      }
    }
  }
  if (due.empty()) return;
  if (Status st = queue_->Extend(due); !st.ok()) {
    settle_failures_.Inc();
    observe::Warn("queue_extend_failed", {{"jobs", due.size()}, {"error", st.error().code}});
  }
}

void Dispatcher::FlushUpdates(bool force) {
  // Posted under the lock: batches reach the writer in the order they were recorded, so a
  // delivery's "sent" can never be written before its "dispatched".
  std::lock_guard lock(updates_mu_);
  if (updates_.empty()) return;
  if (!force && updates_.size() < kFlushAt &&
      std::chrono::steady_clock::now() - oldest_update_ < kFlushAge) {
    return;
  }
  const size_t n = updates_.size();
  unrecorded_ += n;
  // The queue hears of the jobs only once their outcomes are committed: a process that dies
  // before leaves them to be taken again, where acknowledging first would lose them.
  auto settle = std::make_shared<Settlement>(std::exchange(settle_, {}));
  store_->RecordDeliveryUpdates(std::move(updates_), [this, n, settle](bool committed) {
    if (committed) {
      Settle(settle->acks, {}, 0);
    } else {  // the store gave up on the outcomes: the jobs go again, a little later
      store_failures_.Inc();
      Settle({}, settle->acks, NowMillis() + 1000);
    }
    for (const auto& [lease, at] : settle->retries) Settle({}, std::span(&lease, 1), at);
    std::lock_guard idle(idle_mu_);
    unrecorded_ -= n;
    idle_cv_.notify_all();
  });
  updates_.clear();
}

void Dispatcher::SendDone() {
  std::lock_guard lock(idle_mu_);
  --in_flight_;
  // One freed slot is work for one worker: waking all of them on every answer cost the
  // dispatcher a fifth of its time in futex calls. Stop, after the workers are gone, waits here
  // for the last answers.
  if (stopping_) {
    idle_cv_.notify_all();
  } else {
    idle_cv_.notify_one();
  }
}

}  // namespace herald

#include "pipeline/consent_reaper.h"

#include <algorithm>
#include <chrono>

#include "observe/log.h"

namespace herald {
namespace {

constexpr int kEraseBatch = 2000;
constexpr UnixMillis kErrorBackoffMillis = 200;
// How often the store is asked to destroy the keys of erased users' leftover bytes
// (Store::ShredExpiredKeys; PostgreSQL's keys are per minute).
constexpr UnixMillis kShredPeriodMillis = 10'000;

std::chrono::system_clock::time_point ToTimePoint(UnixMillis t) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(t));
}

}  // namespace

ConsentReaper::ConsentReaper(Store* store, observe::Registry* metrics, BatchObserver observer)
    : store_(store),
      observer_(std::move(observer)),
      erased_(metrics->GetCounter("herald_consent_erased_users_total",
                                  "Users erased because their consent window ended.")),
      lag_(metrics->GetHistogram("herald_consent_erase_lag_seconds",
                                 "Time from the earliest consent_until of a batch to its erasure.",
                                 observe::LatencyBuckets())) {}

ConsentReaper::~ConsentReaper() { Stop(); }

void ConsentReaper::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void ConsentReaper::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ConsentReaper::Nudge(UnixMillis at) {
  {
    std::lock_guard lock(mu_);
    if (at >= wake_at_) return;
    wake_at_ = at;
  }
  cv_.notify_all();
}

void ConsentReaper::Run() {
  UnixMillis next_shred = 0;
  std::unique_lock lock(mu_);
  while (!stop_) {
    wake_at_ = INT64_MAX;  // working: any nudge from now on lowers it
    lock.unlock();
    UnixMillis next_wake = NowMillis() + max_sleep_;  // re-check now and then even when idle
    auto next = store_->NextConsentExpiry();
    if (!next.ok()) {
      observe::Warn("consent reaper cannot read the next expiry", {{"code", next.error().code}});
      next_wake = NowMillis() + kErrorBackoffMillis;
    } else if (next->has_value()) {
      const UnixMillis earliest = **next;
      const UnixMillis now = NowMillis();
      if (earliest <= now) {
        auto erased = store_->EraseExpiredUsers(now, kEraseBatch);
        if (erased.ok()) {
          const UnixMillis done = NowMillis();
          if (*erased > 0) {
            erased_.Inc(static_cast<uint64_t>(*erased));
            lag_.Observe(static_cast<double>(done - earliest) / 1000.0);
            if (observer_) observer_(*erased, done);
          }
          lock.lock();
          continue;  // more may be due: look again at once
        }
        observe::Warn("consent reaper failed to erase", {{"code", erased.error().code}});
        next_wake = NowMillis() + kErrorBackoffMillis;
      } else if (earliest < next_wake) {
        next_wake = earliest;
      }
    }
    if (NowMillis() >= next_shred) {
      auto shredded = store_->ShredExpiredKeys(NowMillis());
      if (!shredded.ok()) {
        observe::Warn("consent reaper failed to destroy erased users' keys",
                      {{"code", shredded.error().code}});
      }
      next_shred = NowMillis() + (shredded.ok() ? kShredPeriodMillis : kErrorBackoffMillis * 10);
    }
    next_wake = std::min(next_wake, next_shred);
    lock.lock();
    if (stop_) break;
    if (wake_at_ < next_wake) next_wake = wake_at_;  // nudged while the store was read
    wake_at_ = next_wake;
    cv_.wait_until(lock, ToTimePoint(next_wake), [&] { return stop_ || wake_at_ < next_wake; });
  }
}

}  // namespace herald

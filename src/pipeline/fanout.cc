#include "pipeline/fanout.h"

#include <pthread.h>

#include <utility>

#include "observe/log.h"

namespace herald {

Fanout::Fanout(Store* store, Queue* queue, observe::Registry* metrics, FanoutOptions options)
    : store_(store),
      queue_(queue),
      options_(options),
      pages_(metrics->GetCounter("herald_fanout_pages_total", "Fan-out pages written")),
      deliveries_(metrics->GetCounter("herald_fanout_deliveries_total",
                                      "Deliveries created by the fan-out")),
      push_failures_(metrics->GetCounter(
          "herald_queue_errors_total", "Queue calls that failed, by operation", {{"op", "push"}})),
      page_failures_(metrics->GetCounter("herald_fanout_page_failures_total",
                                         "Fan-out pages that failed and were rolled back")) {}

Fanout::~Fanout() { Stop(); }

void Fanout::Start() {
  {
    std::lock_guard lock(mu_);
    stop_ = false;
    nudged_ = true;
  }
  thread_ = std::thread([this] { Run(); });
}

void Fanout::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Fanout::Submit(const std::string& /*notification_id*/) {
  {
    std::lock_guard lock(mu_);
    nudged_ = true;
  }
  cv_.notify_all();
}

bool Fanout::Idle(std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, wait, [this] { return stop_ || nudged_; });
  nudged_ = false;
  return !stop_;
}

void Fanout::Run() {
  pthread_setname_np(pthread_self(), "fanout");
  const bool push_in_page = queue_->outlives_process();
  const FanoutPublish publish = [this](const std::vector<DeliveryJob>& jobs) {
    Status pushed = queue_->Push(jobs);
    if (!pushed.ok()) push_failures_.Inc();
    return pushed;
  };
  int failures = 0;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    // Backpressure: the queue drains before more pages are written.
    if (queue_->Stats().queued > options_.max_queued) {
      if (!Idle(std::chrono::milliseconds(5))) return;
      continue;
    }
    Result<FanoutPage> page =
        store_->FanOutNext(options_.page_users, push_in_page ? publish : FanoutPublish());
    if (!page.ok()) {
      if (page.error().code == "no_fanout_work") {
        failures = 0;
        if (!Idle(options_.poll)) return;
        continue;
      }
      // Nothing of the page is stored (a remote queue's push failed, or the store did): the
      // same page is made again shortly.
      page_failures_.Inc();
      if (failures++ % 10 == 0) {
        observe::Warn("fanout_page_failed",
                      {{"error", page.error().code}, {"message", page.error().message}});
      }
      if (!Idle(std::chrono::milliseconds(200))) return;
      continue;
    }
    failures = 0;
    pages_.Inc();
    deliveries_.Inc(page->jobs.size());
    if (!push_in_page && !page->jobs.empty() && !PushUntilQueued(page->jobs)) return;  // stopping
  }
}

bool Fanout::PushUntilQueued(const std::vector<DeliveryJob>& jobs) {
  // The page is committed: its deliveries exist and must reach the queue. The local queue fails
  // only when closed, and its next start rebuilds itself from the store.
  for (int failures = 0;; ++failures) {
    Status pushed = queue_->Push(jobs);
    if (pushed.ok()) return true;
    push_failures_.Inc();
    if (failures % 10 == 0) {
      observe::Warn("fanout_push_failed", {{"jobs", jobs.size()}, {"error", pushed.error().code}});
    }
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stop_; })) {
      return false;
    }
  }
}

}  // namespace herald

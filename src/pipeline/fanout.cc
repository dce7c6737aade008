#include "pipeline/fanout.h"

#include <pthread.h>

#include <chrono>
#include <utility>
#include <vector>

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
          "herald_queue_errors_total", "Queue calls that failed, by operation", {{"op", "push"}})) {
}

Fanout::~Fanout() { Stop(); }

void Fanout::Start() {
  Result<std::vector<std::string>> unfinished = store_->ListUnfinishedFanouts();
  {
    std::lock_guard lock(mu_);
    stop_ = false;
    if (unfinished.ok()) {
      for (std::string& id : *unfinished) active_.push_back(std::move(id));
    } else {
      observe::Error("fanout_resume_failed", {{"error", unfinished.error().code}});
    }
  }
  if (unfinished.ok() && !unfinished->empty()) {
    observe::Info("fanout_resumed", {{"notifications", unfinished->size()}});
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

void Fanout::Submit(const std::string& notification_id) {
  {
    std::lock_guard lock(mu_);
    active_.push_back(notification_id);
  }
  cv_.notify_all();
}

void Fanout::Run() {
  pthread_setname_np(pthread_self(), "fanout");
  for (;;) {
    std::string id;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !active_.empty(); });
      if (stop_) return;
      // Backpressure: the queue drains before more pages are written.
      if (queue_->Stats().queued > options_.max_queued) {
        cv_.wait_for(lock, std::chrono::milliseconds(5));
        continue;
      }
      id = std::move(active_.front());
      active_.pop_front();
    }
    Result<FanoutPage> page = store_->FanOutPage(id, options_.page_users);
    if (!page.ok()) {
      if (page.error().kind == ErrorKind::kNotFound) continue;  // nothing left to do
      observe::Warn("fanout_page_failed", {{"notification_id", id}, {"error", page.error().code}});
      std::unique_lock lock(mu_);
      active_.push_back(std::move(id));
      cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stop_; });
      continue;
    }
    pages_.Inc();
    deliveries_.Inc(page->jobs.size());
    if (!page->jobs.empty() && !PushUntilQueued(page->jobs)) return;  // stopping
    if (!page->done) {
      std::lock_guard lock(mu_);
      active_.push_back(std::move(id));
    }
  }
}

bool Fanout::PushUntilQueued(const std::vector<DeliveryJob>& jobs) {
  // The page is committed: its deliveries exist and must reach the queue. A remote queue out of
  // reach is waited for (the same jobs again are no duplicates); the local one fails only when
  // closed, and its next start rebuilds itself from the store.
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

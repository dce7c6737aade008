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
                                      "Deliveries created by the fan-out")) {}

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
      if (queue_->queued() > options_.max_queued) {
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
    if (!page->jobs.empty()) queue_->Push(std::move(page->jobs));
    if (!page->done) {
      std::lock_guard lock(mu_);
      active_.push_back(std::move(id));
    }
  }
}

Result<int64_t> RequeueUnfinished(Store* store, Queue* queue) {
  int64_t after = 0;
  int64_t total = 0;
  for (;;) {
    Result<std::vector<DeliveryJob>> jobs = store->ListUnfinishedDeliveries(after, 10'000);
    if (!jobs.ok()) return jobs.take_error();
    if (jobs->empty()) return total;
    after = jobs->back().delivery;
    total += static_cast<int64_t>(jobs->size());
    queue->Push(std::move(*jobs));
  }
}

}  // namespace herald

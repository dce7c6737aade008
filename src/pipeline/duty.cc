#include "pipeline/duty.h"

#include <pthread.h>

#include <utility>

#include "observe/log.h"

namespace herald {

Duty::Duty(Store* store, std::string name, std::function<void()> start, std::function<void()> stop,
           observe::Registry* metrics, std::chrono::milliseconds check)
    : store_(store),
      name_(std::move(name)),
      start_(std::move(start)),
      stop_duty_(std::move(stop)),
      check_(check),
      held_gauge_(metrics->GetGauge("herald_duty_held",
                                    "1 while this process performs the singleton duty",
                                    {{"duty", name_}})),
      takeovers_(metrics->GetCounter("herald_duty_taken_total",
                                     "Times this process took the singleton duty",
                                     {{"duty", name_}})) {}

Duty::~Duty() { Stop(); }

void Duty::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void Duty::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Duty::held() const {
  std::lock_guard lock(mu_);
  return lease_ != nullptr;
}

void Duty::Run() {
  pthread_setname_np(pthread_self(), "duty");
  bool warned = false;
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    std::unique_ptr<DutyLease> taken;
    bool lost = false;
    {
      std::lock_guard held_lock(mu_);
      lost = lease_ != nullptr && !lease_->Held();
    }
    if (lost) {
      stop_duty_();
      held_gauge_.Set(0);
      observe::Warn("duty_lost", {{"duty", name_}});
      std::lock_guard held_lock(mu_);
      lease_.reset();
    }
    bool holding = false;
    {
      std::lock_guard held_lock(mu_);
      holding = lease_ != nullptr;
    }
    if (!holding) {
      Result<std::unique_ptr<DutyLease>> got = store_->TryTakeDuty(name_);
      if (!got.ok()) {
        if (!warned) {
          observe::Warn("duty_unavailable", {{"duty", name_}, {"error", got.error().code}});
        }
        warned = true;
      } else if (*got != nullptr) {
        warned = false;
        {
          std::lock_guard held_lock(mu_);
          lease_ = std::move(*got);
        }
        takeovers_.Inc();
        held_gauge_.Set(1);
        observe::Info("duty_taken", {{"duty", name_}});
        start_();
      }
    }
    lock.lock();
    cv_.wait_for(lock, check_, [this] { return stop_; });
  }
  const bool had = lease_ != nullptr;
  lock.unlock();
  if (had) {
    stop_duty_();
    held_gauge_.Set(0);
    observe::Info("duty_released", {{"duty", name_}});
  }
  std::lock_guard held_lock(mu_);
  lease_.reset();
}

}  // namespace herald

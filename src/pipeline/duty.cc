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

bool Duty::held() const { return held_.load(); }

void Duty::Run() {
  pthread_setname_np(pthread_self(), "duty");
  std::unique_ptr<DutyLease> lease;  // this thread's alone
  bool warned = false;
  auto release = [&](bool lost) {
    stop_duty_();
    lease.reset();
    held_ = false;
    held_gauge_.Set(0);
    if (lost) {
      observe::Warn("duty_lost", {{"duty", name_}});
    } else {
      observe::Info("duty_released", {{"duty", name_}});
    }
  };
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    if (lease != nullptr && !lease->Held()) release(/*lost=*/true);
    if (lease == nullptr) {
      Result<std::unique_ptr<DutyLease>> got = store_->TryTakeDuty(name_);
      if (!got.ok()) {
        if (!warned) {
          observe::Warn("duty_unavailable", {{"duty", name_}, {"error", got.error().code}});
        }
        warned = true;
      } else if (*got != nullptr) {
        warned = false;
        lease = std::move(*got);
        held_ = true;
        takeovers_.Inc();
        held_gauge_.Set(1);
        observe::Info("duty_taken", {{"duty", name_}});
        start_();
      }
    }
    lock.lock();
    cv_.wait_for(lock, check_, [this] { return stop_; });
  }
  lock.unlock();
  if (lease != nullptr) release(/*lost=*/false);
}

}  // namespace herald

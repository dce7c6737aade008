// A singleton duty (the consent reaper) in a cluster of Herald processes: each process that has
// the role runs a Duty, and the one whose Duty holds the store's lease (Store::TryTakeDuty)
// performs it. The others ask again every `check`; when the holder dies its lease ends with its
// database session and the next asker takes over, within about `check`. A holder that finds its
// lease lost stops the duty at once.
//
// Thread-safety: Start/Stop from one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "observe/metrics.h"
#include "store/store.h"

namespace herald {

class Duty {
 public:
  Duty(Store* store, std::string name, std::function<void()> start, std::function<void()> stop,
       observe::Registry* metrics, std::chrono::milliseconds check = std::chrono::seconds(1));
  ~Duty();
  Duty(const Duty&) = delete;
  Duty& operator=(const Duty&) = delete;

  void Start();
  // Stops the duty if this process performs it, and lets the lease go.
  void Stop();
  bool held() const;

 private:
  void Run();

  Store* store_;
  const std::string name_;
  std::function<void()> start_;
  std::function<void()> stop_duty_;
  const std::chrono::milliseconds check_;
  observe::Gauge& held_gauge_;
  observe::Counter& takeovers_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> held_{false};
  std::thread thread_;
};

}  // namespace herald

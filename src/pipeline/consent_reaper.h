// Erases users whose consent has ended (DESIGN R3). One thread that sleeps until the earliest
// consent_until in the store — not on a fixed period — and wakes earlier when a write stores an
// earlier expiry (Nudge). Erasure runs in batches until nothing expired is left.
//
// Thread-safety: Start/Stop from one thread; Nudge from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "observe/metrics.h"
#include "store/store.h"

namespace herald {

class ConsentReaper {
 public:
  // Called after each erased batch with its size and the time it was committed.
  using BatchObserver = std::function<void(int64_t erased, UnixMillis at)>;

  ConsentReaper(Store* store, observe::Registry* metrics, BatchObserver observer = {});
  ~ConsentReaper();
  ConsentReaper(const ConsentReaper&) = delete;
  ConsentReaper& operator=(const ConsentReaper&) = delete;

  void Start();
  void Stop();
  // A write stored a consent_until of `at`; wake up if that is earlier than the planned wake-up.
  void Nudge(UnixMillis at);
  // The longest the reaper sleeps before it reads the next expiry again (default 60 s). A store
  // that other processes write too (their writes nudge only their own process) wants it below
  // the erasure target: 500 ms. Before Start.
  void set_max_sleep(UnixMillis ms) { max_sleep_ = ms; }

 private:
  void Run();

  Store* store_;
  BatchObserver observer_;
  observe::Counter& erased_;
  observe::Histogram& lag_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  UnixMillis max_sleep_ = 60'000;
  UnixMillis wake_at_ = INT64_MAX;  // the planned wake-up; a nudge earlier than it wakes the thread
  std::thread thread_;
};

}  // namespace herald

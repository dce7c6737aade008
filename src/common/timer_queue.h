// Runs callbacks at given wall-clock times on one thread of its own. For delayed retries and
// other timed work that must not hold a thread while it waits.
//
// Thread-safety: At() from any thread. Callbacks run on the queue's thread, one at a time; they
// must be quick. The destructor drops callbacks that are not yet due (they never run).
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

#include "common/clock.h"

namespace herald {

class TimerQueue {
 public:
  TimerQueue();
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  void At(UnixMillis when, std::function<void()> fn);
  size_t pending() const;

 private:
  struct Entry {
    UnixMillis when;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Entry& o) const { return when != o.when ? when > o.when : seq > o.seq; }
  };
  void Run();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_;
  uint64_t seq_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace herald

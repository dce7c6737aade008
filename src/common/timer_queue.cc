#include "common/timer_queue.h"

#include <chrono>

namespace herald {

TimerQueue::TimerQueue() : thread_([this] { Run(); }) {}

TimerQueue::~TimerQueue() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void TimerQueue::At(UnixMillis when, std::function<void()> fn) {
  bool earliest = false;
  {
    std::lock_guard lock(mu_);
    earliest = heap_.empty() || when < heap_.top().when;
    heap_.push(Entry{when, seq_++, std::move(fn)});
  }
  if (earliest) cv_.notify_all();
}

size_t TimerQueue::pending() const {
  std::lock_guard lock(mu_);
  return heap_.size();
}

void TimerQueue::Run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (heap_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const UnixMillis when = heap_.top().when;
    if (NowMillis() < when) {
      cv_.wait_until(lock, std::chrono::system_clock::time_point(std::chrono::milliseconds(when)));
      continue;
    }
    auto fn = std::move(const_cast<Entry&>(heap_.top()).fn);
    heap_.pop();
    lock.unlock();
    fn();
    lock.lock();
  }
}

}  // namespace herald

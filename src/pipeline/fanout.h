// The fan-out: turns each accepted notification into deliveries, one page of its audience at a
// time (Store::FanOutPage, which records its progress with every page), and pushes their jobs to
// the queue. Memory stays flat however large the audience: a page is a few hundred users, and
// pages wait while the queue holds more than max_queued jobs. Several notifications fan out
// interleaved, a page each in turn, so one huge send does not hold up another tenant's small
// one; the queue then orders their deliveries by deadline.
//
// Thread-safety: Start/Stop from one thread; Submit from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "observe/metrics.h"
#include "queue/queue.h"
#include "store/store.h"

namespace herald {

struct FanoutOptions {
  int page_users = 100;  // small pages keep the writer free for outcomes (a crash re-sends what it
                         // has not recorded)
  size_t max_queued = 200'000;  // jobs waiting in the queue above which pages wait
};

class Fanout {
 public:
  Fanout(Store* store, Queue* queue, observe::Registry* metrics, FanoutOptions options = {});
  ~Fanout();
  Fanout(const Fanout&) = delete;
  Fanout& operator=(const Fanout&) = delete;

  // Resumes the fan-outs a previous run left unfinished, then serves Submit.
  void Start();
  // Stops after the page in progress (its progress is stored; the next start resumes).
  void Stop();
  // A notification was accepted: fan it out.
  void Submit(const std::string& notification_id);

 private:
  void Run();
  // Pushes a written page's jobs, again and again while the queue refuses them; false when the
  // fan-out stops first.
  bool PushUntilQueued(const std::vector<DeliveryJob>& jobs);

  Store* store_;
  Queue* queue_;
  FanoutOptions options_;
  observe::Counter& pages_;
  observe::Counter& deliveries_;
  observe::Counter& push_failures_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> active_;  // round robin, one page each
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace herald

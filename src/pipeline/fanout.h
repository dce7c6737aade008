// The fan-out: turns accepted notifications into deliveries, one page of an audience at a time
// (Store::FanOutNext, which records its progress with every page), and pushes their jobs to the
// queue. The work is found in the store, not handed over in memory: a notification accepted by
// any process (and acknowledged with 202 once stored) is fanned out by whichever fan-out process
// looks next, also when the accepting one died a moment later. Memory stays flat however large
// the audience: a page is a few hundred users, and pages wait while the queue holds more than
// max_queued jobs. Fan-outs take turns a page each, so one huge send does not hold up another
// tenant's small one; the queue then orders their deliveries by deadline.
//
// Pushing: to a queue that outlives the process (JetStream), inside the page's transaction
// before it commits, so a process that dies between the two leaves either nothing (rolled back)
// or jobs whose deliveries never came to be (the dispatcher drops them); to the local queue after
// the commit (a restart rebuilds that queue from the store).
//
// Thread-safety: Start/Stop from one thread; Submit from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
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
  // How often the store is asked for work when there is none: a notification accepted by another
  // process is begun at most this late (one accepted here is begun at once: Submit).
  std::chrono::milliseconds poll = std::chrono::milliseconds(100);
};

class Fanout {
 public:
  Fanout(Store* store, Queue* queue, observe::Registry* metrics, FanoutOptions options = {});
  ~Fanout();
  Fanout(const Fanout&) = delete;
  Fanout& operator=(const Fanout&) = delete;

  // Serves the unfinished fan-outs in the store, those of earlier runs included.
  void Start();
  // Stops after the page in progress (its progress is stored; the next taker resumes).
  void Stop();
  // A notification was accepted in this process: look for work now.
  void Submit(const std::string& notification_id);

 private:
  void Run();
  // Waits up to `wait` for Submit or Stop; false when stopping.
  bool Idle(std::chrono::milliseconds wait);
  // Pushes a committed page's jobs, again and again while the queue refuses them; false when the
  // fan-out stops first.
  bool PushUntilQueued(const std::vector<DeliveryJob>& jobs);

  Store* store_;
  Queue* queue_;
  FanoutOptions options_;
  observe::Counter& pages_;
  observe::Counter& deliveries_;
  observe::Counter& push_failures_;
  observe::Counter& page_failures_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool nudged_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace herald

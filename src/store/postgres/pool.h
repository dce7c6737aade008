// Connections of the PostgreSQL store: a pool that opens them lazily and drops the broken ones,
// and the writer thread that batches queued writes into one transaction.
//
// Thread-safety: Pool and Writer may be used from any thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/result.h"
#include "store/postgres/pg.h"

namespace herald::pg {

// Run on every connection Herald opens. Herald's statements are short look-ups by key; JIT
// compiling one (which the server does when a cached plan's estimates are large) cost ~90 ms
// for a statement that runs in 1 ms.
inline constexpr std::string_view kSessionSettings = "SET jit = off";

class Pool {
 public:
  // `init` (may be empty) is run on every new connection, e.g. session settings.
  Pool(std::string uri, int size, std::string init = {})
      : uri_(std::move(uri)), size_(size < 1 ? 1 : size), init_(std::move(init)) {}

  // When set, InTransaction returns only once a synchronous standby has flushed the commit (see
  // PostgresStoreOptions::require_standby).
  void set_require_standby(bool on) { require_standby_ = on; }
  bool require_standby() const { return require_standby_; }

  // A connection for one caller; back to the pool when the lease ends, unless it broke or was
  // left inside a transaction.
  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<Conn> conn) : pool_(pool), conn_(std::move(conn)) {}
    ~Lease();
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Conn& operator*() const { return *conn_; }
    Conn* operator->() const { return conn_.get(); }

   private:
    Pool* pool_;
    std::unique_ptr<Conn> conn_;
  };

  // An idle connection, a new one while fewer than `size` are open, or the next one returned
  // (up to 10 s: then kUnavailable "storage_busy").
  Result<Lease> Acquire();
  const std::string& uri() const { return uri_; }

 private:
  void Release(std::unique_ptr<Conn> conn);

  const std::string uri_;
  const int size_;
  const std::string init_;
  bool require_standby_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> idle_;
  int open_ = 0;
};

// Runs `body` in a transaction on a leased connection; retried (up to 3 times) when the server
// reports a serialization failure or deadlock, or the connection broke before COMMIT was sent.
// `body` must start from scratch on each call (reset what it fills in). With
// pool.require_standby(), a commit that no synchronous standby has flushed within 5 s is
// kUnavailable "storage_not_replicated": it is on the primary alone, and the caller answers 503
// (the client's retry finds it, as for any write whose answer was lost).
Status InTransaction(Pool& pool, const std::function<Status(Conn&)>& body,
                     bool wait_for_standby = true);

// One thread that writes queued work in batches: each batch is one transaction; if it fails,
// its writes are tried one by one, so one bad write fails alone.
class Writer {
 public:
  using Work = std::function<Status(Conn&)>;
  using Done = std::function<void(const Status&)>;

  Writer(std::string uri, size_t max_batch, std::function<void(size_t)> on_batch);
  ~Writer();  // writes what is queued, then stops
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void Post(Work work, Done done = {});
  // Waits until everything posted before it is written (or failed); the first failure since the
  // last Flush, if any.
  Status Flush();

 private:
  struct Item {
    Work work;
    Done done;
  };
  void Run();
  Status WriteBatch(std::vector<Item>& batch);

  Pool pool_;
  const size_t max_batch_;
  const std::function<void(size_t)> on_batch_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<Item> queue_;
  bool busy_ = false;
  bool stop_ = false;
  Status failure_ = Status::Ok();
  std::thread thread_;
};

}  // namespace herald::pg

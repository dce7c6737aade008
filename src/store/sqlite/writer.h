// The SQLite store's single writer: one thread owns the write connection and runs every write.
// Callers enqueue operations (closures over the connection) and wait for their outcome. The
// thread drains up to max_batch queued operations, runs them in one BEGIN IMMEDIATE ... COMMIT
// transaction, each inside its own SAVEPOINT: an operation that fails is rolled back to its
// savepoint alone and reports its error, the others commit. Batching turns many small
// concurrent writes into one commit (one WAL append) without weakening all-or-nothing per call.
//
// Thread-safety: Run/Post/Flush may be called from any thread except the writer thread itself
// (an operation or on_batch that calls back into the Writer would deadlock).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/result.h"
#include "store/sqlite/connection.h"

namespace herald::sqlite {

class Writer {
 public:
  // An operation runs on the writer thread, inside a savepoint of the open transaction. It only
  // does SQL (seal, hash and mint ids before enqueueing it). Returning an error rolls back
  // everything it wrote. It may throw; that is reported as kInternal.
  using Op = std::function<Status(Connection&)>;

  // Takes ownership of the write connection and starts the thread. on_batch (may be empty) is
  // called on the writer thread after each committed batch with the number of operations in it.
  Writer(std::unique_ptr<Connection> conn, size_t max_batch, std::function<void(size_t)> on_batch);
  // Runs everything still queued, then stops the thread.
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Enqueues `op` and blocks until its batch committed (Ok) or it failed (its error; also
  // kUnavailable "storage_unavailable" when the batch could not commit).
  Status Run(Op op);
  // Enqueues `op` without waiting; it is written with the next batch. Failures are counted.
  // `done` (may be empty) is called on the writer thread once the batch holding `op` committed
  // or failed, with the op's outcome; it must be quick and must not call the Writer.
  void Post(Op op, std::function<void(const Status&)> done = {});
  // Blocks until everything enqueued before the call is committed.
  Status Flush();

  // Posted operations that failed, since start.
  size_t failed_posts() const;

 private:
  // Where a waiting caller gets its outcome. Lives on the caller's stack; the writer notifies
  // while holding the mutex, so the caller cannot return (and destroy it) while it does.
  struct Completion {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    Status result;
  };
  struct Item {
    Op op;
    Completion* completion = nullptr;         // null for Post
    std::function<void(const Status&)> done;  // Post's optional notification
  };

  void Loop();
  void RunBatch(std::vector<Item>& batch);
  Status RunOne(Item& item);

  std::unique_ptr<Connection> conn_;
  const size_t max_batch_;
  const std::function<void(size_t)> on_batch_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  size_t failed_posts_ = 0;
  std::thread thread_;  // last: starts after everything above is initialised
};

}  // namespace herald::sqlite

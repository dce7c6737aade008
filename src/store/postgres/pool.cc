#include "store/postgres/pool.h"

#include <chrono>
#include <utility>

namespace herald::pg {

// ---- Pool ----

Pool::Lease::~Lease() {
  if (conn_ != nullptr && pool_ != nullptr) pool_->Release(std::move(conn_));
}

Result<Pool::Lease> Pool::Acquire() {
  std::unique_lock lock(mu_);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    if (!idle_.empty()) {
      std::unique_ptr<Conn> c = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(c));
    }
    if (open_ < size_) {
      ++open_;
      lock.unlock();
      Result<std::unique_ptr<Conn>> c = Conn::Open(uri_);
      if (c.ok() && !init_.empty()) {
        Status s = (*c)->Script(init_);
        if (!s.ok()) c = s.take_error();
      }
      if (!c.ok()) {
        lock.lock();
        --open_;
        cv_.notify_one();
        return c.take_error();
      }
      return Lease(this, std::move(*c));
    }
    if (cv_.wait_until(lock, until) == std::cv_status::timeout) {
      return MakeError(ErrorKind::kUnavailable, "storage_busy",
                       "Every database connection is in use; retry shortly.");
    }
  }
}

void Pool::Release(std::unique_ptr<Conn> conn) {
  std::lock_guard lock(mu_);
  if (conn->Healthy() && conn->Idle()) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;  // broken, or left inside a transaction: closed, a new one is opened when needed
  }
  cv_.notify_one();
}

namespace {

// Waits until a synchronous standby has flushed the WAL this connection's last commit wrote
// (up to 5 s). Right after a failover pg_auto_failover runs the new primary alone, with
// synchronous replication off, until the other standby follows it: a commit then returns at
// once, on one node only. Needs the pg_monitor role (pg_stat_replication's positions).
Status WaitForStandby(Conn& c) {
  // The insert position: at or past the commit record whatever synchronous_commit says.
  Result<Rows> mine = c.Exec("SELECT pg_current_wal_insert_lsn()::text", Params());
  if (!mine.ok()) return mine.take_error();
  Params p;
  p.Text(mine->Text(0, 0));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    Result<Rows> r = c.Exec(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum') "
        "AND flush_lsn >= $1::pg_lsn)::integer",
        p);
    if (!r.ok()) return r.take_error();
    if (r->Int(0, 0) != 0) return Status::Ok();
    if (std::chrono::steady_clock::now() >= deadline) {
      return MakeError(ErrorKind::kUnavailable, "storage_not_replicated",
                       "The database has no synchronous standby right now; retry shortly.");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

Status InTransaction(Pool& pool, const std::function<Status(Conn&)>& body, bool wait_for_standby) {
  constexpr int kAttempts = 4;
  Status last = Status::Ok();
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    Result<Pool::Lease> conn = pool.Acquire();
    if (!conn.ok()) {
      last = conn.take_error();
      if (!IsConnectionLost(last.error())) return last;
      continue;
    }
    Conn& c = **conn;
    c.tx_events = 0;
    Status s = c.Script("BEGIN");
    if (s.ok()) s = body(c);
    if (s.ok()) {
      s = c.Script("COMMIT");
      if (s.ok()) return pool.require_standby() && wait_for_standby ? WaitForStandby(c) : s;
      // A COMMIT that failed on a lost connection may have committed: not retried.
      if (IsConnectionLost(s.error())) return s;
    } else if (c.Healthy()) {
      (void)c.Script("ROLLBACK");
    }
    last = std::move(s);
    if (!IsRetryable(last.error()) && !IsConnectionLost(last.error())) return last;
  }
  return last;
}

// ---- Writer ----

Writer::Writer(std::string uri, size_t max_batch, std::function<void(size_t)> on_batch)
    // The writer's statements each touch rows found by key, from arrays of any length. Planned
    // for the statistics of the moment (an empty table, say), a hash join or a scan over a
    // whole partitioned table can look cheapest, and costs a broadcast 25x once the table is
    // big; planning each statement for its own arrays costs 1-2 ms a statement over the
    // partitions. So the writer's session allows only index look-ups and nested loops, and
    // plans each statement once.
    : pool_(std::move(uri), 1,
            std::string(kSessionSettings) + "; SET plan_cache_mode = force_custom_plan"),
      max_batch_(max_batch == 0 ? 1 : max_batch),
      on_batch_(std::move(on_batch)),
      thread_([this] { Run(); }) {}

Writer::~Writer() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Writer::Post(Work work, Done done) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(Item{std::move(work), std::move(done)});
  }
  cv_.notify_one();
}

Status Writer::Flush() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return queue_.empty() && !busy_; });
  Status out = std::move(failure_);
  failure_ = Status::Ok();
  return out;
}

void Writer::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) {
      if (stop_) return;
      continue;
    }
    std::vector<Item> batch;
    while (!queue_.empty() && batch.size() < max_batch_) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    busy_ = true;
    lock.unlock();
    Status s = WriteBatch(batch);
    lock.lock();
    busy_ = false;
    if (!s.ok() && failure_.ok()) failure_ = std::move(s);
    if (queue_.empty()) idle_cv_.notify_all();
  }
}

Status Writer::WriteBatch(std::vector<Item>& batch) {
  auto write_all = [&](Conn& c) -> Status {
    for (Item& item : batch) {
      Status s = item.work(c);
      if (!s.ok()) return s;
    }
    return Status::Ok();
  };
  Status all = InTransaction(pool_, write_all);
  // The server is gone (a failover, a restart): the batch waits for it, up to 30 s, rather than
  // losing what the pipeline recorded.
  for (int waited = 0; !all.ok() && IsConnectionLost(all.error()) && waited < 300; ++waited) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    all = InTransaction(pool_, write_all);
  }
  if (all.ok()) {
    if (on_batch_) on_batch_(batch.size());
    for (Item& item : batch) {
      if (item.done) item.done(all);
    }
    return all;
  }
  if (batch.size() == 1 || IsConnectionLost(all.error())) {
    for (Item& item : batch) {
      if (item.done) item.done(all);
    }
    return all;
  }
  // One of them failed: each alone, so that only the bad one is lost.
  Status first = Status::Ok();
  for (Item& item : batch) {
    Status s = InTransaction(pool_, [&](Conn& c) { return item.work(c); });
    if (s.ok() && on_batch_) on_batch_(1);
    if (!s.ok() && first.ok()) first = s;
    if (item.done) item.done(s);
  }
  return first;
}

}  // namespace herald::pg

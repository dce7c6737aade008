#include "store/sqlite/checkpointer.h"

#include <pthread.h>

#include <utility>

namespace herald::sqlite {

Result<std::unique_ptr<Checkpointer>> Checkpointer::Start(const std::string& path,
                                                          int threshold_pages) {
  Result<std::unique_ptr<Connection>> conn = Connection::Open(path, Connection::Mode::kReadWrite);
  if (!conn.ok()) return conn.take_error();
  return std::unique_ptr<Checkpointer>(new Checkpointer(std::move(*conn), threshold_pages));
}

Checkpointer::Checkpointer(std::unique_ptr<Connection> conn, int threshold_pages)
    : conn_(std::move(conn)), threshold_pages_(threshold_pages), thread_([this] { Loop(); }) {}

Checkpointer::~Checkpointer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
  sqlite3_wal_checkpoint_v2(conn_->raw(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
}

void Checkpointer::Attach(Connection& writer) {
  sqlite3_wal_hook(writer.raw(), &Checkpointer::WalHook, this);
}

int Checkpointer::WalHook(void* self, sqlite3*, const char*, int pages) {
  auto* c = static_cast<Checkpointer*>(self);
  if (pages >= c->threshold_pages_) {
    bool wake = false;
    {
      std::lock_guard lock(c->mu_);
      wake = !c->wanted_;
      c->wanted_ = true;
    }
    if (wake) c->cv_.notify_one();
  }
  return SQLITE_OK;
}

void Checkpointer::Loop() {
  pthread_setname_np(pthread_self(), "store-checkpt");
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return wanted_ || stopping_; });
      if (stopping_) return;
      wanted_ = false;
    }
    // Failures (busy, I/O) are retried after the next commit past the threshold.
    sqlite3_wal_checkpoint_v2(conn_->raw(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  }
}

}  // namespace herald::sqlite

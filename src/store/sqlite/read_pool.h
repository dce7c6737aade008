// A fixed pool of read-only connections to the store's database. WAL lets them read concurrently
// with each other and with the writer; each sees the last commit made before its transaction.
//
// Thread-safety: Acquire may be called from any thread; it blocks while every connection is lent.
// A Lease must not outlive the pool.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "store/sqlite/connection.h"

namespace herald::sqlite {

class ReadPool {
 public:
  // Opens `size` (at least 1) read-only connections to `path`, which must already exist.
  static Result<std::unique_ptr<ReadPool>> Open(const std::string& path, int size);

  // One connection, returned to the pool when the Lease is destroyed.
  class Lease {
   public:
    Lease(ReadPool* pool, Connection* conn) : pool_(pool), conn_(conn) {}
    ~Lease() { pool_->Return(conn_); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Connection& operator*() const { return *conn_; }
    Connection* operator->() const { return conn_; }

   private:
    ReadPool* pool_;
    Connection* conn_;
  };

  Lease Acquire();

 private:
  ReadPool() = default;
  void Return(Connection* conn);

  std::vector<std::unique_ptr<Connection>> all_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Connection*> free_;
};

}  // namespace herald::sqlite

#include "store/sqlite/read_pool.h"

#include <algorithm>
#include <utility>

namespace herald::sqlite {

Result<std::unique_ptr<ReadPool>> ReadPool::Open(const std::string& path, int size) {
  std::unique_ptr<ReadPool> pool(new ReadPool());
  for (int i = 0; i < std::max(1, size); ++i) {
    Result<std::unique_ptr<Connection>> conn = Connection::Open(path, Connection::Mode::kReadOnly);
    if (!conn.ok()) return conn.take_error();
    pool->free_.push_back(conn->get());
    pool->all_.push_back(std::move(*conn));
  }
  return pool;
}

ReadPool::Lease ReadPool::Acquire() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return !free_.empty(); });
  Connection* conn = free_.back();
  free_.pop_back();
  return Lease(this, conn);
}

void ReadPool::Return(Connection* conn) {
  {
    std::lock_guard lock(mu_);
    free_.push_back(conn);
  }
  cv_.notify_one();
}

}  // namespace herald::sqlite

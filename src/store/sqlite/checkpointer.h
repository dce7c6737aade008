// Moves WAL checkpoints off the writer thread. SQLite's default auto-checkpoint runs inside the
// commit that crosses the threshold, copying pages and syncing the database file on the writer
// thread (about 40% of its time under a bulk import). Instead the write connection's WAL hook
// wakes this thread, which runs PASSIVE checkpoints on its own connection: they never block the
// writer or readers, and the writer goes on appending to the WAL meanwhile.
//
// Thread-safety: OnCommit is called on the writer thread (from the WAL hook); the rest is
// internal. Attach() must be called before the write connection commits, and the Checkpointer
// must outlive that connection.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/result.h"
#include "store/sqlite/connection.h"

namespace herald::sqlite {

class Checkpointer {
 public:
  // Opens a connection of its own to `path` and starts the thread. A checkpoint starts once the
  // WAL holds `threshold_pages` pages.
  static Result<std::unique_ptr<Checkpointer>> Start(const std::string& path, int threshold_pages);
  // Stops the thread, then checkpoints everything and truncates the WAL (when no other
  // connection is reading), so a closed store leaves its data in the database file alone.
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Replaces the auto-checkpoint of the write connection with this thread.
  void Attach(Connection& writer);

 private:
  Checkpointer(std::unique_ptr<Connection> conn, int threshold_pages);
  static int WalHook(void* self, sqlite3* db, const char* schema, int pages);
  void Loop();

  std::unique_ptr<Connection> conn_;
  const int threshold_pages_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool wanted_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace herald::sqlite

// The embedded SQLite backend of Store: one file in the data directory, WAL, one writer thread
// that batches concurrent writes into one transaction (each write in its own savepoint, so a
// failing write rolls back alone), a pool of read connections, and a checkpoint thread that
// copies the WAL into the database off the writer's path. secure_delete is on, so erased rows do
// not linger in the file. Names, addresses and provider settings are sealed with the tenant's
// data key on the calling thread; the writer thread only runs SQL.
//
// Ownership: the returned Store owns its threads and connections; destroying it writes what is
// queued, checkpoints, and closes the file. Thread-safety: as Store (any thread, any method).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/result.h"
#include "crypto/crypto.h"
#include "store/store.h"

namespace herald {

struct SqliteStoreOptions {
  std::string path;          // the database file; created when missing
  crypto::Key master_key{};  // wraps each tenant's data key
  int read_connections = 8;
  int max_batch = 1024;  // writes per transaction at most
  // Called by the writer after each committed batch with the number of writes in it
  // (for the store_write_batch_size histogram). May be empty. Runs on the writer thread: it
  // must be quick and must not call the store.
  std::function<void(size_t)> on_batch;
  // The store's clock: every timestamp it writes and every consent check it makes read it
  // (tests move it instead of sleeping). Empty = NowMillis.
  std::function<UnixMillis()> clock;
};

// Opens (creating and migrating as needed) the database. Fails with kUnavailable when the file
// cannot be opened ("storage_unavailable"), its schema is newer than this binary knows
// ("schema_too_new"), or it was created with another master key ("master_key_mismatch").
Result<std::unique_ptr<Store>> OpenSqliteStore(SqliteStoreOptions options);

}  // namespace herald

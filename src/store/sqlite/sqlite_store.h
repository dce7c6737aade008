// The embedded SQLite backend of Store: one file in the data directory, WAL, one writer thread
// that batches concurrent writes into one transaction (each write in its own savepoint, so a
// failing write rolls back alone), and a pool of read connections. secure_delete is on, so
// erased rows do not linger in the file.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/result.h"
#include "crypto/crypto.h"
#include "store/store.h"

namespace herald {

struct SqliteStoreOptions {
  std::string path;              // the database file; created when missing
  crypto::Key master_key{};      // wraps each tenant's data key
  int read_connections = 8;
  int max_batch = 1024;          // writes per transaction at most
  // Called by the writer after each committed batch with the number of writes in it
  // (for the store_write_batch_size histogram). May be empty.
  std::function<void(size_t)> on_batch;
};

// Opens (creating and migrating as needed) the database. Fails with kUnavailable when the file
// cannot be opened or its schema is newer than this binary knows.
Result<std::unique_ptr<Store>> OpenSqliteStore(SqliteStoreOptions options);

}  // namespace herald

// Thin RAII layer over the sqlite3 C API for the SQLite store: a Connection with a per-connection
// cache of prepared statements, a Stmt borrowed from that cache, and the mapping of SQLite result
// codes onto Herald errors.
//
// Thread-safety: a Connection (and every Stmt borrowed from it) is used by one thread at a time.
// The writer thread owns the write connection; read connections are lent by ReadPool.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"

namespace herald::sqlite {

using Bytes = std::vector<uint8_t>;

// SQLITE_BUSY/LOCKED/IOERR/FULL/... -> kUnavailable "storage_unavailable";
// SQLITE_CONSTRAINT -> kConflict "conflict"; anything else -> kInternal "storage_error".
Error StorageError(int rc, sqlite3* db);

// A statement borrowed from a Connection's cache. Reset (and its bindings cleared) when the Stmt
// goes out of scope, so it can be borrowed again. Bound text and blobs are NOT copied: they must
// outlive the last Next()/Run(). A statement that failed to prepare reports the failure from
// Next()/Run(); binds on it do nothing.
class Stmt {
 public:
  Stmt(sqlite3_stmt* stmt, int prepare_rc, sqlite3* db) : stmt_(stmt), rc_(prepare_rc), db_(db) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt();

  Stmt& Bind(int index, int64_t value);
  Stmt& Bind(int index, std::string_view text);
  Stmt& BindBlob(int index, const Bytes& blob);
  Stmt& BindNull(int index);

  // Steps once: true when a row is available, false when done.
  Result<bool> Next();
  // Steps until done (rows are ignored).
  Status Run();

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Text(int col) const;
  Bytes Blob(int col) const;

 private:
  sqlite3_stmt* stmt_;
  int rc_;
  sqlite3* db_;
};

class Connection {
 public:
  enum class Mode { kReadWrite, kReadOnly };

  // Opens the file (creating it in kReadWrite mode) and applies the connection PRAGMAs.
  // kUnavailable "storage_unavailable" when it cannot.
  static Result<std::unique_ptr<Connection>> Open(const std::string& path, Mode mode);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Borrows the cached statement for `sql`, preparing it on first use. `sql` must have static
  // storage duration (a string literal): the cache keys on it without copying.
  Stmt Prepare(std::string_view sql);
  // Runs one or more statements without caching (schema, PRAGMAs).
  Status Exec(const char* sql);

  int64_t LastInsertRowid() const { return sqlite3_last_insert_rowid(db_); }
  int Changes() const { return sqlite3_changes(db_); }
  // True when no transaction is open (e.g. SQLite rolled one back after an I/O error).
  bool InAutocommit() const { return sqlite3_get_autocommit(db_) != 0; }
  sqlite3* raw() const { return db_; }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}

  sqlite3* db_;
  std::unordered_map<std::string_view, sqlite3_stmt*> cache_;
};

// A read transaction on a read connection: every statement inside sees one snapshot.
class ReadTxn {
 public:
  explicit ReadTxn(Connection& conn);
  ~ReadTxn();
  ReadTxn(const ReadTxn&) = delete;
  ReadTxn& operator=(const ReadTxn&) = delete;
  const Status& status() const { return status_; }

 private:
  Connection& conn_;
  Status status_;
};

}  // namespace herald::sqlite

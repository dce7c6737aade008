#include "store/sqlite/connection.h"

#include <utility>

namespace herald::sqlite {

Error StorageError(int rc, sqlite3* db) {
  std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
      return MakeError(ErrorKind::kUnavailable, "storage_unavailable",
                       "Storage is unavailable or busy; retry later (" + detail + ").");
    case SQLITE_CONSTRAINT:
      return MakeError(ErrorKind::kConflict, "conflict",
                       "The write conflicts with data stored at the same time; retry it.");
    default:
      return MakeError(ErrorKind::kInternal, "storage_error", "Storage failed: " + detail + ".");
  }
}

// ---- Stmt ----

Stmt::~Stmt() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

Stmt& Stmt::Bind(int index, int64_t value) {
  if (stmt_ != nullptr) sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

Stmt& Stmt::Bind(int index, std::string_view text) {
  if (stmt_ != nullptr) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
  }
  return *this;
}

Stmt& Stmt::BindBlob(int index, const Bytes& blob) {
  if (stmt_ != nullptr) {
    // A zero-length blob is still a blob (not NULL): SQLite needs a non-null pointer for that.
    static const uint8_t kEmpty = 0;
    const void* data = blob.empty() ? &kEmpty : blob.data();
    sqlite3_bind_blob(stmt_, index, data, static_cast<int>(blob.size()), SQLITE_STATIC);
  }
  return *this;
}

Stmt& Stmt::BindNull(int index) {
  if (stmt_ != nullptr) sqlite3_bind_null(stmt_, index);
  return *this;
}

Result<bool> Stmt::Next() {
  if (stmt_ == nullptr) return StorageError(rc_, db_);
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return StorageError(rc, db_);
}

Status Stmt::Run() {
  for (;;) {
    Result<bool> row = Next();
    if (!row.ok()) return row.take_error();
    if (!*row) return Status::Ok();
  }
}

std::string Stmt::Text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string() : std::string(p, static_cast<size_t>(n));
}

Bytes Stmt::Blob(int col) const {
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, col));
  int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? Bytes() : Bytes(p, p + n);
}

// ---- Connection ----

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& path, Mode mode) {
  // Memory statistics take a global mutex on every allocation; nobody reads them. This only
  // works before SQLite initialises (first open in the process); later it is a harmless no-op.
  static const int kConfigured = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)kConfigured;
  int flags =
      SQLITE_OPEN_NOMUTEX | (mode == Mode::kReadWrite ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                                                      : SQLITE_OPEN_READONLY);
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    Error e = MakeError(ErrorKind::kUnavailable, "storage_unavailable",
                        "Cannot open the database " + path + ": " +
                            (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)) + ".");
    sqlite3_close_v2(db);
    return e;
  }
  sqlite3_extended_result_codes(db, 1);
  std::unique_ptr<Connection> conn(new Connection(db));
  // busy_timeout first: the journal_mode switch below may need to wait for another connection.
  // The write connection's cache is 16 MiB: with 64 MiB, SQLite's page-cache truncation (which
  // walks the cache's hash table) took 7% of the writer thread during a broadcast, more than the
  // extra pages saved; the OS page cache holds the rest.
  const char* pragmas = mode == Mode::kReadWrite ? "PRAGMA busy_timeout = 5000;"
                                                   "PRAGMA journal_mode = WAL;"
                                                   "PRAGMA synchronous = NORMAL;"
                                                   "PRAGMA secure_delete = ON;"
                                                   "PRAGMA foreign_keys = ON;"
                                                   "PRAGMA temp_store = MEMORY;"
                                                   "PRAGMA cache_size = -16384;"
                                                   "PRAGMA journal_size_limit = 67108864;"
                                                 : "PRAGMA busy_timeout = 5000;"
                                                   "PRAGMA secure_delete = ON;"
                                                   "PRAGMA temp_store = MEMORY;"
                                                   "PRAGMA cache_size = -8192;"
                                                   "PRAGMA query_only = ON;";
  Status s = conn->Exec(pragmas);
  if (!s.ok()) {
    Error e = s.take_error();
    e.kind = ErrorKind::kUnavailable;
    e.code = "storage_unavailable";
    return e;
  }
  return conn;
}

Connection::~Connection() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

Stmt Connection::Prepare(std::string_view sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) return Stmt(it->second, SQLITE_OK, db_);
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return Stmt(nullptr, rc, db_);
  }
  cache_.emplace(sql, stmt);
  return Stmt(stmt, SQLITE_OK, db_);
}

Status Connection::Exec(const char* sql) {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return StorageError(rc, db_);
  return Status::Ok();
}

// ---- ReadTxn ----

ReadTxn::ReadTxn(Connection& conn) : conn_(conn), status_(conn.Prepare("BEGIN").Run()) {}

ReadTxn::~ReadTxn() {
  if (status_.ok() && !conn_.InAutocommit()) {
    Status s = conn_.Prepare("COMMIT").Run();
    if (!s.ok() && !conn_.InAutocommit()) (void)conn_.Exec("ROLLBACK");
  }
}

}  // namespace herald::sqlite

// A thin layer over libpq for the PostgreSQL store: one connection (Conn) with parameterised
// statements, their results (Rows) read by column, and SQLSTATEs mapped to Herald's errors.
// Parameters go as text, except bytea, which goes binary; results come as text and bytea is
// decoded from PostgreSQL's hex form. Nothing here knows Herald's schema.
//
// Thread-safety: a Conn belongs to one thread at a time (the pool hands it out); Rows are
// independent values.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"

struct pg_conn;
struct pg_result;

namespace herald::pg {

using Bytes = std::vector<uint8_t>;

// A statement's parameters, $1 first.
class Params {
 public:
  Params& Text(std::string_view v);
  Params& Int(int64_t v);
  Params& Bool(bool v) { return Int(v ? 1 : 0); }
  Params& Blob(const Bytes& v);
  Params& Null();
  // A text[] array literal of the values ({"a","b"}), for = ANY($n).
  Params& TextArray(const std::vector<std::string>& v);
  Params& IntArray(const std::vector<int64_t>& v);

  int size() const { return static_cast<int>(values_.size()); }
  const char* const* values() const { return pointers_.data(); }
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

  Params() = default;
  Params(const Params&) = delete;
  Params& operator=(const Params&) = delete;

 private:
  void Add(std::string v, bool binary, bool null);
  std::vector<std::unique_ptr<std::string>> values_;  // stable addresses
  std::vector<const char*> pointers_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

// The rows of a statement that returned some.
class Rows {
 public:
  Rows() = default;
  explicit Rows(pg_result* r);
  ~Rows();
  Rows(Rows&& other) noexcept;
  Rows& operator=(Rows&& other) noexcept;
  Rows(const Rows&) = delete;
  Rows& operator=(const Rows&) = delete;

  int size() const;
  bool empty() const { return size() == 0; }
  bool IsNull(int row, int col) const;
  std::string Text(int row, int col) const;
  int64_t Int(int row, int col) const;  // 0 for NULL
  bool Bool(int row, int col) const;    // "t"/"1" are true
  Bytes Blob(int row, int col) const;   // from bytea's hex output
  // Rows changed by an INSERT/UPDATE/DELETE without RETURNING.
  int64_t Affected() const;

 private:
  pg_result* r_ = nullptr;
};

// One connection to the server.
class Conn {
 public:
  // Connects (a libpq URI or key=value string). kUnavailable "storage_unavailable" with the
  // server's words when it cannot.
  static Result<std::unique_ptr<Conn>> Open(const std::string& uri);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // Runs one statement; its rows (or the count it changed). The statement is prepared on this
  // connection the first time it runs and reused after (the server plans it once, not per call:
  // planning over the partitions was most of a short read's time).
  Result<Rows> Exec(std::string_view sql, const Params& params);
  Result<Rows> Exec(std::string_view sql) { return Exec(sql, Params()); }
  // Runs a script of several statements without parameters.
  Status Script(std::string_view sql);
  // COPY ... FROM STDIN (text format): `data` is the whole input.
  Result<int64_t> CopyIn(std::string_view copy_sql, std::string_view data);

  // False once the connection is lost: the pool drops it instead of handing it out again.
  bool Healthy() const;
  // The server's transaction state is idle (not inside BEGIN ... COMMIT).
  bool Idle() const;

  // Delivery events the current transaction has numbered so far (see EventSeqSql in
  // delivery_store.cc); InTransaction sets it to 0 at each BEGIN.
  int64_t tx_events = 0;

 private:
  explicit Conn(pg_conn* c) : c_(c) {}
  pg_conn* c_;
  std::unordered_map<std::string, std::string> prepared_;  // SQL -> statement name
};

// SQLSTATE classes that matter to callers.
bool IsUniqueViolation(const Error& e);  // 23505
bool IsRetryable(const Error& e);        // 40001 serialization, 40P01 deadlock
bool IsConnectionLost(const Error& e);   // the connection broke (class 08, 57P0x)

// A string in COPY's text format: \, tab, newline and CR escaped.
void AppendCopyText(std::string& out, std::string_view v);
// bytea in COPY's text format (\\x followed by hex).
void AppendCopyBytea(std::string& out, const Bytes& v);

}  // namespace herald::pg

#include "store/postgres/pg.h"

#include <libpq-fe.h>

#include <charconv>
#include <cstring>
#include <utility>

namespace herald::pg {
namespace {

constexpr Oid kByteaOid = 17;

// What a failed statement means for Herald, from its SQLSTATE.
Error ErrorFor(const char* sqlstate, std::string message) {
  const std::string_view s = sqlstate != nullptr ? sqlstate : "";
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  if (s == "23505") {
    return MakeError(ErrorKind::kConflict, "conflict", "A row with this key exists: " + message);
  }
  if (s == "40001" || s == "40P01") {
    return MakeError(ErrorKind::kUnavailable, "storage_busy",
                     "The database is busy (" + message + "); retry shortly.");
  }
  if (s.empty() || s.starts_with("08") || s.starts_with("57P")) {
    return MakeError(ErrorKind::kUnavailable, "storage_unavailable",
                     "The database is unreachable (" + message + "); retry shortly.");
  }
  if (s == "25006") {  // read-only transaction: connected to a standby (a failover under way)
    return MakeError(ErrorKind::kUnavailable, "storage_read_only",
                     "The database is read-only (a failover may be under way); retry shortly.");
  }
  if (s.starts_with("53")) {  // disk full, out of memory, too many connections
    return MakeError(ErrorKind::kUnavailable, "storage_full",
                     "The database is out of resources (" + message + "); retry later.");
  }
  return MakeError(
      ErrorKind::kInternal, "storage_error",
      "The database refused a statement (SQLSTATE " + std::string(s) + "): " + message);
}

Error ResultError(pg_conn* c, PGresult* r) {
  const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string message = r != nullptr ? PQresultErrorMessage(r) : "";
  if (message.empty()) message = PQerrorMessage(c);
  if (PQstatus(c) == CONNECTION_BAD) state = nullptr;  // lost: whatever the result said
  return ErrorFor(state, std::move(message));
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

// ---- Params ----

void Params::Add(std::string v, bool binary, bool null) {
  values_.push_back(std::make_unique<std::string>(std::move(v)));
  pointers_.push_back(null ? nullptr : values_.back()->data());
  lengths_.push_back(static_cast<int>(values_.back()->size()));
  formats_.push_back(binary ? 1 : 0);
}

Params& Params::Text(std::string_view v) {
  Add(std::string(v), false, false);
  return *this;
}

Params& Params::Int(int64_t v) {
  Add(std::to_string(v), false, false);
  return *this;
}

Params& Params::Blob(const Bytes& v) {
  Add(std::string(v.begin(), v.end()), true, false);
  return *this;
}

Params& Params::Null() {
  Add(std::string(), false, true);
  return *this;
}

Params& Params::TextArray(const std::vector<std::string>& v) {
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (char c : v[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  Add(std::move(out), false, false);
  return *this;
}

Params& Params::IntArray(const std::vector<int64_t>& v) {
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out.push_back(',');
    out += std::to_string(v[i]);
  }
  out.push_back('}');
  Add(std::move(out), false, false);
  return *this;
}

// ---- Rows ----

Rows::Rows(pg_result* r) : r_(r) {}
Rows::~Rows() {
  if (r_ != nullptr) PQclear(r_);
}
Rows::Rows(Rows&& other) noexcept : r_(std::exchange(other.r_, nullptr)) {}
Rows& Rows::operator=(Rows&& other) noexcept {
  if (this != &other) {
    if (r_ != nullptr) PQclear(r_);
    r_ = std::exchange(other.r_, nullptr);
  }
  return *this;
}

int Rows::size() const { return r_ == nullptr ? 0 : PQntuples(r_); }

bool Rows::IsNull(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }

std::string Rows::Text(int row, int col) const {
  return std::string(PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col)));
}

int64_t Rows::Int(int row, int col) const {
  const char* v = PQgetvalue(r_, row, col);
  const int n = PQgetlength(r_, row, col);
  int64_t out = 0;
  std::from_chars(v, v + n, out);
  return out;
}

bool Rows::Bool(int row, int col) const {
  const char* v = PQgetvalue(r_, row, col);
  return v[0] == 't' || v[0] == '1';
}

Bytes Rows::Blob(int row, int col) const {
  const char* v = PQgetvalue(r_, row, col);
  const auto n = static_cast<size_t>(PQgetlength(r_, row, col));
  Bytes out;
  if (PQftype(r_, col) != kByteaOid || n < 2 || v[0] != '\\' || v[1] != 'x') {
    out.assign(v, v + n);
    return out;
  }
  out.reserve((n - 2) / 2);
  for (size_t i = 2; i + 1 < n; i += 2) {
    const int hi = HexValue(v[i]);
    const int lo = HexValue(v[i + 1]);
    if (hi < 0 || lo < 0) break;
    out.push_back(static_cast<uint8_t>(hi * 16 + lo));
  }
  return out;
}

int64_t Rows::Affected() const {
  const char* n = r_ != nullptr ? PQcmdTuples(r_) : "";
  int64_t out = 0;
  std::from_chars(n, n + std::strlen(n), out);
  return out;
}

// ---- Conn ----

Result<std::unique_ptr<Conn>> Conn::Open(const std::string& uri) {
  pg_conn* c = PQconnectdb(uri.c_str());
  if (c == nullptr) {
    return MakeError(ErrorKind::kUnavailable, "storage_unavailable",
                     "Out of memory connecting to PostgreSQL.");
  }
  if (PQstatus(c) != CONNECTION_OK) {
    std::string message = PQerrorMessage(c);
    PQfinish(c);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
      message.pop_back();
    }
    return MakeError(ErrorKind::kUnavailable, "storage_unavailable",
                     "Cannot connect to PostgreSQL: " + message);
  }
  PQsetNoticeProcessor(
      c, [](void*, const char*) {}, nullptr);  // NOTICEs are not errors
  return std::unique_ptr<Conn>(new Conn(c));
}

Conn::~Conn() { PQfinish(c_); }

Result<Rows> Conn::Exec(std::string_view sql, const Params& params) {
  // Statements built for one size (n rows of VALUES) are many; past this many the rest run
  // unprepared rather than fill the server's memory.
  constexpr size_t kMaxPrepared = 256;
  std::string text(sql);
  auto it = prepared_.find(text);
  if (it == prepared_.end() && prepared_.size() < kMaxPrepared) {
    std::string name = "h" + std::to_string(prepared_.size());
    PGresult* p = PQprepare(c_, name.c_str(), text.c_str(), params.size(), nullptr);
    const bool ok = p != nullptr && PQresultStatus(p) == PGRES_COMMAND_OK;
    if (!ok) {
      Error e = ResultError(c_, p);
      if (p != nullptr) PQclear(p);
      return e;
    }
    PQclear(p);
    it = prepared_.emplace(text, std::move(name)).first;
  }
  PGresult* r = it != prepared_.end()
                    ? PQexecPrepared(c_, it->second.c_str(), params.size(), params.values(),
                                     params.lengths(), params.formats(), 0)
                    : PQexecParams(c_, text.c_str(), params.size(), nullptr, params.values(),
                                   params.lengths(), params.formats(), 0);
  const ExecStatusType st = r != nullptr ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return Rows(r);
  Error e = ResultError(c_, r);
  if (r != nullptr) PQclear(r);
  return e;
}

Status Conn::Script(std::string_view sql) {
  const std::string text(sql);
  PGresult* r = PQexec(c_, text.c_str());
  const ExecStatusType st = r != nullptr ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    PQclear(r);
    return Status::Ok();
  }
  Error e = ResultError(c_, r);
  if (r != nullptr) PQclear(r);
  return e;
}

Result<int64_t> Conn::CopyIn(std::string_view copy_sql, std::string_view data) {
  const std::string text(copy_sql);
  PGresult* r = PQexec(c_, text.c_str());
  if (r == nullptr || PQresultStatus(r) != PGRES_COPY_IN) {
    Error e = ResultError(c_, r);
    if (r != nullptr) PQclear(r);
    return e;
  }
  PQclear(r);
  constexpr size_t kChunk = 1 << 20;
  bool sent = true;
  for (size_t at = 0; at < data.size() && sent; at += kChunk) {
    const size_t n = std::min(kChunk, data.size() - at);
    sent = PQputCopyData(c_, data.data() + at, static_cast<int>(n)) == 1;
  }
  if (PQputCopyEnd(c_, sent ? nullptr : "client failed to send") != 1) {
    return ErrorFor(nullptr, PQerrorMessage(c_));
  }
  Result<Rows> out = Error{};
  bool have = false;
  while (PGresult* end = PQgetResult(c_)) {
    if (!have) {
      if (PQresultStatus(end) == PGRES_COMMAND_OK) {
        out = Rows(end);
      } else {
        out = ResultError(c_, end);
        PQclear(end);
      }
      have = true;
    } else {
      PQclear(end);
    }
  }
  if (!have) return ErrorFor(nullptr, PQerrorMessage(c_));
  if (!out.ok()) return out.take_error();
  return out->Affected();
}

bool Conn::Healthy() const { return PQstatus(c_) == CONNECTION_OK; }

bool Conn::Idle() const { return PQtransactionStatus(c_) == PQTRANS_IDLE; }

// ---- errors ----

bool IsUniqueViolation(const Error& e) {
  return e.kind == ErrorKind::kConflict && e.code == "conflict";
}

bool IsRetryable(const Error& e) { return e.code == "storage_busy"; }

bool IsConnectionLost(const Error& e) {
  return e.code == "storage_unavailable" || e.code == "storage_read_only";
}

// ---- COPY text format ----

void AppendCopyText(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out.push_back(c);
    }
  }
}

void AppendCopyBytea(std::string& out, const Bytes& v) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "\\\\x";
  for (uint8_t b : v) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
}

}  // namespace herald::pg

// POST /v1/users:import — NDJSON, one user per line with PUT semantics, read as a stream. The
// request's thread only splits the body into lines. Each chunk of `batch` lines gets a task that
// parses and validates it, then hands its users to Store::PutUsers; up to kChunksInFlight tasks
// run at once, so both cores parse while the store writes. A chunk that names a user of an
// earlier chunk still in flight writes after it (later lines win, as in a sequential import).
// Outcomes are collected in chunk order, so refusals are reported in line order. Chunks in
// flight are bounded: memory stays flat whatever the body's size, and a slow store slows the
// reading of the body.
#include <algorithm>
#include <atomic>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/routing.h"
#include "api/user_codec.h"
#include "observe/log.h"

namespace herald::api {
namespace {

constexpr size_t kMaxLineBytes = 64 * 1024;
constexpr size_t kMaxReportedErrors = 1000;
constexpr size_t kChunksInFlight = 4;  // being parsed, sealed or written at once

Error LineTooLong() {
  return MakeError(ErrorKind::kTooLarge, "line_too_long",
                   "A line is longer than 65536 bytes; one user per line, please.");
}

struct Refusal {
  int64_t line = 0;
  Error error;
};

void SortByLine(std::vector<Refusal>& refusals) {
  std::stable_sort(refusals.begin(), refusals.end(),
                   [](const Refusal& a, const Refusal& b) { return a.line < b.line; });
}

// Lines as read from the body, not parsed yet.
struct RawChunk {
  struct Line {
    int64_t number = 0;
    size_t begin = 0;
    size_t size = 0;
  };
  std::string text;  // the lines, back to back
  std::vector<Line> lines;
  std::vector<Refusal> refusals;  // lines refused while splitting (too long)
};

struct ParsedChunk {
  std::vector<User> users;
  std::vector<int64_t> user_lines;  // the line of each user
  std::vector<Refusal> refusals;    // by line
  std::vector<size_t> id_hashes;    // of the users' external ids, sorted
};

// One line, never throwing: a line the reader cannot handle is that line's refusal, not the
// import's failure (the lines before it may be stored already).
Result<User> ReadLine(std::string_view line, const UserDefaults& defaults) {
  try {
    return ReadUserLine(line, defaults);
  } catch (const std::exception&) {
    return MakeError(ErrorKind::kInvalid, "unreadable_line",
                     "This line could not be read as a user; check it against the PUT "
                     "/v1/users/{external_id} body.");
  }
}

ParsedChunk Parse(RawChunk chunk, const std::string& tenant_id, const UserDefaults& defaults) {
  ParsedChunk out;
  out.users.reserve(chunk.lines.size());
  out.user_lines.reserve(chunk.lines.size());
  out.id_hashes.reserve(chunk.lines.size());
  out.refusals = std::move(chunk.refusals);
  for (const RawChunk::Line& line : chunk.lines) {
    Result<User> user =
        ReadLine(std::string_view(chunk.text).substr(line.begin, line.size), defaults);
    if (!user.ok()) {
      out.refusals.push_back(Refusal{line.number, user.take_error()});
      continue;
    }
    user->tenant_id = tenant_id;
    out.id_hashes.push_back(std::hash<std::string>()(user->external_id));
    out.users.push_back(std::move(*user));
    out.user_lines.push_back(line.number);
  }
  SortByLine(out.refusals);
  std::sort(out.id_hashes.begin(), out.id_hashes.end());
  return out;
}

// True when two sorted hash lists share a value: the chunks may name the same user, so the
// later one must not be written before the earlier one is.
bool Overlap(const std::vector<size_t>& a, const std::vector<size_t>& b) {
  auto i = a.begin();
  auto j = b.begin();
  while (i != a.end() && j != b.end()) {
    if (*i == *j) return true;
    *i < *j ? ++i : ++j;
  }
  return false;
}

// What a chunk's task reports.
struct ChunkOutcome {
  std::vector<Refusal> refusals;  // by line
  int64_t created = 0;
  int64_t replaced = 0;
  std::optional<Error> failure;  // the store failed the chunk as a whole
};

// An earlier chunk still in flight, as a later chunk's task sees it.
struct EarlierChunk {
  std::shared_future<std::vector<size_t>> id_hashes;  // ready once it is parsed
  std::shared_future<ChunkOutcome> outcome;           // ready once it is written
};

struct ChunkJob {
  Store* store = nullptr;
  std::string tenant_id;
  UserDefaults defaults;
  std::vector<EarlierChunk> earlier;
  std::shared_ptr<std::atomic<bool>> failed;  // set by the first chunk the store fails
};

// Parses `chunk`, waits for the earlier chunks that name the same users, writes it.
ChunkOutcome RunChunk(RawChunk chunk, const ChunkJob& job,
                      std::promise<std::vector<size_t>> id_hashes) {
  ParsedChunk parsed = Parse(std::move(chunk), job.tenant_id, job.defaults);
  id_hashes.set_value(parsed.id_hashes);
  for (const EarlierChunk& e : job.earlier) {
    if (Overlap(e.id_hashes.get(), parsed.id_hashes)) e.outcome.wait();
  }
  ChunkOutcome out;
  out.refusals = std::move(parsed.refusals);
  if (parsed.users.empty() || job.failed->load()) return out;  // after a failure: write no more
  auto results = job.store->PutUsers(job.tenant_id, std::move(parsed.users));
  if (!results.ok()) {
    job.failed->store(true);
    out.failure = results.take_error();
    return out;
  }
  bool refused = false;
  for (size_t i = 0; i < results->size(); ++i) {
    ImportLineResult& r = (*results)[i];
    if (!r.ok) {
      out.refusals.push_back(Refusal{parsed.user_lines[i], std::move(r.error)});
      refused = true;
    } else if (r.created) {
      ++out.created;
    } else {
      ++out.replaced;
    }
  }
  if (refused) SortByLine(out.refusals);
  return out;
}

class ImportSink final : public http::BodySink {
 public:
  ImportSink(Store* store, std::string tenant_id, UserDefaults defaults, size_t batch)
      : store_(store), tenant_id_(std::move(tenant_id)), defaults_(defaults), batch_size_(batch) {}

  ~ImportSink() override {
    for (const Chunk& c : chunks_) c.outcome.wait();
  }

  bool Write(std::string_view piece) override {
    while (!piece.empty()) {
      const size_t nl = piece.find('\n');
      if (nl == std::string_view::npos) {
        Carry(piece);
        break;
      }
      if (carry_.empty() && !skipping_) {
        Line(piece.substr(0, nl));
      } else {
        Carry(piece.substr(0, nl));
        if (!skipping_) Line(carry_);
        carry_.clear();
      }
      skipping_ = false;
      piece.remove_prefix(nl + 1);
    }
    return !failed_ && !store_failed_->load();
  }

  http::Response Finish(bool complete) override {
    if (complete && (!carry_.empty() || skipping_)) {
      if (!skipping_) Line(carry_);
      carry_.clear();
    }
    Dispatch();
    while (!chunks_.empty()) Collect();
    // Lines already stored stay stored: once any were, the answer reports them (200) with what
    // stopped the import, never an error status the client would read as "nothing happened".
    const bool stored = created_ + replaced_ > 0;
    if (failed_ && !stored) return ErrorResponse(failure_);
    Json errors = Json::array();
    for (const auto& [line, e] : errors_) {
      errors.push_back(
          {{"line", line}, {"code", e.code}, {"message", e.message}, {"field", e.field}});
    }
    Json body{{"lines", lines_},
              {"created", created_},
              {"replaced", replaced_},
              {"refused", refused_},
              {"errors", errors},
              {"errors_truncated", refused_ > errors_.size()},
              {"complete", complete && !failed_}};
    if (failed_) body["error"] = ErrorJson(failure_);
    return JsonResponse((complete && !failed_) || stored ? 200 : 400, body);
  }

 private:
  struct Chunk {
    std::shared_future<std::vector<size_t>> id_hashes;
    std::shared_future<ChunkOutcome> outcome;
  };

  void Carry(std::string_view part) {
    if (skipping_) return;
    if (carry_.size() + part.size() > kMaxLineBytes) {
      ++line_no_;
      ++lines_;
      raw_.refusals.push_back(Refusal{line_no_, LineTooLong()});
      carry_.clear();
      skipping_ = true;
      return;
    }
    carry_.append(part);
  }

  void Line(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const int64_t number = ++line_no_;
    if (line.find_first_not_of(" \t") == std::string_view::npos) return;  // blank: no user
    ++lines_;
    if (line.size() > kMaxLineBytes) {
      raw_.refusals.push_back(Refusal{number, LineTooLong()});
      return;
    }
    raw_.lines.push_back(RawChunk::Line{number, raw_.text.size(), line.size()});
    raw_.text.append(line);
    if (raw_.lines.size() >= batch_size_) Dispatch();
  }

  // Starts a task for the lines read so far, after the oldest chunk finished when
  // kChunksInFlight are in flight.
  void Dispatch() {
    if (raw_.lines.empty() && raw_.refusals.empty()) return;
    while (chunks_.size() >= kChunksInFlight) Collect();
    ChunkJob job{store_, tenant_id_, defaults_, {}, store_failed_};
    for (const Chunk& c : chunks_) job.earlier.push_back(EarlierChunk{c.id_hashes, c.outcome});
    std::promise<std::vector<size_t>> id_hashes;
    Chunk chunk;
    chunk.id_hashes = id_hashes.get_future().share();
    chunk.outcome = std::async(std::launch::async, [raw = std::move(raw_), job = std::move(job),
                                                    id_hashes = std::move(id_hashes)]() mutable {
                      return RunChunk(std::move(raw), job, std::move(id_hashes));
                    }).share();
    chunks_.push_back(std::move(chunk));
    raw_ = RawChunk{};
  }

  // Waits for the oldest chunk and reports its lines.
  void Collect() {
    const ChunkOutcome& out = chunks_.front().outcome.get();
    if (out.failure && !failed_) {
      failed_ = true;
      failure_ = *out.failure;
    }
    created_ += out.created;
    replaced_ += out.replaced;
    for (const Refusal& r : out.refusals) Refuse(r.line, r.error);
    chunks_.pop_front();
  }

  void Refuse(int64_t line, Error error) {
    ++refused_;
    if (errors_.size() < kMaxReportedErrors) errors_.emplace_back(line, std::move(error));
  }

  Store* store_;
  std::string tenant_id_;
  UserDefaults defaults_;
  size_t batch_size_;
  std::string carry_;
  bool skipping_ = false;
  RawChunk raw_;
  std::deque<Chunk> chunks_;  // in line order
  std::shared_ptr<std::atomic<bool>> store_failed_ = std::make_shared<std::atomic<bool>>(false);
  int64_t line_no_ = 0, lines_ = 0, created_ = 0, replaced_ = 0;
  size_t refused_ = 0;
  std::vector<std::pair<int64_t, Error>> errors_;
  bool failed_ = false;
  Error failure_;
};

// Answers a refusal before the body is read (unknown tenant).
class RefusalSink final : public http::BodySink {
 public:
  explicit RefusalSink(Error e) : error_(std::move(e)) {}
  bool Write(std::string_view) override { return false; }
  http::Response Finish(bool) override { return ErrorResponse(error_); }

 private:
  Error error_;
};

}  // namespace

void RegisterImportRoutes(Router& router, ApiContext& ctx) {
  Store* store = ctx.store;
  const size_t batch = ctx.options.import_batch;
  router.Add({.method = "POST",
              .pattern = "/v1/users:import",
              .auth = Auth::kTenant,
              .scope = "users:write",
              .stream = [store, batch](const Call& call) -> std::unique_ptr<http::BodySink> {
                auto tenant = store->GetTenant(call.who.tenant_id);
                if (!tenant.ok()) return std::make_unique<RefusalSink>(tenant.error());
                return std::make_unique<ImportSink>(
                    store, tenant->id, UserDefaults{NowMillis(), tenant->default_consent_days},
                    batch);
              }});
}

}  // namespace herald::api

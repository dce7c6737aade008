// POST /v1/users:import — NDJSON, one user per line with PUT semantics, read as a stream: lines
// are parsed and validated as the body arrives and written in batches while the next batch is
// parsed, so memory stays flat whatever the body's size.
#include <future>
#include <string>

#include "api/routing.h"
#include "api/user_codec.h"
#include "observe/log.h"

namespace herald::api {
namespace {

constexpr size_t kMaxLineBytes = 64 * 1024;
constexpr size_t kMaxReportedErrors = 1000;

Error LineTooLong() {
  return MakeError(ErrorKind::kTooLarge, "line_too_long",
                   "A line is longer than 65536 bytes; one user per line, please.");
}

class ImportSink final : public http::BodySink {
 public:
  ImportSink(Store* store, std::string tenant_id, UserDefaults defaults, size_t batch)
      : store_(store), tenant_id_(std::move(tenant_id)), defaults_(defaults), batch_size_(batch) {
    batch_.reserve(batch_size_);
  }

  ~ImportSink() override {
    if (pending_.valid()) pending_.wait();
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
    return !failed_;
  }

  http::Response Finish(bool complete) override {
    if (complete && (!carry_.empty() || skipping_)) {
      if (!skipping_) Line(carry_);
      carry_.clear();
    }
    Submit();
    Drain();
    if (failed_) return ErrorResponse(failure_);
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
              {"complete", complete}};
    return JsonResponse(complete ? 200 : 400, body);
  }

 private:
  void Carry(std::string_view part) {
    if (skipping_) return;
    if (carry_.size() + part.size() > kMaxLineBytes) {
      ++line_no_;
      ++lines_;
      Refuse(line_no_, LineTooLong());
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
    if (line.size() > kMaxLineBytes) return Refuse(number, LineTooLong());
    auto doc = ParseJson(line);
    if (!doc.ok()) return Refuse(number, doc.error());
    auto user = ReadUser(*doc, defaults_, true);
    if (!user.ok()) return Refuse(number, user.error());
    user->tenant_id = tenant_id_;
    batch_.push_back(std::move(*user));
    batch_lines_.push_back(number);
    if (batch_.size() >= batch_size_) Submit();
  }

  void Refuse(int64_t line, Error error) {
    ++refused_;
    if (errors_.size() < kMaxReportedErrors) errors_.emplace_back(line, std::move(error));
  }

  // Hands the current batch to the store on another thread, after the previous one finished.
  void Submit() {
    if (batch_.empty() || failed_) return;
    Drain();
    pending_lines_ = std::move(batch_lines_);
    batch_lines_.clear();
    pending_ = std::async(std::launch::async,
                          [store = store_, tenant = tenant_id_, users = std::move(batch_)]() mutable {
                            return store->PutUsers(tenant, std::move(users));
                          });
    batch_.clear();
    batch_.reserve(batch_size_);
  }

  void Drain() {
    if (!pending_.valid()) return;
    auto results = pending_.get();
    if (!results.ok()) {
      failed_ = true;
      failure_ = results.take_error();
      return;
    }
    for (size_t i = 0; i < results->size(); ++i) {
      const auto& r = (*results)[i];
      if (!r.ok) {
        Refuse(pending_lines_[i], r.error);
      } else if (r.created) {
        ++created_;
      } else {
        ++replaced_;
      }
    }
  }

  Store* store_;
  std::string tenant_id_;
  UserDefaults defaults_;
  size_t batch_size_;
  std::string carry_;
  bool skipping_ = false;
  std::vector<User> batch_;
  std::vector<int64_t> batch_lines_;
  std::future<Result<std::vector<ImportLineResult>>> pending_;
  std::vector<int64_t> pending_lines_;
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

// CurlClient: libcurl's multi interface driven by its owner's Boost.Asio event loop
// (CurlEventDriver turns socket readiness and curl's timer into curl_multi_socket_action; this
// file decides what goes into curl and completes what comes out). Submissions from other
// threads go through one mutex-protected vector that the loop drains in batches; easy handles
// are pooled.
//
// Admission. curl 7.88 runs every transfer attached to a connection's socket on each event of
// that socket, so handing it more HTTP/2 requests than the server has streams makes every event
// slower without sending anything sooner. Each origin therefore gets at most
// max_connections_per_host * min(max_concurrent_streams, kAssumedServerStreams) transfers inside
// curl; the rest wait in the origin's queue (their timeout keeps counting; a sweep expires them).
// Across origins, max_active_transfers bounds the easy handles in use.
//
// h2c and libcurl < 7.89 (Debian 12 ships 7.88.1): a CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE request
// that reuses an h2c connection switches it to HTTP/2 a second time, which breaks every stream
// on it ("Error in the HTTP2 framing layer", curl issue 10634). CURL_HTTP_VERSION_2_0 reuses an
// h2c connection correctly, but on a new connection it would send HTTP/1.1 + Upgrade, which
// prior-knowledge servers do not speak. So an h2c request runs as kReuseOnly (2_0, and its
// open-socket callback refuses any new socket); when curl wanted a new connection for it, it runs
// again as the origin's single kOpener (prior knowledge + CURLOPT_FRESH_CONNECT, so it never
// reuses), and the origin's queue holds still until the opener's connection is up.
#include "net/curl_client.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cmath>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "net/curl_event_driver.h"
#include "net/curl_transfer.h"
#include "net/http_client.h"

namespace herald::net {
namespace internal {

// Per origin ("scheme://host:port"): how many of its transfers curl holds, and who waits.
struct OriginState {
  size_t in_curl = 0;
  std::deque<HttpJob> queued;
  bool opener_active = false;  // an h2c kOpener is connecting: hold the queue
  bool starved = false;        // in the client's list of origins waiting for max_active room
};

}  // namespace internal

namespace {

namespace asio = boost::asio;
using internal::Completion;
using internal::FailedCompletion;
using internal::H2cRole;
using internal::HttpJob;
using internal::MailJob;
using internal::OriginState;
using internal::Transfer;
using Clock = std::chrono::steady_clock;

constexpr const char* kShutDown = "client shut down";
constexpr const char* kQueuedTooLong = "timed out while queued in the client";
// Streams per HTTP/2 connection that servers commonly allow (nghttpd, FCM: 100; nginx: 128).
constexpr int kAssumedServerStreams = 100;
constexpr auto kSweepInterval = std::chrono::milliseconds(100);

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// "scheme://host:port" of a URL, lower-cased, into `out` (reused: no allocation once warm).
void OriginOf(const std::string& url, std::string& out) {
  const size_t scheme_end = url.find("://");
  const size_t start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  const size_t end = url.find_first_of("/?#", start);
  out.assign(url, 0, end);
  for (char& c : out) c = AsciiLower(c);
}

bool IsExpired(const HttpJob& job, Clock::time_point now) {
  return job.request.timeout_ms > 0 &&
         now - job.submitted >= std::chrono::milliseconds(job.request.timeout_ms);
}
bool IsExpired(const MailJob& job, Clock::time_point now) {
  return job.message.timeout_ms > 0 &&
         now - job.submitted >= std::chrono::milliseconds(job.message.timeout_ms);
}
bool IsExpired(const std::variant<HttpJob, MailJob>& job, Clock::time_point now) {
  return std::visit([&](const auto& j) { return IsExpired(j, now); }, job);
}

template <typename JobType>
Completion Expire(JobType job) {
  return FailedCompletion(std::move(job), CURLE_OPERATION_TIMEDOUT, kQueuedTooLong, true);
}
Completion Expire(std::variant<HttpJob, MailJob> job) {
  return std::visit([](auto& j) { return Expire(std::move(j)); }, job);
}

class CurlHttpClient final : public internal::CurlClient {
 public:
  CurlHttpClient(const HttpClientOptions& options, asio::io_context& io);
  ~CurlHttpClient() override;

  bool ok() const { return multi_ != nullptr; }

  void Submit(HttpJob job) override { SubmitJob(std::move(job)); }
  void Submit(MailJob job) override { SubmitJob(std::move(job)); }
  void Shutdown() override;
  size_t in_flight() const override { return in_flight_.load(std::memory_order_relaxed); }

 private:
  using Job = std::variant<HttpJob, MailJob>;

  void SubmitJob(Job job);
  void Drain();
  void Admit(Job job);
  void AdmitHttp(HttpJob job);
  H2cRole RoleFor(const HttpJob& job) const;
  void PumpOrigin(OriginState& origin);
  void PumpWaiting();
  bool HasRoom() const { return active_.size() < max_active_; }
  // Hands the request to curl; false when it completed instead (expired, curl refused it).
  template <typename JobType>
  bool StartJob(JobType job, OriginState* origin, H2cRole role);
  void NeedsConnection(OriginState& origin, HttpJob job);
  void ProcessDone();
  void Complete(Completion completion);
  void Sweep();
  void ArmSweep();

  std::unique_ptr<Transfer> TakeTransfer();
  std::unique_ptr<Transfer> DetachActive(Transfer* transfer);

  static void OnOpenerConnected(void* self, Transfer* transfer);

  const HttpClientOptions options_;
  const size_t max_active_;
  const size_t max_per_origin_;
  internal::TransferDefaults defaults_;
  bool h2c_workaround_ = false;
  asio::io_context& io_;
  asio::steady_timer sweep_timer_;
  CURLM* multi_ = nullptr;
  std::unique_ptr<internal::CurlEventDriver> driver_;

  // Event-loop thread only.
  std::vector<std::unique_ptr<Transfer>> pool_;           // idle easy handles
  std::vector<std::unique_ptr<Transfer>> active_;         // in the multi handle
  std::deque<Job> backlog_;                               // waiting for room under max_active_
  std::deque<OriginState*> starved_;                      // origins whose queue waits for that room
  std::unordered_map<std::string, OriginState> origins_;  // never erased: pointers stay valid
  std::string origin_key_;                                // scratch for OriginOf
  std::vector<Job> draining_;
  bool sweep_armed_ = false;

  // Shared with submitting threads.
  std::mutex mu_;
  std::vector<Job> submitted_;
  bool drain_posted_ = false;
  bool accepting_ = true;
  std::atomic<size_t> in_flight_{0};
};

CurlHttpClient::CurlHttpClient(const HttpClientOptions& options, asio::io_context& io)
    : options_(options),
      max_active_(static_cast<size_t>(std::max(1, options.max_active_transfers))),
      max_per_origin_(static_cast<size_t>(
          std::max(1, options.max_connections_per_host) *
          std::clamp(options.max_concurrent_streams, 1, kAssumedServerStreams))),
      io_(io),
      sweep_timer_(io_) {
  static std::once_flag global_init;
  std::call_once(global_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  multi_ = curl_multi_init();
  if (multi_ == nullptr) return;
  driver_ = std::make_unique<internal::CurlEventDriver>(io_, multi_, [this] { ProcessDone(); });
  curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                    static_cast<long>(std::max(1, options_.max_connections_per_host)));
  curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                    static_cast<long>(std::max(1, options_.max_total_connections)));
  curl_multi_setopt(multi_, CURLMOPT_MAX_CONCURRENT_STREAMS,
                    static_cast<long>(std::max(1, options_.max_concurrent_streams)));

  defaults_.connect_timeout_ms = std::max(0, options_.connect_timeout_ms);
  defaults_.close_socket = &internal::CurlEventDriver::CloseSocket;
  defaults_.close_socket_data = driver_.get();
  defaults_.opener_connected = &CurlHttpClient::OnOpenerConnected;
  defaults_.opener_connected_data = this;
  defaults_.destinations = options_.destinations.get();
  if (CURL* probe = curl_easy_init(); probe != nullptr) {
    char* ca = nullptr;
    if (curl_easy_getinfo(probe, CURLINFO_CAINFO, &ca) == CURLE_OK && ca != nullptr) {
      defaults_.default_ca_file = ca;
    }
    curl_easy_cleanup(probe);
  }
  h2c_workaround_ = curl_version_info(CURLVERSION_NOW)->version_num < 0x075900;  // fixed in 7.89
  submitted_.reserve(256);
  draining_.reserve(256);
}

CurlHttpClient::~CurlHttpClient() {
  active_.clear();
  pool_.clear();
  if (multi_ != nullptr) {
    curl_multi_cleanup(multi_);
    driver_->Stop();
  }
}

void CurlHttpClient::SubmitJob(Job job) {
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  std::unique_lock lock(mu_);
  if (!accepting_) {
    lock.unlock();
    std::visit(
        [this](auto& j) {
          Complete(FailedCompletion(std::move(j), CURLE_ABORTED_BY_CALLBACK, kShutDown, false));
        },
        job);
    return;
  }
  submitted_.push_back(std::move(job));
  if (drain_posted_) return;
  drain_posted_ = true;
  lock.unlock();
  asio::post(io_, [this] { Drain(); });
}

void CurlHttpClient::Drain() {
  {
    std::lock_guard lock(mu_);
    draining_.swap(submitted_);
    drain_posted_ = false;
  }
  if (multi_ == nullptr) return;  // shut down meanwhile (Shutdown completed them)
  for (Job& job : draining_) {
    if (backlog_.empty() && HasRoom()) {
      Admit(std::move(job));
    } else {
      backlog_.push_back(std::move(job));
    }
  }
  draining_.clear();
  if (!backlog_.empty()) ArmSweep();
}

void CurlHttpClient::Admit(Job job) {
  if (auto* http = std::get_if<HttpJob>(&job)) {
    AdmitHttp(std::move(*http));
  } else {
    StartJob(std::move(std::get<MailJob>(job)), nullptr, H2cRole::kPlain);
  }
}

void CurlHttpClient::AdmitHttp(HttpJob job) {
  OriginOf(job.request.url, origin_key_);
  auto it = origins_.find(origin_key_);
  if (it == origins_.end()) it = origins_.emplace(origin_key_, OriginState{}).first;
  // Through the queue, so that it never overtakes requests of its origin that wait there.
  it->second.queued.push_back(std::move(job));
  PumpOrigin(it->second);
}

H2cRole CurlHttpClient::RoleFor(const HttpJob& job) const {
  const std::string& url = job.request.url;
  const bool cleartext =
      url.size() > 5 && AsciiLower(url[0]) == 'h' && AsciiLower(url[3]) == 'p' && url[4] == ':';
  return h2c_workaround_ && job.request.h2c && cleartext ? H2cRole::kReuseOnly : H2cRole::kPlain;
}

void CurlHttpClient::PumpOrigin(OriginState& origin) {
  while (!origin.queued.empty() && !origin.opener_active && origin.in_curl < max_per_origin_) {
    if (!HasRoom()) {
      if (!origin.starved) {
        origin.starved = true;
        starved_.push_back(&origin);
      }
      break;
    }
    HttpJob job = std::move(origin.queued.front());
    origin.queued.pop_front();
    const H2cRole role = RoleFor(job);
    StartJob(std::move(job), &origin, role);
  }
  if (!origin.queued.empty()) ArmSweep();
}

// Room under max_active_ went to origins that waited for it first, then to the backlog.
void CurlHttpClient::PumpWaiting() {
  while (multi_ != nullptr && !starved_.empty() && HasRoom()) {
    OriginState* origin = starved_.front();
    starved_.pop_front();
    origin->starved = false;
    PumpOrigin(*origin);
  }
  while (multi_ != nullptr && !backlog_.empty() && HasRoom()) {
    Job job = std::move(backlog_.front());
    backlog_.pop_front();
    Admit(std::move(job));
  }
}

template <typename JobType>
bool CurlHttpClient::StartJob(JobType job, OriginState* origin, H2cRole role) {
  long remaining_ms = 0;  // curl: no timeout
  const int timeout_ms = [&] {
    if constexpr (std::is_same_v<JobType, HttpJob>) {
      return job.request.timeout_ms;
    } else {
      return job.message.timeout_ms;
    }
  }();
  if (timeout_ms > 0) {
    const double waited =
        std::chrono::duration<double, std::milli>(Clock::now() - job.submitted).count();
    const double left = timeout_ms - waited;
    if (left < 1) {
      Complete(FailedCompletion(std::move(job), CURLE_OPERATION_TIMEDOUT, kQueuedTooLong, true));
      return false;
    }
    remaining_ms = static_cast<long>(std::ceil(left));
  }
  std::unique_ptr<Transfer> transfer = TakeTransfer();
  if (transfer->easy() == nullptr) {
    Complete(FailedCompletion(std::move(job), CURLE_OUT_OF_MEMORY, "curl_easy_init failed", false));
    return false;
  }
  if constexpr (std::is_same_v<JobType, HttpJob>) {
    transfer->origin = origin;
    transfer->PrepareHttp(std::move(job), remaining_ms, role);
  } else {
    transfer->origin = nullptr;
    transfer->PrepareMail(std::move(job), remaining_ms);
  }
  const CURLMcode added = curl_multi_add_handle(multi_, transfer->easy());
  if (added != CURLM_OK) {
    Completion completion = transfer->Abort(CURLE_FAILED_INIT, curl_multi_strerror(added));
    pool_.push_back(std::move(transfer));
    Complete(std::move(completion));
    return false;
  }
  if (origin != nullptr) ++origin->in_curl;
  transfer->active_index = active_.size();
  active_.push_back(std::move(transfer));
  return true;
}

void CurlHttpClient::NeedsConnection(OriginState& origin, HttpJob job) {
  if (origin.opener_active) {
    origin.queued.push_front(std::move(job));  // it was admitted before those still queued
    ArmSweep();
    return;
  }
  origin.opener_active = true;
  if (!StartJob(std::move(job), &origin, H2cRole::kOpener)) {
    origin.opener_active = false;
    PumpOrigin(origin);
  }
}

void CurlHttpClient::ProcessDone() {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL* easy = msg->easy_handle;
    const CURLcode result = msg->data.result;
    char* private_data = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &private_data);
    curl_multi_remove_handle(multi_, easy);  // invalidates msg
    std::unique_ptr<Transfer> transfer = DetachActive(reinterpret_cast<Transfer*>(private_data));
    OriginState* origin = transfer->origin;
    if (origin != nullptr) --origin->in_curl;
    const H2cRole role = transfer->role();
    if (role == H2cRole::kReuseOnly && result != CURLE_OK && transfer->refused_socket()) {
      // No h2c connection to ride: an opener makes one. Either curl found none for a request it
      // had not sent, or it wanted a fresh connection to retry one that it had sent on a
      // connection that went away unanswered (GOAWAY above the stream's id, REFUSED_STREAM, a
      // reused connection found dead) — a retry curl deems safe and would make itself on any
      // other connection. Refusing it used to fail such a request with "Couldn't connect".
      HttpJob job = transfer->TakeHttpJob();
      pool_.push_back(std::move(transfer));
      NeedsConnection(*origin, std::move(job));
      continue;
    }
    const bool opener_failed = role == H2cRole::kOpener && !transfer->request_started();
    Completion completion = transfer->Finish(result);
    pool_.push_back(std::move(transfer));
    if (opener_failed) {
      origin->opener_active = false;
      if (result == CURLE_COULDNT_CONNECT || result == CURLE_COULDNT_RESOLVE_HOST) {
        // Unreachable: the queued requests would fail the same way, one after another.
        std::deque<HttpJob> queued = std::move(origin->queued);
        origin->queued.clear();
        for (HttpJob& job : queued) {
          Complete(FailedCompletion(std::move(job), result, completion.http.error, false));
        }
      }
    }
    Complete(std::move(completion));
    if (origin != nullptr) PumpOrigin(*origin);
  }
  PumpWaiting();
}

void CurlHttpClient::Complete(Completion completion) {
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  completion.Run();
}

void CurlHttpClient::ArmSweep() {
  if (sweep_armed_ || multi_ == nullptr) return;
  sweep_armed_ = true;
  sweep_timer_.expires_after(kSweepInterval);
  sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
    sweep_armed_ = false;
    if (!ec) Sweep();
  });
}

// Completes queued requests whose timeout ran out (in curl, curl's own timer does it).
void CurlHttpClient::Sweep() {
  if (multi_ == nullptr) return;
  const Clock::time_point now = Clock::now();
  std::vector<Completion> expired;
  // Keeps the unexpired jobs of `queue` in order; the expired ones become completions.
  auto sift = [&](auto& queue) {
    if (std::none_of(queue.begin(), queue.end(),
                     [&](const auto& entry) { return IsExpired(entry, now); })) {
      return;  // the common case: nothing to move
    }
    std::remove_reference_t<decltype(queue)> kept;
    for (auto& entry : queue) {
      if (IsExpired(entry, now)) {
        expired.push_back(Expire(std::move(entry)));
      } else {
        kept.push_back(std::move(entry));
      }
    }
    queue.swap(kept);
  };
  sift(backlog_);
  bool waiting = !backlog_.empty();
  for (auto& [key, origin] : origins_) {
    sift(origin.queued);
    waiting = waiting || !origin.queued.empty();
  }
  for (Completion& completion : expired) Complete(std::move(completion));
  if (waiting) ArmSweep();
}

void CurlHttpClient::Shutdown() {
  if (multi_ == nullptr) return;
  // Requests inside curl first; their callbacks may still submit, which the loop below catches.
  while (!active_.empty()) {
    std::unique_ptr<Transfer> transfer = std::move(active_.back());
    active_.pop_back();
    curl_multi_remove_handle(multi_, transfer->easy());
    Completion completion = transfer->Abort(CURLE_ABORTED_BY_CALLBACK, kShutDown);
    pool_.push_back(std::move(transfer));
    Complete(std::move(completion));
  }
  for (;;) {
    std::vector<Job> jobs;
    {
      std::lock_guard lock(mu_);
      const bool queued = std::any_of(origins_.begin(), origins_.end(),
                                      [](const auto& o) { return !o.second.queued.empty(); });
      if (submitted_.empty() && backlog_.empty() && !queued) {
        accepting_ = false;  // from now on Submit completes at once
        break;
      }
      jobs.swap(submitted_);
    }
    for (Job& job : backlog_) jobs.push_back(std::move(job));
    backlog_.clear();
    for (auto& [key, origin] : origins_) {
      for (HttpJob& job : origin.queued) jobs.emplace_back(std::move(job));
      origin.queued.clear();
    }
    for (Job& job : jobs) {
      std::visit(
          [this](auto& j) {
            Complete(FailedCompletion(std::move(j), CURLE_ABORTED_BY_CALLBACK, kShutDown, false));
          },
          job);
    }
  }
  // Closes the cached connections; curl reports each socket (REMOVE, close hook) as it goes.
  curl_multi_cleanup(multi_);
  multi_ = nullptr;
  driver_->Stop();
  sweep_timer_.cancel();
}

std::unique_ptr<Transfer> CurlHttpClient::TakeTransfer() {
  if (pool_.empty()) return std::make_unique<Transfer>(&defaults_);
  std::unique_ptr<Transfer> transfer = std::move(pool_.back());
  pool_.pop_back();
  return transfer;
}

std::unique_ptr<Transfer> CurlHttpClient::DetachActive(Transfer* transfer) {
  const size_t index = transfer->active_index;
  std::unique_ptr<Transfer> owned = std::move(active_[index]);
  if (index + 1 != active_.size()) {
    active_[index] = std::move(active_.back());
    active_[index]->active_index = index;
  }
  active_.pop_back();
  return owned;
}

void CurlHttpClient::OnOpenerConnected(void* self_ptr, Transfer* transfer) {
  auto* self = static_cast<CurlHttpClient*>(self_ptr);
  OriginState* origin = transfer->origin;
  // Inside curl, just before it switches the new connection to HTTP/2: let the queue ride it
  // once curl has returned and the connection can multiplex.
  asio::post(self->io_, [self, origin] {
    if (self->multi_ == nullptr) return;
    origin->opener_active = false;
    self->PumpOrigin(*origin);
  });
}

}  // namespace

namespace internal {

std::unique_ptr<CurlClient> CurlClient::Make(const HttpClientOptions& options,
                                             asio::io_context& io) {
  auto client = std::make_unique<CurlHttpClient>(options, io);
  if (!client->ok()) return nullptr;
  return client;
}

}  // namespace internal
}  // namespace herald::net

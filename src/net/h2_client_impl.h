// The HTTP/2 client's implementation (internal to src/net; see h2_client.h for the contract).
// h2_client.cc: intake, origins and their connection pools; h2_client_lifecycle.cc:
// completions, retries, deadlines and shutdown.
#pragma once

// clang-format off
#include <utility>  // before Boost 1.74's Asio headers (GCC 12)
// clang-format on

#include <atomic>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "net/h2_client.h"
#include "net/h2_connection.h"
#include "net/h2_request.h"

namespace herald::net::internal {

struct H2Origin {
  UrlParts url;
  boost::asio::ssl::context* tls = nullptr;
  bool verify_tls = true;
  bool http1 = false;  // TLS peer without h2: the fallback serves this origin
  bool pump_pending = false;
  std::deque<H2Request*> queue;  // may hold completed tombstones
  size_t queued = 0;             // live requests in `queue`
  std::vector<std::shared_ptr<H2Connection>> connections;
};

namespace h2 {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

inline constexpr const char* kShutDown = "client shut down";
inline constexpr const char* kQueuedTooLong = "timed out while queued in the client";
// Servers rarely allow more streams per connection than this (nghttpd, FCM: 100; nginx: 128);
// the pool plans new connections with it until the server's SETTINGS say otherwise.
inline constexpr size_t kAssumedServerStreams = 100;
// Unprocessed attempts (GOAWAY, REFUSED_STREAM) before a request fails.
inline constexpr int kMaxRetries = 5;

class H2ClientImpl final : public H2Client, public H2ConnectionOwner {
 public:
  H2ClientImpl(const HttpClientOptions& options, asio::io_context& io, Fallback fallback)
      : options_(options),
        io_(io),
        fallback_(std::move(fallback)),
        deadline_timer_(io),
        planned_streams_(
            std::min<size_t>(kAssumedServerStreams,
                             static_cast<size_t>(std::max(1, options.max_concurrent_streams)))) {
    submitted_.reserve(256);
  }
  ~H2ClientImpl() override;

  void Submit(HttpJob job) override;
  void Shutdown() override;
  size_t in_flight() const override { return in_flight_.load(std::memory_order_relaxed); }

  void OnStreamDone(H2Request* request, StreamResult result) override {
    done_.emplace_back(request, std::move(result));
  }
  void AfterEvent(H2Connection& connection) override;
  void OnClosed(H2Connection& connection, int curl_code, const std::string& error,
                bool not_h2) override;

 private:
  void Drain();
  void Admit(HttpJob job, Clock::time_point now);
  H2Origin* OriginFor(const HttpRequest& request);
  asio::ssl::context* TlsContext(bool verify, const std::string& ca_file);
  void Enqueue(H2Request* request, bool front);
  void SchedulePump(H2Origin& origin);
  void Pump(H2Origin& origin);
  void ProcessDone();
  void FailQueued(H2Origin& origin, int curl_code, const std::string& error);
  void Finish(H2Request* request, HttpResponse response);
  void Fail(H2Request* request, int curl_code, std::string error, bool timed_out, bool sent);
  void ArmDeadline(Clock::time_point at);
  void OnDeadline();

  const HttpClientOptions options_;
  asio::io_context& io_;
  Fallback fallback_;
  asio::steady_timer deadline_timer_;
  const size_t planned_streams_;

  // Event-loop thread only.
  std::unordered_map<std::string, std::unique_ptr<H2Origin>> origins_;
  std::map<std::pair<bool, std::string>, std::unique_ptr<asio::ssl::context>> tls_contexts_;
  std::multimap<Clock::time_point, H2Request*> deadlines_;
  Clock::time_point armed_ = Clock::time_point::max();
  std::vector<std::pair<H2Request*, StreamResult>> done_;
  std::vector<H2Origin*> to_pump_;
  std::vector<HttpJob> draining_;
  UrlParts url_;            // scratch
  std::string origin_key_;  // scratch
  bool shut_down_ = false;

  // Shared with submitting threads.
  std::mutex mu_;
  std::vector<HttpJob> submitted_;
  bool drain_posted_ = false;
  bool accepting_ = true;
  std::atomic<size_t> in_flight_{0};
};

}  // namespace h2
}  // namespace herald::net::internal

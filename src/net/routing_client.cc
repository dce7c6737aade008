// MakeHttpClient: one event-loop thread ("herald-net") shared by two engines behind the one
// HttpClient. HTTP/2 origins (http:// with h2c, and https://) go to Herald's own nghttp2 client
// (h2_client.h); HTTP/1.1, SMTP, and https origins whose server does not select h2 go to
// libcurl (curl_client.h). With HttpClientOptions::native_http2 off, libcurl serves everything.
#include <pthread.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <thread>

#include "net/curl_client.h"
#include "net/h2_client.h"
#include "net/http_client.h"

namespace herald::net {
namespace {

namespace asio = boost::asio;
using internal::HttpJob;
using internal::MailJob;

bool StartsWithNoCase(const std::string& s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    const char c = s[i];
    if (((c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c) != prefix[i]) return false;
  }
  return true;
}

class RoutingHttpClient final : public HttpClient {
 public:
  explicit RoutingHttpClient(const HttpClientOptions& options) : work_(asio::make_work_guard(io_)) {
    curl_ = internal::CurlClient::Make(options, io_);
    if (curl_ == nullptr) return;
    if (options.native_http2) {
      h2_ = internal::H2Client::Make(options, io_,
                                     [this](HttpJob job) { curl_->Submit(std::move(job)); });
    }
    thread_ = std::thread([this] { RunLoop(); });
    pthread_setname_np(thread_.native_handle(), "herald-net");
  }

  ~RoutingHttpClient() override {
    if (thread_.joinable()) {
      asio::post(io_, [this] {
        // curl first: its completions may still submit to the h2 client, whose Shutdown then
        // completes those too; after both, every Submit completes at once.
        curl_->Shutdown();
        if (h2_) h2_->Shutdown();
      });
      work_.reset();
      thread_.join();
    }
    h2_.reset();
    curl_.reset();
  }

  bool ok() const { return curl_ != nullptr; }

  using HttpClient::Send;
  using HttpClient::SendMail;

  void Send(HttpRequest request, std::function<void(HttpResponse)> done) override {
    const bool h2 = h2_ && (StartsWithNoCase(request.url, "https://") ||
                            (request.h2c && StartsWithNoCase(request.url, "http://")));
    HttpJob job{std::move(request), std::move(done), std::chrono::steady_clock::now()};
    if (h2) {
      h2_->Submit(std::move(job));
    } else {
      curl_->Submit(std::move(job));
    }
  }

  void SendMail(SmtpMessage message, std::function<void(SmtpResult)> done) override {
    curl_->Submit(MailJob{std::move(message), std::move(done), std::chrono::steady_clock::now()});
  }

  size_t in_flight() const override { return curl_->in_flight() + (h2_ ? h2_->in_flight() : 0); }

 private:
  void RunLoop() {
    for (;;) {
      try {
        io_.run();
        return;
      } catch (...) {
        // Nothing on the loop is meant to throw; keep serving rather than lose the requests.
      }
    }
  }

  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::unique_ptr<internal::CurlClient> curl_;
  std::unique_ptr<internal::H2Client> h2_;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<HttpClient> MakeHttpClient(const HttpClientOptions& options) {
  auto client = std::make_unique<RoutingHttpClient>(options);
  if (!client->ok()) return nullptr;
  return client;
}

}  // namespace herald::net

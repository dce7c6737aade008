// Internal to the HTTP server's tests: a small blocking client (POSIX sockets, OpenSSL for TLS)
// that speaks raw HTTP/1.1, so malformed input can be sent as easily as good input; a handler
// whose behaviour each test sets; and the fixture that starts a server on a free port.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "http/server.h"

namespace herald::http::test_support {

using namespace std::chrono_literals;
using Params = std::vector<std::pair<std::string, std::string>>;

inline const bool kSigpipeIgnored = [] {
  std::signal(SIGPIPE, SIG_IGN);  // a peer that went away must fail a write, not kill the test
  return true;
}();

inline std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct HttpReply {
  int status = 0;
  Params headers;  // names lower-cased
  std::string body;

  std::string Header(const std::string& name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) return value;
    }
    return "";
  }
  bool HasHeader(const std::string& name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) return true;
    }
    return false;
  }
};

// A blocking HTTP/1.1 client over one connection; reads time out after 5 s.
class TestClient {
 public:
  static std::unique_ptr<TestClient> Connect(uint16_t port, SSL_CTX* tls = nullptr) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return nullptr;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd);
      return nullptr;
    }
    auto client = std::unique_ptr<TestClient>(new TestClient(fd));
    client->SetReadTimeout(5s);
    timeval send_timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
    if (tls != nullptr) {
      client->ssl_ = SSL_new(tls);
      SSL_set_fd(client->ssl_, fd);
      SSL_set1_host(client->ssl_, "localhost");
      if (SSL_connect(client->ssl_) != 1) return nullptr;
    }
    return client;
  }

  ~TestClient() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
  }

  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      const long n = ssl_ != nullptr ? SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()))
                                     : ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // One response; with `head_request`, a response to HEAD (no body). nullopt when the
  // connection ended (or 5 s passed) first.
  std::optional<HttpReply> Read(bool head_request = false) {
    size_t end;
    while ((end = buffered_.find("\r\n\r\n")) == std::string::npos) {
      if (Fill() <= 0) return std::nullopt;
    }
    const std::string head = buffered_.substr(0, end);
    buffered_.erase(0, end + 4);
    HttpReply reply;
    size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    if (status_line.size() < 12 || status_line.compare(0, 5, "HTTP/") != 0) return std::nullopt;
    reply.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string line = head.substr(start, line_end - start);
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      reply.headers.emplace_back(Lower(line.substr(0, colon)), value);
    }
    if (head_request || reply.status < 200 || reply.status == 204 || reply.status == 304) {
      return reply;
    }
    const size_t length = std::stoul("0" + reply.Header("content-length"));
    while (buffered_.size() < length) {
      if (Fill() <= 0) return std::nullopt;
    }
    reply.body = buffered_.substr(0, length);
    buffered_.erase(0, length);
    return reply;
  }

  // True when the server closes the connection within `timeout`.
  bool ClosedWithin(std::chrono::milliseconds timeout) {
    SetReadTimeout(timeout);
    for (;;) {
      const long n = Fill();
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

  // Closes with a TCP reset, as a crashing peer would.
  void Reset() {
    linger hard{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
    ::close(fd_);
    fd_ = -1;
  }

 private:
  explicit TestClient(int fd) : fd_(fd) {}

  void SetReadTimeout(std::chrono::milliseconds timeout) {
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }

  // Bytes read into buffered_; 0 at the end of the stream; -1 on an error or a timeout.
  long Fill() {
    char chunk[65536];
    errno = 0;
    long n;
    if (ssl_ != nullptr) {
      n = SSL_read(ssl_, chunk, sizeof(chunk));
      if (n <= 0) {
        const int error = SSL_get_error(ssl_, static_cast<int>(n));
        return error == SSL_ERROR_WANT_READ ? -1 : 0;
      }
    } else {
      n = ::recv(fd_, chunk, sizeof(chunk), 0);
    }
    if (n > 0) buffered_.append(chunk, static_cast<size_t>(n));
    return n;
  }

  int fd_;
  SSL* ssl_ = nullptr;
  std::string buffered_;
};

struct Recorded {
  Request request;
  Response response;
  int64_t latency_us;
};

// Collects a streamed body.
struct StreamLog {
  std::mutex mu;
  std::string data;
  std::vector<size_t> pieces;
  std::vector<bool> finishes;  // the `complete` of each Finish call
};

class CollectingSink : public BodySink {
 public:
  explicit CollectingSink(std::shared_ptr<StreamLog> log, size_t stop_after = SIZE_MAX)
      : log_(std::move(log)), stop_after_(stop_after) {}
  bool Write(std::string_view piece) override {
    std::lock_guard lock(log_->mu);
    log_->data.append(piece);
    log_->pieces.push_back(piece.size());
    return log_->data.size() < stop_after_;
  }
  Response Finish(bool complete) override {
    std::lock_guard lock(log_->mu);
    log_->finishes.push_back(complete);
    Response response;
    response.status = complete ? 200 : 422;
    response.content_type = "text/plain";
    response.body = "bytes=" + std::to_string(log_->data.size());
    response.route = "/import";
    return response;
  }

 private:
  std::shared_ptr<StreamLog> log_;
  size_t stop_after_;
};

// A handler whose behaviour each test sets; it keeps every request and every Record call.
class TestHandler : public Handler {
 public:
  std::function<BodyPlan(const Request&)> plan;
  std::function<Response(const Request&)> handle;
  std::function<std::variant<Response, std::unique_ptr<BodySink>>(const Request&)> open_stream;

  BodyPlan PlanBody(const Request& head) override { return plan ? plan(head) : BodyPlan{}; }

  Response Handle(const Request& request) override {
    {
      std::lock_guard lock(mu_);
      handled_.push_back(request);
    }
    if (handle) return handle(request);
    Response response;
    response.content_type = "text/plain";
    response.body = request.method + " " + request.path;
    response.route = request.path;
    response.actor = "tester";
    return response;
  }

  std::variant<Response, std::unique_ptr<BodySink>> OpenStream(const Request& head) override {
    {
      std::lock_guard lock(mu_);
      handled_.push_back(head);
    }
    if (open_stream) return open_stream(head);
    Response refusal;
    refusal.status = 404;
    return refusal;
  }

  void Record(const Request& request, const Response& response, int64_t latency_us) override {
    std::lock_guard lock(mu_);
    records_.push_back({request, response, latency_us});
    recorded_.notify_all();
  }

  std::vector<Request> Handled() {
    std::lock_guard lock(mu_);
    return handled_;
  }
  // The Record calls so far, once there are at least `n` (or after 5 s).
  std::vector<Recorded> Records(size_t n) {
    std::unique_lock lock(mu_);
    recorded_.wait_for(lock, 5s, [&] { return records_.size() >= n; });
    return records_;
  }

 private:
  std::mutex mu_;
  std::condition_variable recorded_;
  std::vector<Request> handled_;
  std::vector<Recorded> records_;
};

inline std::string Get(const std::string& target, const std::string& extra_headers = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra_headers + "\r\n";
}

inline std::string Post(const std::string& target, const std::string& body,
                        const std::string& extra_headers = "") {
  return "POST " + target +
         " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         extra_headers + "\r\n" + body;
}

// Herald's error contract, checked loosely: {"error":{"code":"<code>",...,"field":""}}.
inline void ExpectError(const HttpReply& reply, int status, const std::string& code,
                        const std::string& field = "") {
  EXPECT_EQ(reply.status, status);
  EXPECT_EQ(reply.Header("content-type"), "application/json");
  EXPECT_EQ(reply.body.rfind("{\"error\":{\"code\":\"" + code + "\",\"message\":\"", 0), 0u)
      << reply.body;
  EXPECT_NE(reply.body.find("\"field\":\"" + field + "\"}}"), std::string::npos) << reply.body;
  EXPECT_FALSE(reply.Header("x-request-id").empty());
}

class ServerTest : public ::testing::Test {
 protected:
  ServerTest() {
    options_.listen = "127.0.0.1:0";
    options_.io_threads = 2;
    options_.worker_threads = 4;
  }

  void StartServer() {
    server_ = MakeServer(options_, handler_);
    const Status status = server_->Start();
    ASSERT_TRUE(status.ok()) << status.error().code << ": " << status.error().message;
    ASSERT_NE(server_->port(), 0);
  }

  std::unique_ptr<TestClient> Connect() {
    auto client = TestClient::Connect(server_->port());
    EXPECT_NE(client, nullptr);
    return client;
  }

  ServerOptions options_;
  std::shared_ptr<TestHandler> handler_ = std::make_shared<TestHandler>();
  std::unique_ptr<Server> server_;
};

}  // namespace herald::http::test_support

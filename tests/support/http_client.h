// A small blocking HTTP/1.1 client over POSIX sockets for the end-to-end tests: requests with
// Content-Length or chunked bodies, responses with Content-Length, chunked or close-delimited
// bodies, optional keep-alive, and raw byte exchanges for malformed input. Loopback only; no TLS.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::e2e {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  int status = 0;      // 0 when no response could be read (see `error`)
  std::string error;   // transport error, empty on success
  std::string reason;  // reason phrase of the status line
  Headers headers;     // names lower-cased, in arrival order
  std::string body;

  bool ok() const { return error.empty() && status != 0; }
  // The first header of that (case-insensitive) name, or "".
  std::string Header(std::string_view name) const;
  // The body parsed as JSON; a discarded value when it is not JSON.
  nlohmann::json Json() const;
  // "status body" for failure messages.
  std::string Describe() const;
};

// One TCP connection to host:port. Blocking, with a per-operation timeout.
class HttpConnection {
 public:
  HttpConnection() = default;
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;
  HttpConnection(HttpConnection&& other) noexcept;
  HttpConnection& operator=(HttpConnection&& other) noexcept;

  // Connects; false (and `error()`) on failure.
  bool Connect(const std::string& host, uint16_t port,
               std::chrono::milliseconds timeout = std::chrono::seconds(30));
  bool connected() const { return fd_ >= 0; }
  const std::string& error() const { return error_; }

  // Sends every byte. When `stop_on_readable` and the peer sends something first (an early
  // response), stops sending and returns true with *stopped_early set; false on an error.
  bool SendAll(std::string_view bytes, bool stop_on_readable = false,
               bool* stopped_early = nullptr);
  // Reads one response. `head_request` means the response carries no body.
  HttpResponse ReadResponse(bool head_request = false);
  // Reads whatever arrives until the peer closes or `timeout` passes.
  std::string ReadUntilClose(std::chrono::milliseconds timeout);
  // True when the peer closed (read returns 0 or a reset) within `timeout`.
  bool WaitForClose(std::chrono::milliseconds timeout);
  void ShutdownWrite();
  void Close();
  int fd() const { return fd_; }

 private:
  friend HttpResponse ParseRawResponse(const std::string& raw);

  // Appends at least one byte to buffer_; false on EOF, error or timeout.
  bool Fill();
  bool ReadLine(std::string* line);
  bool ReadExactly(size_t n, std::string* out);

  int fd_ = -1;
  std::string buffer_;
  std::string error_;
  std::chrono::milliseconds timeout_{30'000};
  bool eof_ = false;
};

// Requests to one server. Keeps its connection alive between requests when `keep_alive`.
class HttpClient {
 public:
  HttpClient(std::string host, uint16_t port, bool keep_alive = true)
      : host_(std::move(host)), port_(port), keep_alive_(keep_alive) {}

  void set_bearer(std::string token) { bearer_ = std::move(token); }
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }
  uint16_t port() const { return port_; }
  const std::string& host() const { return host_; }

  // Sends `body` with Content-Length (and Content-Type: application/json when a body is
  // given, unless `headers` names a Content-Type). The bearer token, if set, is sent unless
  // `headers` holds an Authorization header.
  HttpResponse Request(const std::string& method, const std::string& target,
                       std::string_view body = {}, const Headers& headers = {});
  // The same with a chunked request body made of `chunks`.
  HttpResponse RequestChunked(const std::string& method, const std::string& target,
                              const std::vector<std::string_view>& chunks,
                              const Headers& headers = {});

  HttpResponse Get(const std::string& target, const Headers& headers = {}) {
    return Request("GET", target, {}, headers);
  }
  HttpResponse Delete(const std::string& target, const Headers& headers = {}) {
    return Request("DELETE", target, {}, headers);
  }
  HttpResponse Put(const std::string& target, const nlohmann::json& body) {
    return Request("PUT", target, body.dump());
  }
  HttpResponse Patch(const std::string& target, const nlohmann::json& body) {
    return Request("PATCH", target, body.dump());
  }
  HttpResponse Post(const std::string& target, const nlohmann::json& body) {
    return Request("POST", target, body.dump());
  }
  // POST /v1/users:import with an NDJSON body.
  HttpResponse Import(std::string_view ndjson);

 private:
  std::string Head(const std::string& method, const std::string& target, const Headers& headers,
                   std::string_view framing);
  HttpResponse Exchange(const std::string& method, const std::string& head,
                        const std::vector<std::string_view>& body_parts);

  std::string host_;
  uint16_t port_;
  bool keep_alive_;
  std::string bearer_;
  std::chrono::milliseconds timeout_{30'000};
  HttpConnection connection_;
};

// Opens a connection, sends `bytes`, and reads until the server closes or `timeout` passes.
std::string RawExchange(const std::string& host, uint16_t port, std::string_view bytes,
                        std::chrono::milliseconds timeout = std::chrono::seconds(5));
// Parses a complete response held in `raw` (as returned by RawExchange).
HttpResponse ParseRawResponse(const std::string& raw);

}  // namespace herald::e2e

// Herald's HTTP/1.1 server on Boost.Beast with Asio C++20 coroutines. Owns its IO threads and a
// worker pool on which handlers run (they may block on the store). This header is Beast-free.
//
// Thread-safety: Start/Stop/Wait from one controlling thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "http/handler.h"

namespace herald::http {

struct ServerOptions {
  std::string listen = "127.0.0.1:8080";  // host:port; port 0 picks a free one
  int io_threads = 2;
  int worker_threads = 32;
  int header_timeout_ms = 10'000;   // time to receive a request's head
  int body_timeout_ms = 60'000;     // time to receive a buffered body
  int idle_timeout_ms = 75'000;     // keep-alive idle time between requests
  int shutdown_grace_ms = 10'000;   // how long Stop() lets in-flight requests finish
  size_t max_header_bytes = 16 * 1024;
  std::string tls_cert_file;  // both set: serve HTTPS only
  std::string tls_key_file;
};

class Server {
 public:
  virtual ~Server() = default;
  // Binds and starts accepting. Fails with kUnavailable when the address cannot be bound or the
  // TLS files cannot be loaded.
  virtual Status Start() = 0;
  // The bound port (after Start).
  virtual uint16_t port() const = 0;
  // Graceful: stops accepting, lets in-flight requests finish (up to the grace period), closes
  // idle keep-alive connections, then returns. Safe to call from a signal-watching thread.
  virtual void Stop() = 0;
};

std::unique_ptr<Server> MakeServer(ServerOptions options, std::shared_ptr<Handler> handler);

}  // namespace herald::http

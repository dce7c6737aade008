// Herald's HTTP/1.1 server on Boost.Beast with Asio C++20 coroutines. Owns its IO threads and a
// worker pool on which handlers run (they may block on the store). This header is Beast-free.
//
// Each connection is a coroutine on its own strand; Handler::PlanBody and Record run there, while
// Handle, OpenStream and BodySink calls run on the worker pool, one at a time per connection.
// Every response carries Server, Content-Length and X-Request-Id; the server's own refusals
// (400 malformed_request, 408 request_timeout, 413 body_too_large, 431 headers_too_large) use
// Herald's JSON error body and close the connection.
//
// Thread-safety: Start from one controlling thread; Stop from any thread that is not one of the
// server's own IO or worker threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "http/handler.h"

namespace herald::http {

struct ServerOptions {
  std::string listen = "127.0.0.1:8080";  // host:port (IPv4, [IPv6] or localhost); port 0 = any
  int io_threads = 2;
  int worker_threads = 32;
  int header_timeout_ms = 10'000;  // time to receive a request's head
  int body_timeout_ms = 60'000;    // buffered body: the whole body; streamed: each piece; writes
  int idle_timeout_ms = 75'000;    // keep-alive idle time between requests
  int shutdown_grace_ms = 10'000;  // how long Stop() lets in-flight requests finish
  size_t max_header_bytes = 16 * 1024;
  // Connection ceilings. A connection past max_connections, or past max_connections_per_client
  // from one peer address (0 = no per-client cap), is not reset: it is admitted into a reserve
  // of reserve_connections, where only /healthz and /readyz are served (so health checks are
  // answered whatever the load) and every other request, or a head that does not arrive within
  // a second, gets 503 too_many_connections (refusal "too_many_connections" or
  // "too_many_connections_from_client", with Retry-After) and the connection is closed. A full
  // reserve makes room by refusing its oldest connection. Keep max_connections +
  // reserve_connections below the process's descriptor limit.
  int max_connections = 10'000;
  int max_connections_per_client = 1'000;
  int reserve_connections = 64;
  std::string tls_cert_file;  // both set: serve HTTPS only (TLS 1.2+, PEM chain and PEM key)
  std::string tls_key_file;
};

class Server {
 public:
  // Calls Stop().
  virtual ~Server() = default;
  // Binds and starts accepting. Fails with kInvalid "listen_invalid" for an unparsable address,
  // kUnavailable "listen_failed" when it cannot be bound, kUnavailable "tls_config_invalid" when
  // the TLS files cannot be loaded (or only one is set). Call at most once.
  virtual Status Start() = 0;
  // The bound port (after Start).
  virtual uint16_t port() const = 0;
  // Graceful and idempotent: stops accepting, closes idle keep-alive connections at once, lets
  // in-flight requests finish and write their response (with `Connection: close`) for up to
  // shutdown_grace_ms, then stops the IO threads and joins the worker pool. A handler call still
  // running past the grace period is waited for (threads cannot be interrupted) but its response
  // is dropped. Safe to call from a signal-watching thread.
  virtual void Stop() = 0;
};

std::unique_ptr<Server> MakeServer(ServerOptions options, std::shared_ptr<Handler> handler);

}  // namespace herald::http

// Herald's own HTTP/2 client (internal to src/net): libnghttp2's client session over Asio, for
// h2c (prior knowledge) and https origins (TLS, ALPN "h2"). Per origin a small pool of
// connections (HttpClientOptions::max_connections_per_host), each multiplexing up to
// min(server's SETTINGS_MAX_CONCURRENT_STREAMS, max_concurrent_streams) streams; a new
// connection opens only when the existing ones are full, and requests beyond that wait in the
// origin's queue. Frames of many requests go out in one write per loop turn.
//
// Failures: a request the server did not process (above a GOAWAY's last_stream_id,
// REFUSED_STREAM, never written) is retried on another connection and the caller never sees
// it; a connection lost under a written request completes it with an error and sent == true.
// timeout_ms covers queueing and the exchange; at expiry the stream is reset (CANCEL).
// An https origin whose server does not select h2 goes to `fallback` (libcurl) from then on.
//
// Thread-safety: Submit from any thread; everything else, and every completion, on the thread
// that runs `io`. Shutdown() (on that thread) completes every pending request with "client shut
// down" and stops accepting (later Submits complete at once on the calling thread); the owner
// then lets the loop run dry and destroys the client.
#pragma once

// clang-format off
#include <utility>  // before Boost 1.74's Asio headers (GCC 12)
// clang-format on

#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <functional>
#include <memory>

#include "net/http_client.h"
#include "net/job.h"

namespace herald::net::internal {

class H2Client {
 public:
  // Takes over a request this client cannot serve (https origin without h2); called on the
  // loop thread, the request's in_flight share moves with it.
  using Fallback = std::function<void(HttpJob)>;

  static std::unique_ptr<H2Client> Make(const HttpClientOptions& options,
                                        boost::asio::io_context& io, Fallback fallback);
  virtual ~H2Client() = default;

  virtual void Submit(HttpJob job) = 0;
  virtual void Shutdown() = 0;
  // Requests accepted and not yet completed (nor handed to the fallback).
  virtual size_t in_flight() const = 0;
};

}  // namespace herald::net::internal

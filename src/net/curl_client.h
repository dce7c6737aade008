// libcurl's multi interface on an event loop that its owner runs (internal to src/net): HTTP/1.1,
// HTTP/2 over TLS when no native client serves the origin, and SMTP. See curl_client.cc for how
// requests are admitted into curl.
//
// Thread-safety: Submit may be called from any thread; everything else, and every completion,
// runs on the thread that runs `io`. The owner calls Shutdown() on that thread (it completes
// every pending request with "client shut down" and stops accepting: later Submits complete at
// once on the calling thread), lets the loop run dry, and destroys the client afterwards.
#pragma once

// clang-format off
#include <utility>  // before Boost 1.74's Asio headers (GCC 12)
// clang-format on

#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <memory>

#include "net/http_client.h"
#include "net/job.h"

namespace herald::net::internal {

class CurlClient {
 public:
  // nullptr when libcurl cannot initialise.
  static std::unique_ptr<CurlClient> Make(const HttpClientOptions& options,
                                          boost::asio::io_context& io);
  virtual ~CurlClient() = default;

  virtual void Submit(HttpJob job) = 0;
  virtual void Submit(MailJob job) = 0;
  virtual void Shutdown() = 0;
  // Requests accepted and not yet completed.
  virtual size_t in_flight() const = 0;
};

}  // namespace herald::net::internal

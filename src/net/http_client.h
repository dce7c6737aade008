// Herald's outbound client: HTTP/1.1 and HTTP/2 (multiplexed, connection reuse) and SMTP
// submission on one Asio event loop thread: no thread per request, thousands of requests in
// flight. HTTP/2 origins go to Herald's own client on libnghttp2 (h2_client.h), HTTP/1.1 and
// SMTP to libcurl's multi interface (curl_client.h). This header is curl- and Asio-free.
//
// Thread-safety: Send/SendMail may be called from any thread. Completion callbacks run on the
// client's event-loop thread: they must be quick and must not block (hand work elsewhere).
// Destruction completes every pending request with an error (curl_code != 0, error "client shut
// down") on the event-loop thread before returning; never destroy the client from one of its
// own completion callbacks. A Send/SendMail that races with destruction (e.g. made from a
// completion callback during shutdown) completes at once, on the calling thread, with that error.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::net {

class DestinationPolicy;

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "POST";
  std::string url;  // http:// or https://
  Headers headers;
  std::string body;
  int timeout_ms = 10'000;  // whole request, connect included
  // http:// URLs: speak HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1. https:// URLs
  // always offer h2 via ALPN; a server that does not select it is spoken to in HTTP/1.1.
  bool h2c = false;
  bool verify_tls = true;  // off only for tests against self-signed loopback peers
  std::string ca_file;     // extra trust anchor (PEM), e.g. the simulator's certificate
};

struct HttpResponse {
  int status = 0;   // 0 when no response arrived
  Headers headers;  // names lower-cased
  std::string body;
  // A CURLcode number, 0 = a response arrived. The HTTP/2 client reports the same numbers:
  // 6 unresolved host, 7 connect failed, 16 HTTP/2 framing error, 28 timed out, 35 TLS
  // handshake failed, 42 client shut down, 55 send failed, 56 connection lost, 60 certificate
  // refused, 92 stream reset by the server.
  int curl_code = 0;
  std::string error;  // what went wrong when curl_code != 0
  bool timed_out = false;
  bool sent = false;  // the request was (at least partly) written: a retry may duplicate
  bool destination_refused = false;  // HttpClientOptions::destinations refused every address
  int http_version = 0;              // 11 or 2
  double total_ms = 0;

  // The first header of that (lower-case) name, or "".
  std::string_view Header(std::string_view name) const;
};

struct SmtpMessage {
  std::string url;           // smtp://host:port (STARTTLS when offered) or smtps://host:port
  bool require_tls = false;  // refuse to send without STARTTLS
  bool verify_tls = true;
  std::string ca_file;
  std::string username;  // AUTH PLAIN/LOGIN when set
  std::string password;
  std::string mail_from;
  std::vector<std::string> rcpt_to;
  std::string data;  // the RFC 5322 message, CRLF line ends
  int timeout_ms = 30'000;
};

struct SmtpResult {
  int code = 0;       // the last SMTP reply code (e.g. 250, 451, 550); 0 when none
  std::string reply;  // the last reply line, e.g. "550 5.1.1 user unknown"
  int curl_code = 0;
  std::string error;
  bool timed_out = false;
  bool destination_refused = false;  // HttpClientOptions::destinations refused every address
};

struct HttpClientOptions {
  int max_connections_per_host = 8;  // HTTP/2 multiplexes many streams on each; a connection
                                     // draining after a GOAWAY is not counted
  int max_total_connections = 256;
  int max_concurrent_streams = 1000;  // per HTTP/2 connection (CURLMOPT_MAX_CONCURRENT_STREAMS)
  int connect_timeout_ms = 5'000;
  // Transfers handed to curl at once, over all origins. Requests beyond it wait in the client's
  // own queue (cheap: no easy handle, no buffers). Bounds the memory of a burst.
  int max_active_transfers = 2048;
  // Besides, one origin (scheme://host:port) gets at most max_connections_per_host *
  // min(max_concurrent_streams, 100) transfers inside curl at once: servers rarely allow more
  // than ~100 streams per connection, and libcurl 7.88 slows down with every extra transfer it
  // holds on a connection. Either way a waiting request's timeout_ms keeps counting; one that
  // expires while queued completes with timed_out == true and sent == false.

  // HTTP/2 origins (h2c requests and https://) are served by Herald's own HTTP/2 client on
  // libnghttp2 (connections per origin: max_connections_per_host, streams on each:
  // min(server's limit, max_concurrent_streams)); an https server that does not select h2 by
  // ALPN is served by libcurl from then on. false: libcurl serves every request.
  bool native_http2 = true;

  // Where requests may connect (SSRF guard, destination_policy.h), checked on the address each
  // new connection goes to; nullptr = anywhere (tests and tools). A refused destination
  // completes the request with curl_code 7 and destination_refused set.
  std::shared_ptr<const DestinationPolicy> destinations;
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  virtual void Send(HttpRequest request, std::function<void(HttpResponse)> done) = 0;
  virtual void SendMail(SmtpMessage message, std::function<void(SmtpResult)> done) = 0;
  // Blocking conveniences for tests and tools (never call from a completion callback).
  std::future<HttpResponse> Send(HttpRequest request);
  std::future<SmtpResult> SendMail(SmtpMessage message);
  // Requests accepted and not yet completed.
  virtual size_t in_flight() const = 0;
};

// Starts the event-loop thread. Fails only when libcurl cannot initialise (returns nullptr).
std::unique_ptr<HttpClient> MakeHttpClient(const HttpClientOptions& options = {});

}  // namespace herald::net

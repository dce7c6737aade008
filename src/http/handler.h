// The boundary between the HTTP server (Beast, in src/http) and the API (src/api): plain data
// and one interface, so that no Beast or Asio header leaks into the API code.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace herald::http {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: path + query
  std::string path;    // percent-decoded path, without the query
  std::vector<std::pair<std::string, std::string>> query;    // decoded, in order
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;                                          // empty for streamed requests
  std::string request_id;  // X-Request-Id from the client when sane, else minted
  std::string remote;      // peer address

  // The first header of that (lower-case) name, or "".
  std::string_view Header(std::string_view name) const;
  // The first header of that (lower-case) name, or nullptr when there is none (an empty value
  // is not an absent header).
  const std::string* FindHeader(std::string_view name) const;
  // The first query parameter of that name, or nullptr.
  const std::string* Query(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers

  // Who and what, for the audit trail and the metrics (filled by the API layer).
  std::string route;      // route pattern; "" = unmatched
  std::string tenant_id;  // "" when none
  std::string actor;      // "admin", a key id, or "anonymous"
  // The server's own refusals (bad HTTP, timeouts, limits, connection ceilings) name their
  // error code here; "" for every response a Handler made. Such refusals belong to no tenant:
  // they are counted, not audited.
  std::string refusal;
};

// Consumes a streamed request body (e.g. an NDJSON import) piece by piece.
class BodySink {
 public:
  virtual ~BodySink() = default;
  // Called with consecutive pieces of the body (up to 256 KiB each), on a worker thread; may
  // block, and the server reads no further until it returns. Returning false stops reading:
  // Finish(false) follows, its response is sent and the connection is closed.
  virtual bool Write(std::string_view piece) = 0;
  // Called exactly once: the body ended (complete = true), or reading failed or was stopped
  // (complete = false). When reading failed (timeout, body over max_bytes, malformed chunking,
  // peer gone) the server sends its own error instead of this response, unless this response
  // is a 2xx: a sink that already acted on part of the body reports that.
  virtual Response Finish(bool complete) = 0;
};

// How the server should read a request's body, decided from its head alone.
struct BodyPlan {
  bool stream = false;
  uint64_t max_bytes = 1 << 20;  // buffered: larger bodies get 413; streamed: the whole body
};

class Handler {
 public:
  virtual ~Handler() = default;
  // Runs on the IO thread: must be cheap and never block.
  virtual BodyPlan PlanBody(const Request& head) = 0;
  // Runs on a worker thread and may block. `request.body` holds the whole body.
  virtual Response Handle(const Request& request) = 0;
  // For streamed requests, on a worker thread: a sink, or a refusal (e.g. 401) sent at once.
  virtual std::variant<Response, std::unique_ptr<BodySink>> OpenStream(const Request& head) = 0;
  // Called once for every response the server sends, including the server's own refusals
  // (400 bad HTTP, 408, 413, 431; route "" and actor "anonymous"), after it was written, on the
  // IO thread. `latency_us` runs from the moment the head was read. Must not block for long.
  //
  // Exceptions thrown by any of these methods are caught by the server (a 500 is sent).
  virtual void Record(const Request& request, const Response& response, int64_t latency_us) = 0;
};

}  // namespace herald::http

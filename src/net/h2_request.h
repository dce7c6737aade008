// One request inside the HTTP/2 client (internal to src/net): the caller's job, where it is
// (queued at its origin, or on a connection's stream), and the response as it arrives. Only the
// client's event-loop thread touches it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "net/http_client.h"
#include "net/job.h"

namespace herald::net::internal {

class H2Connection;
struct H2Origin;

struct H2Request {
  enum class Where { kQueued, kOnStream, kLimbo };

  HttpJob job;
  std::string authority;  // from the URL
  std::string path;       // path and query
  H2Origin* origin = nullptr;
  Where where = Where::kLimbo;
  bool completed = false;  // callback ran; a queued tombstone waits to be dropped

  // Deadline bookkeeping (timeout_ms > 0 only).
  bool has_deadline = false;
  std::multimap<SteadyTime, H2Request*>::iterator deadline_pos;

  // On a stream.
  H2Connection* connection = nullptr;
  int32_t stream_id = -1;
  size_t body_offset = 0;
  bool headers_sent = false;       // HEADERS went into the connection's output
  bool response_complete = false;  // END_STREAM received
  HttpResponse response;
  int retries = 0;  // unprocessed attempts (GOAWAY, REFUSED_STREAM, connection lost before send)
};

// The parts of an http(s) URL the client needs. host has no brackets; authority is host[:port]
// as the URL wrote it (brackets kept).
struct UrlParts {
  bool tls = false;
  std::string host;
  uint16_t port = 0;
  std::string authority;
  std::string path;  // path and query, "/" when empty; no fragment
};

// False when `url` is not http:// or https:// with a host and a valid port.
bool ParseUrl(std::string_view url, UrlParts& out);

}  // namespace herald::net::internal

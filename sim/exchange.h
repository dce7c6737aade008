// One HTTP request as the simulator's routes see it, whichever wire (HTTP/1.1 or HTTP/2) and
// transport (TCP or TLS) carried it, and the answer a route gives back. The transports
// (http1.cc, h2_connection.cc) fill SimRequest and carry out SimResponse, including its timing
// (delay, hold); routes never touch a socket. No Asio or nghttp2 here.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::sim {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// Bodies larger than this are not buffered: the request reaches the router with
// body_too_large set and is answered 413.
inline constexpr size_t kMaxBodyBytes = 1 << 20;

struct SimRequest {
  std::string method;  // "POST", "GET", ...
  std::string target;  // path plus "?query" as sent
  HeaderList headers;  // names lower-cased
  std::string body;
  bool body_too_large = false;
  bool h2 = false;  // arrived over HTTP/2

  // The first header of that lower-case name, or "".
  std::string_view Header(std::string_view lower_name) const;
  std::string_view Path() const;   // target up to '?'
  std::string_view Query() const;  // after '?', or ""
};

struct SimResponse {
  int status = 200;
  HeaderList headers;  // names lower-case (HTTP/2 requires it)
  std::string body;
  int delay_ms = 0;    // answer only after this long (a timer; no thread sleeps)
  bool hold = false;   // never answer: keep the stream open until the peer gives up
  bool close = false;  // close the connection after answering (HTTP/1.1 only)
};

}  // namespace herald::sim

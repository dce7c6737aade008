#include "support/http_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace herald::e2e {
namespace {

using Clock = std::chrono::steady_clock;

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

int RemainingMs(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::max<int64_t>(0, left));
}

bool HasHeader(const Headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (Lower(k) == Lower(name)) return true;
  }
  return false;
}

}  // namespace

// ---- HttpResponse --------------------------------------------------------------------------

std::string HttpResponse::Header(std::string_view name) const {
  const std::string want = Lower(name);
  for (const auto& [k, v] : headers) {
    if (k == want) return v;
  }
  return "";
}

nlohmann::json HttpResponse::Json() const {
  return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
}

std::string HttpResponse::Describe() const {
  if (!error.empty()) return "transport error: " + error;
  std::string shown = body.size() > 2000 ? body.substr(0, 2000) + "..." : body;
  return std::to_string(status) + " " + shown;
}

// ---- HttpConnection ------------------------------------------------------------------------

HttpConnection::~HttpConnection() { Close(); }

HttpConnection::HttpConnection(HttpConnection&& other) noexcept { *this = std::move(other); }

HttpConnection& HttpConnection::operator=(HttpConnection&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = std::exchange(other.fd_, -1);
    buffer_ = std::move(other.buffer_);
    error_ = std::move(other.error_);
    timeout_ = other.timeout_;
    eof_ = other.eof_;
  }
  return *this;
}

bool HttpConnection::Connect(const std::string& host, uint16_t port,
                             std::chrono::milliseconds timeout) {
  Close();
  error_.clear();
  buffer_.clear();
  eof_ = false;
  timeout_ = timeout;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    error_ = "not an IPv4 address: " + host;
    return false;
  }
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) {
    error_ = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) {
      error_ = std::string("connect: ") + std::strerror(errno);
      Close();
      return false;
    }
    pollfd p{fd_, POLLOUT, 0};
    const int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    int err = 0;
    socklen_t len = sizeof err;
    if (n <= 0) {
      error_ = "connect: timed out";
      Close();
      return false;
    }
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      error_ = std::string("connect: ") + std::strerror(err);
      Close();
      return false;
    }
  }
  return true;
}

bool HttpConnection::SendAll(std::string_view bytes, bool stop_on_readable, bool* stopped_early) {
  if (stopped_early != nullptr) *stopped_early = false;
  if (fd_ < 0) {
    error_ = "not connected";
    return false;
  }
  const auto deadline = Clock::now() + timeout_;
  while (!bytes.empty()) {
    pollfd p{fd_, static_cast<short>(POLLOUT | (stop_on_readable ? POLLIN : 0)), 0};
    const int n = ::poll(&p, 1, RemainingMs(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_ = "send: timed out";
      return false;
    }
    if (stop_on_readable && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      if (stopped_early != nullptr) *stopped_early = true;
      return true;
    }
    const ssize_t w = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      error_ = std::string("send: ") + std::strerror(errno);
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(w));
  }
  return true;
}

bool HttpConnection::Fill() {
  if (fd_ < 0 || eof_) return false;
  const auto deadline = Clock::now() + timeout_;
  char chunk[64 * 1024];
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    const int n = ::poll(&p, 1, RemainingMs(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_ = "read: timed out";
      return false;
    }
    const ssize_t r = ::recv(fd_, chunk, sizeof chunk, 0);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      error_ = std::string("read: ") + std::strerror(errno);
      eof_ = true;
      return false;
    }
    if (r == 0) {
      eof_ = true;
      error_ = "read: connection closed by the server";
      return false;
    }
    buffer_.append(chunk, static_cast<size_t>(r));
    return true;
  }
}

bool HttpConnection::ReadLine(std::string* line) {
  for (;;) {
    const size_t nl = buffer_.find("\r\n");
    if (nl != std::string::npos) {
      *line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 2);
      return true;
    }
    if (!Fill()) return false;
  }
}

bool HttpConnection::ReadExactly(size_t n, std::string* out) {
  while (buffer_.size() < n) {
    if (!Fill()) return false;
  }
  out->append(buffer_, 0, n);
  buffer_.erase(0, n);
  return true;
}

HttpResponse HttpConnection::ReadResponse(bool head_request) {
  HttpResponse r;
  std::string line;
  do {  // skip interim 1xx responses
    r = HttpResponse{};
    if (!ReadLine(&line)) {
      r.error = error_.empty() ? "no status line" : error_;
      return r;
    }
    // "HTTP/1.1 200 OK"
    if (line.rfind("HTTP/1.", 0) != 0 || line.size() < 12) {
      r.error = "bad status line: " + line;
      return r;
    }
    r.status = std::atoi(line.substr(9, 3).c_str());
    r.reason = line.size() > 13 ? line.substr(13) : "";
    for (;;) {
      if (!ReadLine(&line)) {
        r.error = "truncated head: " + error_;
        return r;
      }
      if (line.empty()) break;
      const size_t colon = line.find(':');
      if (colon == std::string::npos) {
        r.error = "bad header line: " + line;
        return r;
      }
      r.headers.emplace_back(Lower(line.substr(0, colon)), Trim(line.substr(colon + 1)));
    }
  } while (r.status >= 100 && r.status < 200);

  if (head_request || r.status == 204 || r.status == 304) return r;
  if (Lower(r.Header("transfer-encoding")).find("chunked") != std::string::npos) {
    for (;;) {
      if (!ReadLine(&line)) {
        r.error = "truncated chunk size: " + error_;
        return r;
      }
      const size_t size = std::strtoul(line.c_str(), nullptr, 16);
      if (size == 0) {
        while (ReadLine(&line) && !line.empty()) {
        }  // trailers
        return r;
      }
      std::string crlf;
      if (!ReadExactly(size, &r.body) || !ReadExactly(2, &crlf)) {
        r.error = "truncated chunk: " + error_;
        return r;
      }
    }
  }
  const std::string length = r.Header("content-length");
  if (!length.empty()) {
    if (!ReadExactly(std::strtoull(length.c_str(), nullptr, 10), &r.body)) {
      r.error = "truncated body (" + std::to_string(r.body.size()) + " of " + length +
                " bytes): " + error_;
    }
    return r;
  }
  while (Fill()) {
  }  // close-delimited
  r.body += buffer_;
  buffer_.clear();
  if (!eof_) r.error = "body not terminated: " + error_;
  return r;
}

std::string HttpConnection::ReadUntilClose(std::chrono::milliseconds timeout) {
  const auto saved = timeout_;
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    timeout_ = std::chrono::milliseconds(std::max(1, RemainingMs(deadline)));
    if (!Fill()) break;
  }
  timeout_ = saved;
  std::string out = std::move(buffer_);
  buffer_.clear();
  return out;
}

bool HttpConnection::WaitForClose(std::chrono::milliseconds timeout) {
  ReadUntilClose(timeout);
  return eof_;
}

void HttpConnection::ShutdownWrite() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void HttpConnection::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

// ---- HttpClient ----------------------------------------------------------------------------

std::string HttpClient::Head(const std::string& method, const std::string& target,
                             const Headers& headers, std::string_view framing) {
  std::string head = method + " " + target + " HTTP/1.1\r\n";
  head += "Host: " + host_ + ":" + std::to_string(port_) + "\r\n";
  if (!bearer_.empty() && !HasHeader(headers, "authorization")) {
    head += "Authorization: Bearer " + bearer_ + "\r\n";
  }
  for (const auto& [k, v] : headers) {
    head += k;
    head += ": ";
    head += v;
    head += "\r\n";
  }
  head += framing;
  if (!keep_alive_) head += "Connection: close\r\n";
  head += "\r\n";
  return head;
}

HttpResponse HttpClient::Exchange(const std::string& method, const std::string& head,
                                  const std::vector<std::string_view>& body_parts) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = connection_.connected();
    if (!reused && !connection_.Connect(host_, port_, timeout_)) {
      HttpResponse r;
      r.error = connection_.error();
      return r;
    }
    bool early = false;
    bool sent = connection_.SendAll(head, true, &early);
    for (size_t i = 0; sent && !early && i < body_parts.size(); ++i) {
      sent = connection_.SendAll(body_parts[i], true, &early);
    }
    HttpResponse r;
    if (sent || !reused) r = connection_.ReadResponse(method == "HEAD");
    if (reused && r.status == 0) {  // the idle connection was closed by the server: retry once
      connection_.Close();
      continue;
    }
    if (!sent && r.status == 0) r.error = connection_.error();
    const bool closes = !keep_alive_ || early || !r.ok() ||
                        Lower(r.Header("connection")).find("close") != std::string::npos;
    if (closes) connection_.Close();
    return r;
  }
  HttpResponse r;
  r.error = "the server closed the connection twice";
  return r;
}

HttpResponse HttpClient::Request(const std::string& method, const std::string& target,
                                 std::string_view body, const Headers& headers) {
  std::string framing;
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    framing = "Content-Length: " + std::to_string(body.size()) + "\r\n";
    if (!body.empty() && !HasHeader(headers, "content-type")) {
      framing += "Content-Type: application/json\r\n";
    }
  }
  return Exchange(method, Head(method, target, headers, framing), {body});
}

HttpResponse HttpClient::RequestChunked(const std::string& method, const std::string& target,
                                        const std::vector<std::string_view>& chunks,
                                        const Headers& headers) {
  std::vector<std::string> framed;
  framed.reserve(chunks.size() * 3 + 1);
  std::vector<std::string_view> parts;
  parts.reserve(chunks.size() * 3 + 1);
  for (auto chunk : chunks) {
    if (chunk.empty()) continue;
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
    framed.emplace_back(size);
    parts.push_back(framed.back());
    parts.push_back(chunk);
    parts.emplace_back("\r\n");
  }
  parts.emplace_back("0\r\n\r\n");
  // `framed` never reallocates: reserved above.
  return Exchange(method, Head(method, target, headers, "Transfer-Encoding: chunked\r\n"), parts);
}

HttpResponse HttpClient::Import(std::string_view ndjson) {
  return Request("POST", "/v1/users:import", ndjson, {{"Content-Type", "application/x-ndjson"}});
}

// ---- raw -----------------------------------------------------------------------------------

std::string RawExchange(const std::string& host, uint16_t port, std::string_view bytes,
                        std::chrono::milliseconds timeout) {
  HttpConnection c;
  if (!c.Connect(host, port, timeout)) return "";
  bool early = false;
  c.SendAll(bytes, true, &early);
  return c.ReadUntilClose(timeout);
}

HttpResponse ParseRawResponse(const std::string& raw) {
  HttpConnection c;
  c.buffer_ = raw;
  c.eof_ = true;
  return c.ReadResponse();
}

}  // namespace herald::e2e

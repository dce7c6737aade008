// The only translation unit with Beast and Asio: the listener, the per-connection coroutine and
// the TLS setup. Handler code runs on a worker pool; everything else runs on the IO threads.
#include "http/server.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>  // before Boost 1.74's Asio coroutine headers (GCC 12)
#include <vector>

#include "http/wire.h"

namespace herald::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Strand = asio::strand<asio::io_context::executor_type>;
using PlainStream = tcp::socket;
using TlsStream = beast::ssl_stream<tcp::socket>;

constexpr size_t kStreamPieceBytes = 256 * 1024;
constexpr size_t kFirstReadBytes = 4096;
constexpr auto kLingerTime = std::chrono::seconds(1);  // closing: wait for the peer's FIN
constexpr size_t kMaxLingerBytes = 1 << 20;
// A connection in the reserve (past a connection ceiling) must send its head this fast.
constexpr int kReserveHeadTimeoutMs = 1'000;

template <typename Stream>
constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;

// Runs `fn` on `pool` and resumes the awaiting coroutine on its own executor (the connection's
// strand) with the result; nullopt when `fn` threw. `co_await asio::post(pool, use_awaitable)`
// would not do: the coroutine resumes on its own executor, so the work would never move.
template <typename Fn>
auto RunOnPool(asio::thread_pool& pool, Fn fn)
    -> awaitable<std::optional<std::invoke_result_t<Fn&>>> {
  using Result = std::optional<std::invoke_result_t<Fn&>>;
  auto initiate = [&pool](auto handler, Fn fn) {
    asio::post(pool, [handler = std::move(handler), fn = std::move(fn)]() mutable {
      Result result;
      try {
        result.emplace(fn());
      } catch (...) {  // exceptions never cross threads: the caller sees nullopt
      }
      auto executor = asio::get_associated_executor(handler);
      asio::post(executor, [handler = std::move(handler), result = std::move(result)]() mutable {
        std::move(handler)(std::move(result));
      });
    });
  };
  return asio::async_initiate<decltype(use_awaitable), void(Result)>(std::move(initiate),
                                                                     use_awaitable, std::move(fn));
}

std::string_view View(beast::string_view s) { return std::string_view(s.data(), s.size()); }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && Lower(a) == Lower(b);
}

// Headers the server owns; a handler's copies are dropped.
bool IsServerHeader(std::string_view name) {
  for (std::string_view owned : {"content-length", "transfer-encoding", "connection", "server",
                                 "x-request-id", "content-type"}) {
    if (IEquals(name, owned)) return true;
  }
  return false;
}

// An error from the HTTP parser about the bytes the peer sent (as opposed to the peer leaving).
bool IsMalformed(const error_code& ec) {
  static const auto& category = bhttp::make_error_code(bhttp::error::bad_target).category();
  return ec.category() == category && ec != bhttp::error::end_of_stream &&
         ec != bhttp::error::partial_message && ec != bhttp::error::need_buffer;
}

Result<tcp::endpoint> ParseListen(const std::string& listen) {
  auto invalid = [&listen](const std::string& why) {
    return MakeError(ErrorKind::kInvalid, "listen_invalid",
                     "The listen address \"" + listen + "\" " + why + "; use host:port, e.g. " +
                         "127.0.0.1:8080 or [::1]:8080.");
  };
  std::string host;
  std::string_view port_text;
  if (!listen.empty() && listen.front() == '[') {
    const size_t close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return invalid("is not [IPv6]:port");
    }
    host = listen.substr(1, close - 1);
    port_text = std::string_view(listen).substr(close + 2);
  } else {
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos) return invalid("has no port");
    host = listen.substr(0, colon);
    port_text = std::string_view(listen).substr(colon + 1);
    if (host.find(':') != std::string::npos) return invalid("needs brackets around IPv6");
  }
  unsigned port = 0;
  const auto [end, err] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || err != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535) {
    return invalid("has no valid port");
  }
  if (host == "localhost") host = "127.0.0.1";
  if (host.empty() || host == "*") host = "0.0.0.0";
  error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) return invalid("has a host that is not an IP literal or localhost");
  return tcp::endpoint(address, static_cast<uint16_t>(port));
}

Result<std::unique_ptr<asio::ssl::context>> MakeTlsContext(const std::string& cert_file,
                                                           const std::string& key_file) {
  auto invalid = [](std::string message) {
    return MakeError(ErrorKind::kUnavailable, "tls_config_invalid", std::move(message));
  };
  if (cert_file.empty() || key_file.empty()) {
    return invalid("TLS needs both a certificate chain file and a private key file.");
  }
  std::unique_ptr<asio::ssl::context> context;
  try {
    context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  } catch (const std::exception& e) {
    return invalid(std::string("Cannot create a TLS context: ") + e.what());
  }
  error_code ec;
  context->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                           asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                           asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use,
                       ec);
  if (ec || SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION) != 1) {
    return invalid("Cannot restrict TLS to version 1.2 and later.");
  }
  context->use_certificate_chain_file(cert_file, ec);
  if (ec) {
    return invalid("Cannot load the TLS certificate chain from " + cert_file + ": " + ec.message() +
                   ".");
  }
  context->use_private_key_file(key_file, asio::ssl::context::pem, ec);
  if (ec) {
    return invalid("Cannot load the TLS private key from " + key_file + ": " + ec.message() + ".");
  }
  if (SSL_CTX_check_private_key(context->native_handle()) != 1) {
    return invalid("The TLS private key in " + key_file + " does not match the certificate in " +
                   cert_file + ".");
  }
  return context;
}

// What Stop() needs from a live connection. `idle` is touched only on the connection's strand.
class LiveConnection {
 public:
  LiveConnection(Strand strand, std::string remote_address)
      : remote(std::move(remote_address)), strand_(std::move(strand)) {}
  virtual ~LiveConnection() = default;
  const Strand& strand() const { return strand_; }
  // Cancels pending IO (on the strand): the coroutine sees operation_aborted.
  virtual void CancelIo() = 0;
  // Closes the socket (on the strand, or once no IO thread runs).
  virtual void Close() = 0;

  bool idle = true;  // waiting for a request to begin (or closing): Stop() may cut it

  const std::string remote;  // the peer's address
  // Admitted past a connection ceiling: serves one health check or is refused with this code.
  std::string refusal;
  std::atomic<bool> evicted{false};  // the reserve needed its place

 private:
  Strand strand_;
};

// One accepted connection: its stream, read buffer and deadline. The coroutine that serves it
// owns it; the deadline's timer handler keeps it alive until it has run.
template <typename Stream>
class Connection : public LiveConnection, public std::enable_shared_from_this<Connection<Stream>> {
 public:
  template <typename... Args>
  Connection(Strand strand, std::string remote_address, Args&&... args)
      : LiveConnection(strand, std::move(remote_address)),
        stream(std::forward<Args>(args)...),
        timer_(strand) {}

  tcp::socket& socket() { return beast::get_lowest_layer(stream); }

  void CancelIo() override {
    error_code ec;
    socket().cancel(ec);
  }
  void Close() override {
    error_code ec;
    socket().shutdown(tcp::socket::shutdown_both, ec);
    socket().close(ec);
  }

  // When `at` passes before Disarm() or the next ArmDeadline(), pending IO is cancelled and
  // timed_out() turns true.
  void ArmDeadline(Clock::time_point at) {
    timed_out_ = false;
    const uint64_t generation = ++generation_;
    timer_.expires_at(at);
    timer_.async_wait([self = this->shared_from_this(), generation](const error_code& ec) {
      if (ec || generation != self->generation_) return;
      self->timed_out_ = true;
      self->CancelIo();
    });
  }
  void Disarm() {
    ++generation_;
    timer_.cancel();
  }
  bool timed_out() const { return timed_out_; }

  Stream stream;
  beast::flat_buffer buffer;
  bool tls_ready = false;

 private:
  asio::steady_timer timer_;
  uint64_t generation_ = 0;
  bool timed_out_ = false;
};

class ServerImpl final : public Server {
 public:
  ServerImpl(ServerOptions options, std::shared_ptr<Handler> handler)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        ioc_(std::make_unique<asio::io_context>(std::max(1, options_.io_threads))),
        accept_strand_(asio::make_strand(*ioc_)) {}

  ~ServerImpl() override {
    Stop();
    // Pending handlers of the pool post coroutine frames back to the io_context, and the frames
    // own sockets of the io_context: destroy the pool first and the io_context last.
    // Strands, too, must not outlive their io_context.
    pool_.reset();
    live_.clear();
    acceptor_.reset();
    accept_strand_.reset();
    ioc_.reset();
  }

  Status Start() override;
  uint16_t port() const override { return port_; }
  void Stop() override;

 private:
  enum class State { kNew, kRunning, kStopped };

  std::chrono::milliseconds Ms(int ms) const { return std::chrono::milliseconds(std::max(ms, 1)); }

  awaitable<void> Accept();
  void Admit(tcp::socket socket, const Strand& strand);
  // Under mu_: the refusal code for a new connection from `remote` past a ceiling, or "".
  std::string CeilingFor(const std::string& remote) const;
  // Under mu_: room in the reserve for one more connection; false when none can be made.
  bool MakeReserveRoom();
  void Unregister(const std::shared_ptr<LiveConnection>& connection);

  template <typename Stream>
  awaitable<void> RunConnection(std::shared_ptr<Connection<Stream>> c);
  // Serves one request; true when the connection stays open for another.
  template <typename Stream>
  awaitable<bool> ServeOne(Connection<Stream>& c, bool first);
  template <typename Stream>
  awaitable<bool> ServeStreamed(Connection<Stream>& c, Request& request,
                                bhttp::request_parser<bhttp::empty_body>& head_parser,
                                const BodyPlan& plan, bool keep_alive, Clock::time_point start);
  // Sends a refusal for a failed body read (413, 408, 400), or nothing when the peer left.
  template <typename Stream>
  awaitable<void> RefuseBody(Connection<Stream>& c, const Request& request, const error_code& ec,
                             uint64_t max_bytes, unsigned version, Clock::time_point start);
  template <typename Stream>
  awaitable<void> SendContinue(Connection<Stream>& c, const Request& request, unsigned version);
  // Writes `response` and records it; true when it was written.
  template <typename Stream>
  awaitable<bool> Send(Connection<Stream>& c, const Request& request, Response& response,
                       bool keep_alive, unsigned version, Clock::time_point start);
  template <typename Stream>
  awaitable<void> Linger(Connection<Stream>& c);
  // A reserve connection's answer to anything but a health check: 503, then close.
  template <typename Stream>
  awaitable<void> RefuseOverCeiling(Connection<Stream>& c, Request& request, unsigned version,
                                    Clock::time_point start);

  const ServerOptions options_;
  const std::shared_ptr<Handler> handler_;

  std::mutex lifecycle_mu_;  // serializes Start and Stop
  State state_ = State::kNew;
  std::atomic<uint16_t> port_{0};

  std::mutex mu_;  // guards live_, regular_, per_client_, reserve_ and each `evicted`
  std::condition_variable drained_;
  std::unordered_set<std::shared_ptr<LiveConnection>> live_;
  size_t regular_ = 0;                                 // live_ that are not in the reserve
  std::unordered_map<std::string, int> per_client_;    // regular connections by peer
  std::deque<std::weak_ptr<LiveConnection>> reserve_;  // oldest first
  std::atomic<bool> stopping_{false};

  std::unique_ptr<asio::io_context> ioc_;
  std::optional<Strand> accept_strand_;  // the listener's
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::unique_ptr<asio::ssl::context> tls_;
  std::unique_ptr<asio::thread_pool> pool_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::thread> io_threads_;
};

Status ServerImpl::Start() {
  std::lock_guard lifecycle(lifecycle_mu_);
  if (state_ != State::kNew) {
    return MakeError(ErrorKind::kInternal, "server_already_started",
                     "The HTTP server can be started only once.");
  }
  auto endpoint = ParseListen(options_.listen);
  if (!endpoint.ok()) return endpoint.take_error();
  if (!options_.tls_cert_file.empty() || !options_.tls_key_file.empty()) {
    auto context = MakeTlsContext(options_.tls_cert_file, options_.tls_key_file);
    if (!context.ok()) return context.take_error();
    tls_ = std::move(context).value();
  }

  auto acceptor = std::make_unique<tcp::acceptor>(*accept_strand_);
  error_code ec;
  const char* step = "open";
  acceptor->open(endpoint->protocol(), ec);
  if (!ec) {
    step = "set SO_REUSEADDR on";
    acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    step = "bind";
    acceptor->bind(*endpoint, ec);
  }
  if (!ec) {
    step = "listen on";
    acceptor->listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return MakeError(
        ErrorKind::kUnavailable, "listen_failed",
        std::string("Cannot ") + step + " " + options_.listen + ": " + ec.message() + ".");
  }
  port_ = acceptor->local_endpoint(ec).port();
  acceptor_ = std::move(acceptor);

  pool_ = std::make_unique<asio::thread_pool>(std::max(1, options_.worker_threads));
  work_.emplace(ioc_->get_executor());
  asio::co_spawn(*accept_strand_, Accept(), [](const std::exception_ptr&) {});
  for (int i = 0; i < std::max(1, options_.io_threads); ++i) {
    io_threads_.emplace_back([this] {
      for (;;) {
        try {
          ioc_->run();
          return;
        } catch (...) {  // a handler threw: keep serving the other connections
        }
      }
    });
  }
  state_ = State::kRunning;
  return Status::Ok();
}

void ServerImpl::Stop() {
  std::lock_guard lifecycle(lifecycle_mu_);
  if (state_ != State::kRunning) {
    state_ = State::kStopped;
    return;
  }
  state_ = State::kStopped;
  const auto deadline = Clock::now() + std::chrono::milliseconds(options_.shutdown_grace_ms);

  std::vector<std::shared_ptr<LiveConnection>> snapshot;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    snapshot.assign(live_.begin(), live_.end());
  }
  asio::post(*accept_strand_, [this] {
    error_code ec;
    acceptor_->close(ec);
  });
  // On each strand, `idle` is exact: a connection that is not idle now checks stopping_ before
  // it next waits for a request.
  for (auto& connection : snapshot) {
    asio::post(connection->strand(), [connection] {
      if (connection->idle) connection->CancelIo();
    });
  }
  snapshot.clear();
  work_.reset();
  {
    std::unique_lock lock(mu_);
    drained_.wait_until(lock, deadline, [this] { return live_.empty(); });
  }
  pool_->stop();  // handler calls not yet started are dropped; running ones are waited for
  ioc_->stop();
  for (auto& thread : io_threads_) thread.join();
  io_threads_.clear();
  pool_->join();
  // No thread runs the io_context any more: close what outlived the grace period.
  std::lock_guard lock(mu_);
  for (const auto& connection : live_) connection->Close();
}

awaitable<void> ServerImpl::Accept() {
  asio::steady_timer backoff(*accept_strand_);
  for (;;) {
    Strand strand = asio::make_strand(*ioc_);
    tcp::socket socket(strand);
    error_code ec;
    co_await acceptor_->async_accept(socket, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted || !acceptor_->is_open()) co_return;
      // Out of descriptors or a transient error: back off instead of spinning.
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    Admit(std::move(socket), strand);
  }
}

std::string ServerImpl::CeilingFor(const std::string& remote) const {
  if (options_.max_connections_per_client > 0) {
    const auto it = per_client_.find(remote);
    if (it != per_client_.end() && it->second >= options_.max_connections_per_client) {
      return "too_many_connections_from_client";
    }
  }
  if (regular_ >= static_cast<size_t>(std::max(1, options_.max_connections))) {
    return "too_many_connections";
  }
  return {};
}

bool ServerImpl::MakeReserveRoom() {
  const auto limit = static_cast<size_t>(std::max(1, options_.reserve_connections));
  size_t open = 0;
  std::erase_if(reserve_, [&open](const std::weak_ptr<LiveConnection>& w) {
    auto c = w.lock();
    if (c == nullptr) return true;
    open += !c->evicted.load();
    return false;
  });
  if (open < limit) return true;
  // Refuse the oldest that is not already being refused; it leaves within a moment.
  for (const auto& w : reserve_) {
    auto oldest = w.lock();
    if (oldest == nullptr || oldest->evicted.load()) continue;
    oldest->evicted.store(true);
    asio::post(oldest->strand(), [oldest] { oldest->CancelIo(); });
    break;
  }
  // Connections being refused still hold a descriptor: at most a reserve's worth of them.
  return reserve_.size() < 2 * limit;
}

void ServerImpl::Admit(tcp::socket socket, const Strand& strand) {
  error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  const auto peer = socket.remote_endpoint(ec);
  std::string remote = ec ? std::string() : peer.address().to_string();

  std::lock_guard lock(mu_);
  if (stopping_) {
    socket.close(ec);
    return;
  }
  std::string refusal = CeilingFor(remote);
  if (!refusal.empty() && !MakeReserveRoom()) {
    socket.close(ec);  // a flood beyond every ceiling and the reserve
    return;
  }
  auto admit = [&](auto c) {
    c->refusal = std::move(refusal);
    if (c->refusal.empty()) {
      ++regular_;
      ++per_client_[c->remote];
    } else {
      reserve_.push_back(c);
    }
    live_.insert(c);
    asio::co_spawn(strand, RunConnection(std::move(c)), [](const std::exception_ptr&) {});
  };
  if (tls_ != nullptr) {
    admit(std::make_shared<Connection<TlsStream>>(strand, std::move(remote), std::move(socket),
                                                  *tls_));
  } else {
    admit(std::make_shared<Connection<PlainStream>>(strand, std::move(remote), std::move(socket)));
  }
}

void ServerImpl::Unregister(const std::shared_ptr<LiveConnection>& connection) {
  std::lock_guard lock(mu_);
  live_.erase(connection);
  if (connection->refusal.empty()) {
    --regular_;
    auto it = per_client_.find(connection->remote);
    if (it != per_client_.end() && --it->second <= 0) per_client_.erase(it);
  }
  if (live_.empty()) drained_.notify_all();
}

template <typename Stream>
awaitable<void> ServerImpl::RunConnection(std::shared_ptr<Connection<Stream>> c) {
  try {
    bool open = true;
    if constexpr (kIsTls<Stream>) {
      error_code ec;
      c->ArmDeadline(Clock::now() +
                     Ms(c->refusal.empty() ? options_.header_timeout_ms : kReserveHeadTimeoutMs));
      co_await c->stream.async_handshake(asio::ssl::stream_base::server,
                                         asio::redirect_error(use_awaitable, ec));
      c->Disarm();
      open = !ec;
      c->tls_ready = open;
    }
    for (bool first = true; open; first = false) {
      open = co_await ServeOne(*c, first);
    }
    co_await Linger(*c);
  } catch (...) {  // exceptions never escape a connection
  }
  c->Disarm();
  c->Close();
  Unregister(c);
}

template <typename Stream>
awaitable<bool> ServerImpl::ServeOne(Connection<Stream>& c, bool first) {
  error_code ec;
  // Wait for the request's first bytes: until they come the connection is idle, and Stop()
  // closes it at once.
  const auto waiting_since = Clock::now();
  const bool reserve = !c.refusal.empty();
  const int head_timeout_ms = reserve ? kReserveHeadTimeoutMs : options_.header_timeout_ms;
  c.idle = true;
  if (stopping_) co_return false;
  if (c.buffer.size() == 0) {
    c.ArmDeadline(waiting_since + Ms(first ? head_timeout_ms : options_.idle_timeout_ms));
    const size_t n = co_await c.stream.async_read_some(c.buffer.prepare(kFirstReadBytes),
                                                       asio::redirect_error(use_awaitable, ec));
    c.buffer.commit(n);
    if (ec) {
      if (reserve && !stopping_ && (c.timed_out() || c.evicted.load())) {
        Request request;
        request.remote = c.remote;
        co_await RefuseOverCeiling(c, request, 11, Clock::now());
      }
      co_return false;  // the peer left, the idle time ran out, or Stop()
    }
  }
  c.idle = false;

  // The rest of the head, within header_timeout of the first byte (of the connection's start,
  // for its first request).
  bhttp::request_parser<bhttp::empty_body> head_parser;
  head_parser.header_limit(static_cast<uint32_t>(
      std::min<size_t>(options_.max_header_bytes, std::numeric_limits<uint32_t>::max())));
  // Checked against the handler's plan below (not boost::none: Beast 1.74 compares the
  // Content-Length with an empty optional and refuses every body).
  head_parser.body_limit(std::numeric_limits<uint64_t>::max());
  c.ArmDeadline((first ? waiting_since : Clock::now()) + Ms(head_timeout_ms));
  co_await bhttp::async_read_header(c.stream, c.buffer, head_parser,
                                    asio::redirect_error(use_awaitable, ec));
  c.Disarm();
  const auto start = Clock::now();
  Request request;
  request.remote = c.remote;
  if (ec && reserve) {
    if (!stopping_) co_await RefuseOverCeiling(c, request, 11, start);
    co_return false;
  }
  if (ec) {
    request.request_id = MintRequestId();
    Response refusal;
    if (c.timed_out()) {
      refusal = ErrorResponse(408, "request_timeout",
                              "The request head did not arrive within " +
                                  std::to_string(options_.header_timeout_ms) + " ms.");
    } else if (ec == bhttp::error::header_limit) {
      refusal = ErrorResponse(431, "headers_too_large",
                              "The request head exceeds the limit of " +
                                  std::to_string(options_.max_header_bytes) + " bytes.");
    } else if (IsMalformed(ec)) {
      refusal = ErrorResponse(400, "malformed_request",
                              "The request is not valid HTTP/1.1 (" + ec.message() + ").");
    } else {
      co_return false;  // the peer left or Stop() cut the connection
    }
    co_await Send(c, request, refusal, false, 11, start);
    co_return false;
  }

  const auto& head = head_parser.get();
  const unsigned version = head.version();
  const bool keep_alive = head.keep_alive();
  request.method = std::string(View(head.method_string()));
  request.target = std::string(View(head.target()));
  DecodedTarget target = DecodeTarget(request.target);
  request.path = std::move(target.path);
  request.query = std::move(target.query);
  for (const auto& field : head) {
    request.headers.emplace_back(Lower(View(field.name_string())),
                                 std::string(View(field.value())));
  }
  const std::string_view client_id = request.Header("x-request-id");
  request.request_id = IsSaneRequestId(client_id) ? std::string(client_id) : MintRequestId();
  if (std::optional<Response> refusal = CheckFraming(version, request.headers)) {
    // Nothing after this head can be trusted to start a request: answer and close.
    co_await Send(c, request, *refusal, false, version, start);
    co_return false;
  }
  if (reserve && request.path != "/healthz" && request.path != "/readyz") {
    co_await RefuseOverCeiling(c, request, version, start);
    co_return false;
  }

  std::optional<BodyPlan> plan;
  try {
    plan = handler_->PlanBody(request);
  } catch (...) {  // answered below
  }
  if (!plan) {
    Response failure =
        ErrorResponse(500, "internal_error", "The server failed to read the request.");
    co_await Send(c, request, failure, false, version, start);
    co_return false;
  }
  if (const auto length = head_parser.content_length(); length && *length > plan->max_bytes) {
    co_await RefuseBody(c, request, bhttp::error::body_limit, plan->max_bytes, version, start);
    co_return false;
  }
  if (plan->stream) {
    co_return co_await ServeStreamed(c, request, head_parser, *plan, keep_alive, start);
  }

  bhttp::request_parser<bhttp::string_body> parser(std::move(head_parser));
  parser.body_limit(plan->max_bytes);
  if (!parser.is_done()) {
    co_await SendContinue(c, request, version);
    c.ArmDeadline(Clock::now() + Ms(options_.body_timeout_ms));
    co_await bhttp::async_read(c.stream, c.buffer, parser, asio::redirect_error(use_awaitable, ec));
    c.Disarm();
    if (ec) {
      co_await RefuseBody(c, request, ec, plan->max_bytes, version, start);
      co_return false;
    }
  }
  request.body = std::move(parser.get().body());
  auto handled = co_await RunOnPool(*pool_, [this, &request] { return handler_->Handle(request); });
  Response response =
      handled ? std::move(*handled)
              : ErrorResponse(500, "internal_error", "The server failed to handle the request.");
  const bool sent = co_await Send(c, request, response, keep_alive && !reserve, version, start);
  co_return sent&& keep_alive && !reserve && !stopping_;
}

template <typename Stream>
awaitable<bool> ServerImpl::ServeStreamed(Connection<Stream>& c, Request& request,
                                          bhttp::request_parser<bhttp::empty_body>& head_parser,
                                          const BodyPlan& plan, bool keep_alive,
                                          Clock::time_point start) {
  const unsigned version = head_parser.get().version();
  auto opened =
      co_await RunOnPool(*pool_, [this, &request] { return handler_->OpenStream(request); });
  std::unique_ptr<BodySink> sink;
  if (opened && std::holds_alternative<std::unique_ptr<BodySink>>(*opened)) {
    sink = std::move(std::get<std::unique_ptr<BodySink>>(*opened));
  }
  if (sink == nullptr) {
    Response refusal =
        !opened
            ? ErrorResponse(500, "internal_error", "The server failed to open the request body.")
        : std::holds_alternative<Response>(*opened)
            ? std::move(std::get<Response>(*opened))
            : ErrorResponse(500, "internal_error", "The server failed to open the request body.");
    // A body left unread cannot be skipped reliably: close after the refusal.
    const bool reusable = keep_alive && head_parser.is_done();
    const bool sent = co_await Send(c, request, refusal, reusable, version, start);
    co_return sent&& reusable && !stopping_;
  }

  bhttp::request_parser<bhttp::buffer_body> parser(std::move(head_parser));
  parser.body_limit(plan.max_bytes);
  if (!parser.is_done()) co_await SendContinue(c, request, version);
  std::unique_ptr<char[]> piece(new char[kStreamPieceBytes]);
  error_code ec;
  bool sink_stopped = false;
  while (!parser.is_done()) {
    parser.get().body().data = piece.get();
    parser.get().body().size = kStreamPieceBytes;
    c.ArmDeadline(Clock::now() + Ms(options_.body_timeout_ms));
    co_await bhttp::async_read(c.stream, c.buffer, parser, asio::redirect_error(use_awaitable, ec));
    c.Disarm();
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) break;
    const size_t n = kStreamPieceBytes - parser.get().body().size;
    if (n == 0) continue;
    const std::string_view bytes(piece.get(), n);
    auto more = co_await RunOnPool(*pool_, [&sink, bytes] { return sink->Write(bytes); });
    if (!more || !*more) {
      sink_stopped = true;
      break;
    }
  }
  const bool complete = !ec && !sink_stopped;
  auto finished = co_await RunOnPool(*pool_, [&sink, complete] { return sink->Finish(complete); });
  if (ec) {
    // A sink that already acted on part of the body (an import that stored lines) answers for
    // it; otherwise the failed read is the answer.
    if (finished && finished->status >= 200 && finished->status < 300) {
      co_await Send(c, request, *finished, false, version, start);
    } else {
      co_await RefuseBody(c, request, ec, plan.max_bytes, version, start);
    }
    co_return false;
  }
  Response response =
      finished ? std::move(*finished)
               : ErrorResponse(500, "internal_error", "The server failed to handle the request.");
  const bool sent = co_await Send(c, request, response, keep_alive && complete, version, start);
  co_return sent&& keep_alive&& complete && !stopping_;
}

template <typename Stream>
awaitable<void> ServerImpl::RefuseBody(Connection<Stream>& c, const Request& request,
                                       const error_code& ec, uint64_t max_bytes, unsigned version,
                                       Clock::time_point start) {
  Response refusal;
  if (ec == bhttp::error::body_limit) {
    refusal = ErrorResponse(
        413, "body_too_large",
        "The request body exceeds the limit of " + std::to_string(max_bytes) + " bytes.");
  } else if (c.timed_out()) {
    refusal = ErrorResponse(408, "request_timeout",
                            "The request body did not arrive within " +
                                std::to_string(options_.body_timeout_ms) + " ms.");
  } else if (IsMalformed(ec)) {
    refusal = ErrorResponse(400, "malformed_request",
                            "The request body is not valid HTTP/1.1 (" + ec.message() + ").");
  } else {
    co_return;  // the peer left
  }
  co_await Send(c, request, refusal, false, version, start);
}

template <typename Stream>
awaitable<void> ServerImpl::SendContinue(Connection<Stream>& c, const Request& request,
                                         unsigned version) {
  // Clients that sent "Expect: 100-continue" wait for this before sending the body.
  if (version < 11 || !IEquals(request.Header("expect"), "100-continue")) co_return;
  bhttp::response<bhttp::empty_body> interim(bhttp::status::continue_, version);
  error_code ec;
  c.ArmDeadline(Clock::now() + Ms(options_.body_timeout_ms));
  co_await bhttp::async_write(c.stream, interim, asio::redirect_error(use_awaitable, ec));
  c.Disarm();  // a failure shows in the body read that follows
}

template <typename Stream>
awaitable<bool> ServerImpl::Send(Connection<Stream>& c, const Request& request, Response& response,
                                 bool keep_alive, unsigned version, Clock::time_point start) {
  if (response.status < 100 || response.status > 599) {
    response = ErrorResponse(500, "internal_error", "The server produced an invalid status.");
  }
  bhttp::response<bhttp::string_body> message;
  message.version(version == 10 ? 10 : 11);
  message.result(static_cast<unsigned>(response.status));
  message.set(bhttp::field::server, "herald");
  if (!response.content_type.empty()) {
    message.set(bhttp::field::content_type, response.content_type);
  }
  for (const auto& [name, value] : response.headers) {
    const bool injects = name.find_first_of("\r\n:") != std::string::npos ||
                         value.find_first_of("\r\n") != std::string::npos;
    if (!name.empty() && !injects && !IsServerHeader(name)) message.insert(name, value);
  }
  message.set("X-Request-Id", request.request_id);
  const bool bodiless = response.status < 200 || response.status == 204 || response.status == 304;
  if (!bodiless) {
    message.content_length(response.body.size());
    // A response to HEAD announces its length but carries no body.
    if (request.method != "HEAD") message.body() = std::move(response.body);
  }
  message.keep_alive(keep_alive && !stopping_);

  error_code ec;
  c.ArmDeadline(Clock::now() + Ms(options_.body_timeout_ms));
  co_await bhttp::async_write(c.stream, message, asio::redirect_error(use_awaitable, ec));
  c.Disarm();
  if (!message.body().empty()) response.body = std::move(message.body());

  const auto latency =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
  try {
    handler_->Record(request, response, static_cast<int64_t>(latency));
  } catch (...) {  // recording must not take the connection down
  }
  co_return !ec;
}

template <typename Stream>
awaitable<void> ServerImpl::RefuseOverCeiling(Connection<Stream>& c, Request& request,
                                              unsigned version, Clock::time_point start) {
  if (request.request_id.empty()) request.request_id = MintRequestId();
  const bool per_client = c.refusal == "too_many_connections_from_client";
  Response refusal = ErrorResponse(
      503, c.refusal,
      per_client
          ? "This client address holds " + std::to_string(options_.max_connections_per_client) +
                " connections to Herald already, the most it may; reuse them "
                "(keep-alive) or close some, then retry."
          : "Herald is at its limit of " + std::to_string(options_.max_connections) +
                " connections; retry in a moment.");
  refusal.headers.emplace_back("Retry-After", "1");
  co_await Send(c, request, refusal, false, version, start);
}

template <typename Stream>
awaitable<void> ServerImpl::Linger(Connection<Stream>& c) {
  // Closing with unread bytes in the socket would reset the connection and could destroy the
  // response in flight: say goodbye and read until the peer closes too (briefly).
  c.idle = true;
  if (stopping_ || !c.socket().is_open()) co_return;
  error_code ec;
  c.ArmDeadline(Clock::now() + kLingerTime);
  if constexpr (kIsTls<Stream>) {
    if (c.tls_ready) {
      co_await c.stream.async_shutdown(asio::redirect_error(use_awaitable, ec));
    }
  } else {
    c.socket().shutdown(tcp::socket::shutdown_send, ec);
    std::array<char, 4096> scratch;
    size_t drained = 0;
    while (!ec && drained < kMaxLingerBytes) {
      drained += co_await c.socket().async_read_some(asio::buffer(scratch),
                                                     asio::redirect_error(use_awaitable, ec));
    }
  }
  c.Disarm();
}

}  // namespace

std::unique_ptr<Server> MakeServer(ServerOptions options, std::shared_ptr<Handler> handler) {
  return std::make_unique<ServerImpl>(std::move(options), std::move(handler));
}

}  // namespace herald::http

// HTTP/1.1 with keep-alive on Boost.Beast, one coroutine per connection (the only translation
// unit with Beast). Answers "Expect: 100-continue" at once so clients do not wait for it.

// clang-format off
#include <utility>  // before Boost 1.74's Asio headers (GCC 12)
// clang-format on

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string_view>

#include "sim/transport.h"

namespace herald::sim {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::use_awaitable;
using boost::system::error_code;

constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

std::string_view View(boost::beast::string_view s) { return {s.data(), s.size()}; }

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

template <class Stream>
void CloseLowest(Stream& stream) {
  error_code ignored;
  stream.lowest_layer().shutdown(Tcp::socket::shutdown_both, ignored);
  stream.lowest_layer().close(ignored);
}

// Reads and drops whatever comes until the peer goes (a held answer never gets written).
template <class Stream>
asio::awaitable<void> DrainUntilClosed(Stream& stream) {
  std::array<char, 512> sink;
  for (;;) {
    error_code ec;
    co_await stream.async_read_some(asio::buffer(sink), asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
  }
}

template <class Stream>
asio::awaitable<void> Session(std::unique_ptr<Stream> stream, beast::flat_buffer buffer,
                              SimState& state) {
  for (;;) {
    bhttp::request_parser<bhttp::string_body> parser;
    // Checked below instead, so that an oversized body gets a 413 (boost::none would compare
    // below every length).
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    parser.header_limit(kMaxHeaderBytes);
    error_code ec;
    co_await bhttp::async_read_header(*stream, buffer, parser,
                                      asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    SimRequest req;
    // Too large by its Content-Length: answer before the body comes (413, then close).
    req.body_too_large = parser.content_length() && *parser.content_length() > kMaxBodyBytes;
    if (!req.body_too_large && beast::iequals(parser.get()[bhttp::field::expect], "100-continue")) {
      co_await asio::async_write(*stream, asio::buffer(kContinue),
                                 asio::redirect_error(use_awaitable, ec));
      if (ec) break;
    }
    if (!req.body_too_large && !parser.is_done()) {
      parser.body_limit(kMaxBodyBytes);  // still applies to chunked bodies
      co_await bhttp::async_read(*stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
      if (ec == bhttp::error::body_limit) {
        req.body_too_large = true;
      } else if (ec) {
        break;
      }
    }
    auto& msg = parser.get();
    req.method = View(msg.method_string());
    req.target = View(msg.target());
    req.headers.reserve(16);
    for (const auto& field : msg) {
      req.headers.emplace_back(Lower(View(field.name_string())), View(field.value()));
    }
    if (!req.body_too_large) req.body = std::move(msg.body());

    SimResponse res = RouteRequest(state, req);
    if (res.hold) {
      co_await DrainUntilClosed(*stream);
      break;
    }
    if (res.delay_ms > 0) {
      asio::steady_timer timer(co_await asio::this_coro::executor,
                               std::chrono::milliseconds(res.delay_ms));
      co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    bhttp::response<bhttp::string_body> out;
    out.version(11);
    out.result(static_cast<unsigned>(res.status));
    for (auto& [name, value] : res.headers) out.insert(name, value);
    out.body() = std::move(res.body);
    const bool keep_alive = msg.keep_alive() && !res.close && !req.body_too_large;
    out.keep_alive(keep_alive);
    out.prepare_payload();
    co_await bhttp::async_write(*stream, out, asio::redirect_error(use_awaitable, ec));
    if (ec || !keep_alive) break;
  }
  CloseLowest(*stream);
}

template <class Stream>
void Spawn(std::unique_ptr<Stream> stream, beast::flat_buffer buffer, SimState& state) {
  auto executor = stream->get_executor();
  asio::co_spawn(executor, Session(std::move(stream), std::move(buffer), state), asio::detached);
}

}  // namespace

void ServeHttp1(std::unique_ptr<Tcp::socket> socket, std::string_view preread, SimState& state) {
  beast::flat_buffer buffer;
  buffer.commit(asio::buffer_copy(buffer.prepare(preread.size()), asio::buffer(preread)));
  Spawn(std::move(socket), std::move(buffer), state);
}

void ServeHttp1(std::unique_ptr<TlsStream> stream, SimState& state) {
  Spawn(std::move(stream), beast::flat_buffer(), state);
}

}  // namespace herald::sim

// The simulator's connection handlers, one per wire, all on one Asio io_context. Each takes an
// accepted socket whose executor is a strand, owns it from then on, and runs until the peer
// goes or the io_context is destroyed (which frees every connection). Nothing blocks: delays
// are timers, held answers simply never get written.
//
//   ServeHttpConnection  plain TCP: reads the first bytes; the HTTP/2 client preface selects
//                        HTTP/2 with prior knowledge (h2_connection.cc), anything else
//                        HTTP/1.1 (http1.cc)
//   ServeTlsConnection   TLS handshake, then ALPN "h2" → HTTP/2, else HTTP/1.1
//   ServeSmtpConnection  SMTP (smtp_server.cc); STARTTLS offered when `tls` is not null
//
// `state` (and `tls`) must outlive the io_context.
#pragma once

// clang-format off
#include <utility>  // before Boost 1.74's Asio headers (GCC 12)
// clang-format on

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "sim/routes.h"

namespace herald::sim {

using Tcp = boost::asio::ip::tcp;
using TlsStream = boost::asio::ssl::stream<Tcp::socket>;

void ServeHttpConnection(Tcp::socket socket, SimState& state);
void ServeTlsConnection(Tcp::socket socket, boost::asio::ssl::context& tls, SimState& state);
void ServeSmtpConnection(Tcp::socket socket, boost::asio::ssl::context* tls, SimState& state);

// The two wires of the HTTP port, after detection. `preread` holds the bytes the detection
// already consumed.
void ServeH2(std::unique_ptr<Tcp::socket> socket, std::string_view preread, SimState& state);
void ServeH2(std::unique_ptr<TlsStream> stream, SimState& state);
void ServeHttp1(std::unique_ptr<Tcp::socket> socket, std::string_view preread, SimState& state);
void ServeHttp1(std::unique_ptr<TlsStream> stream, SimState& state);

}  // namespace herald::sim

// H2Connection, the socket half: resolve, connect, TLS and ALPN, reads into the session,
// batched writes out of it, and the end of the connection.
#include "net/h2_connection.h"

#include <curl/curl.h>  // CURLE_* numbers, which HttpResponse::curl_code reuses
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <cstring>
#include <string_view>

namespace herald::net::internal {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

}  // namespace

H2Connection::H2Connection(asio::io_context& io, H2ConnectionOwner& owner, H2Origin* origin,
                           Target target)
    : io_(io),
      owner_(owner),
      origin_(origin),
      target_(std::move(target)),
      resolver_(io),
      socket_(io),
      connect_timer_(io) {
  nghttp2_session_client_new(&session_, SessionCallbacks(), this);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  // Many concurrent downloads must not stall on the connection window.
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 16 << 20);
  out_.reserve(64 * 1024);
}

H2Connection::~H2Connection() { nghttp2_session_del(session_); }

void H2Connection::Start() {
  auto self = shared_from_this();
  if (target_.connect_timeout_ms > 0) {
    connect_timer_.expires_after(std::chrono::milliseconds(target_.connect_timeout_ms));
    connect_timer_.async_wait([self](const error_code& ec) {
      if (ec || self->closed_ || self->ready_) return;
      self->Fail(CURLE_OPERATION_TIMEDOUT, "Connection timed out after " +
                                               std::to_string(self->target_.connect_timeout_ms) +
                                               " milliseconds");
    });
  }
  error_code ec;
  const asio::ip::address address = asio::ip::make_address(target_.host, ec);
  if (!ec) {
    Connect({Tcp::endpoint(address, target_.port)});
    return;
  }
  resolver_.async_resolve(
      target_.host, std::to_string(target_.port),
      [self](const error_code& ec, const Tcp::resolver::results_type& results) {
        if (self->closed_) return;
        if (ec || results.empty()) {
          self->Fail(CURLE_COULDNT_RESOLVE_HOST,
                     "Could not resolve host: " + self->target_.host + " (" + ec.message() + ")");
          return;
        }
        self->Connect(std::vector<Tcp::endpoint>(results.begin(), results.end()));
      });
}

void H2Connection::Connect(std::vector<Tcp::endpoint> endpoints) {
  if (target_.destinations != nullptr) {
    std::string why;
    std::erase_if(endpoints, [&](const Tcp::endpoint& endpoint) {
      IpEndpoint destination;
      return !IpEndpoint::FromSockaddr(endpoint.data(), &destination) ||
             !target_.destinations->Allows(destination, target_.host, &why);
    });
    if (endpoints.empty()) {
      Fail(CURLE_COULDNT_CONNECT, std::string(kDestinationRefused) + why);
      return;
    }
  }
  asio::async_connect(
      socket_, endpoints, [self = shared_from_this()](const error_code& ec, const Tcp::endpoint&) {
        if (self->closed_) return;
        if (ec) {
          self->Fail(CURLE_COULDNT_CONNECT, "Failed to connect to " + self->target_.host +
                                                " port " + std::to_string(self->target_.port) +
                                                ": " + ec.message());
          return;
        }
        error_code ignored;
        self->socket_.set_option(Tcp::no_delay(true), ignored);
        if (self->target_.tls != nullptr) {
          self->Handshake();
        } else {
          self->BecomeReady();
        }
      });
}

void H2Connection::Handshake() {
  tls_ = std::make_unique<asio::ssl::stream<Tcp::socket>>(std::move(socket_), *target_.tls);
  SSL* ssl = tls_->native_handle();
  error_code ec;
  asio::ip::make_address(target_.host, ec);
  const bool is_ip = !ec;
  if (!is_ip) SSL_set_tlsext_host_name(ssl, target_.host.c_str());
  if (target_.verify_tls) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(param, target_.host.c_str());
    } else {
      X509_VERIFY_PARAM_set1_host(param, target_.host.c_str(), 0);
    }
  }
  tls_->async_handshake(
      asio::ssl::stream_base::client, [self = shared_from_this()](const error_code& ec) {
        if (self->closed_) return;
        SSL* ssl = self->tls_->native_handle();
        if (ec) {
          const long verify = SSL_get_verify_result(ssl);
          if (self->target_.verify_tls && verify != X509_V_OK) {
            self->Fail(CURLE_PEER_FAILED_VERIFICATION, std::string("SSL certificate problem: ") +
                                                           X509_verify_cert_error_string(verify));
          } else {
            self->Fail(CURLE_SSL_CONNECT_ERROR, "TLS handshake failed: " + ec.message());
          }
          return;
        }
        const unsigned char* alpn = nullptr;
        unsigned int len = 0;
        SSL_get0_alpn_selected(ssl, &alpn, &len);
        if (len != 2 || std::memcmp(alpn, "h2", 2) != 0) {
          self->not_h2_ = true;
          self->Fail(CURLE_HTTP2, "the server did not select h2 by ALPN");
          return;
        }
        self->BecomeReady();
      });
}

void H2Connection::BecomeReady() {
  ready_ = true;
  connect_timer_.cancel();
  Read();
  EndEvent();
}

void H2Connection::Read() {
  auto handler = [self = shared_from_this()](const error_code& ec, size_t n) {
    self->OnRead(ec, n);
  };
  if (tls_) {
    tls_->async_read_some(asio::buffer(read_buf_), std::move(handler));
  } else {
    socket_.async_read_some(asio::buffer(read_buf_), std::move(handler));
  }
}

void H2Connection::OnRead(const error_code& ec, size_t n) {
  if (closed_) return;
  if (ec) {
    Fail(CURLE_RECV_ERROR, ec == asio::error::eof ? "Connection closed by the server"
                                                  : "Recv failure: " + ec.message());
    return;
  }
  const ssize_t used = nghttp2_session_mem_recv(session_, read_buf_.data(), n);
  if (used < 0) {
    Fail(CURLE_HTTP2,
         std::string("HTTP/2 framing error: ") + nghttp2_strerror(static_cast<int>(used)));
    return;
  }
  EndEvent();
  if (!closed_) Read();
}

void H2Connection::EndEvent() {
  owner_.AfterEvent(*this);
  if (!closed_) Flush();
}

void H2Connection::ScheduleFlush() {
  if (flush_posted_ || closed_) return;
  flush_posted_ = true;
  asio::post(io_, [self = shared_from_this()] {
    self->flush_posted_ = false;
    self->Flush();
  });
}

void H2Connection::Flush() {
  if (writing_ || closed_ || !ready_) return;
  out_.clear();
  for (;;) {
    const uint8_t* chunk = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &chunk);
    if (n < 0) {
      Fail(CURLE_HTTP2, std::string("HTTP/2 error: ") + nghttp2_strerror(static_cast<int>(n)));
      return;
    }
    if (n == 0) break;
    out_.append(reinterpret_cast<const char*>(chunk), static_cast<size_t>(n));
  }
  if (out_.empty()) {
    if (draining_ && streams_.empty()) Fail(0, "connection drained");
    return;
  }
  writing_ = true;
  auto handler = [self = shared_from_this()](const error_code& ec, size_t) {
    self->writing_ = false;
    if (self->closed_) return;
    if (ec) {
      self->Fail(CURLE_SEND_ERROR, "Send failure: " + ec.message());
      return;
    }
    self->Flush();
  };
  if (tls_) {
    asio::async_write(*tls_, asio::buffer(out_), std::move(handler));
  } else {
    asio::async_write(socket_, asio::buffer(out_), std::move(handler));
  }
}

void H2Connection::Fail(int curl_code, const std::string& error) {
  if (closed_) return;
  closed_ = true;
  std::vector<std::pair<int32_t, H2Request*>> requests(streams_.begin(), streams_.end());
  streams_.clear();
  std::sort(requests.begin(), requests.end());
  for (auto& [id, request] : requests) {
    request->connection = nullptr;
    request->where = H2Request::Where::kLimbo;
    const bool unprocessed =
        !request->headers_sent || (goaway_last_stream_ >= 0 && id > goaway_last_stream_);
    StreamResult result;
    if (unprocessed) {
      result.kind = StreamResult::Kind::kRetry;
    } else {
      result.kind = StreamResult::Kind::kFailed;
      result.curl_code = curl_code != 0 ? curl_code : CURLE_RECV_ERROR;
      result.error = error;
    }
    owner_.OnStreamDone(request, std::move(result));
  }
  CloseSocket();
  owner_.OnClosed(*this, curl_code, error, not_h2_);
}

void H2Connection::CloseSocket() {
  error_code ignored;
  connect_timer_.cancel();
  resolver_.cancel();
  Tcp::socket& socket = tls_ ? tls_->next_layer() : socket_;
  socket.shutdown(Tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

}  // namespace herald::net::internal

// HTTP/2 over Asio (an H2Session per connection, driven from the connection's strand), and the
// first steps of every HTTP-port connection: client-preface detection on plain TCP, the TLS
// handshake and ALPN on the TLS port.

// clang-format off
#include <utility>  // before Boost 1.74's Asio headers (GCC 12)
// clang-format on

#include <openssl/ssl.h>

#include <array>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstring>
#include <string_view>

#include "sim/h2_session.h"
#include "sim/transport.h"

namespace herald::sim {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

constexpr std::string_view kClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

template <class Stream>
class H2Connection : public std::enable_shared_from_this<H2Connection<Stream>> {
 public:
  H2Connection(std::unique_ptr<Stream> stream, SimState& state)
      : stream_(std::move(stream)),
        state_(state),
        session_([this](int32_t id, const SimRequest& request) { OnRequest(id, request); }) {}

  void Start(std::string_view preread) {
    if (!preread.empty() &&
        !session_.Receive(reinterpret_cast<const uint8_t*>(preread.data()), preread.size())) {
      closing_ = true;
    }
    Flush();
    if (!closing_) Read();
  }

 private:
  void Read() {
    stream_->async_read_some(
        asio::buffer(read_buf_),
        [self = this->shared_from_this()](error_code ec, size_t n) { self->OnRead(ec, n); });
  }

  void OnRead(error_code ec, size_t n) {
    if (ec) {
      Close();
      return;
    }
    if (!session_.Receive(read_buf_.data(), n)) closing_ = true;
    Flush();
    if (!closing_ && !closed_ && !session_.Done()) Read();
  }

  // Writes whatever the session has ready; one write in flight at a time.
  void Flush() {
    if (writing_ || closed_) return;
    out_.clear();
    session_.TakeOutput(out_);
    if (out_.empty()) {
      if (closing_ || session_.Done()) Close();
      return;
    }
    writing_ = true;
    asio::async_write(*stream_, asio::buffer(out_),
                      [self = this->shared_from_this()](error_code ec, size_t) {
                        self->writing_ = false;
                        if (ec) {
                          self->Close();
                          return;
                        }
                        self->Flush();
                      });
  }

  void OnRequest(int32_t stream_id, const SimRequest& request) {
    SimResponse response = RouteRequest(state_, request);
    if (response.hold) return;  // the peer resets the stream or goes away
    if (response.delay_ms <= 0) {
      session_.Respond(stream_id, std::move(response));  // flushed after Receive returns
      return;
    }
    auto timer = std::make_shared<asio::steady_timer>(stream_->get_executor(),
                                                      std::chrono::milliseconds(response.delay_ms));
    timer->async_wait([self = this->shared_from_this(), timer, stream_id,
                       response = std::move(response)](error_code ec) mutable {
      if (ec || self->closed_) return;
      self->session_.Respond(stream_id, std::move(response));
      self->Flush();
    });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    error_code ignored;
    stream_->lowest_layer().shutdown(Tcp::socket::shutdown_both, ignored);
    stream_->lowest_layer().close(ignored);
  }

  std::unique_ptr<Stream> stream_;
  SimState& state_;
  H2Session session_;
  std::array<uint8_t, 16 * 1024> read_buf_{};
  std::string out_;
  bool writing_ = false;
  bool closing_ = false;
  bool closed_ = false;
};

// Reads just enough of a plain connection to tell the HTTP/2 preface from HTTP/1.1.
class PrefaceSniffer : public std::enable_shared_from_this<PrefaceSniffer> {
 public:
  PrefaceSniffer(Tcp::socket socket, SimState& state)
      : socket_(std::make_unique<Tcp::socket>(std::move(socket))), state_(state) {}

  void Read() {
    socket_->async_read_some(asio::buffer(chunk_),
                             [self = shared_from_this()](error_code ec, size_t n) {
                               if (ec) return;
                               self->seen_.append(self->chunk_.data(), n);
                               self->Decide();
                             });
  }

 private:
  void Decide() {
    size_t common = std::min(seen_.size(), kClientPreface.size());
    if (std::string_view(seen_).substr(0, common) != kClientPreface.substr(0, common)) {
      ServeHttp1(std::move(socket_), seen_, state_);
    } else if (seen_.size() >= kClientPreface.size()) {
      ServeH2(std::move(socket_), seen_, state_);
    } else {
      Read();
    }
  }

  std::unique_ptr<Tcp::socket> socket_;
  SimState& state_;
  std::array<char, 64> chunk_{};
  std::string seen_;
};

}  // namespace

void ServeH2(std::unique_ptr<Tcp::socket> socket, std::string_view preread, SimState& state) {
  auto conn = std::make_shared<H2Connection<Tcp::socket>>(std::move(socket), state);
  conn->Start(preread);
}

void ServeH2(std::unique_ptr<TlsStream> stream, SimState& state) {
  auto conn = std::make_shared<H2Connection<TlsStream>>(std::move(stream), state);
  conn->Start({});
}

void ServeHttpConnection(Tcp::socket socket, SimState& state) {
  error_code ignored;
  socket.set_option(Tcp::no_delay(true), ignored);
  std::make_shared<PrefaceSniffer>(std::move(socket), state)->Read();
}

void ServeTlsConnection(Tcp::socket socket, asio::ssl::context& tls, SimState& state) {
  error_code ignored;
  socket.set_option(Tcp::no_delay(true), ignored);
  auto stream = std::make_unique<TlsStream>(std::move(socket), tls);
  TlsStream& ref = *stream;
  ref.async_handshake(asio::ssl::stream_base::server,
                      [stream = std::move(stream), &state](error_code ec) mutable {
                        if (ec) return;
                        const unsigned char* alpn = nullptr;
                        unsigned int len = 0;
                        SSL_get0_alpn_selected(stream->native_handle(), &alpn, &len);
                        if (len == 2 && std::memcmp(alpn, "h2", 2) == 0) {
                          ServeH2(std::move(stream), state);
                        } else {
                          ServeHttp1(std::move(stream), state);
                        }
                      });
}

}  // namespace herald::sim

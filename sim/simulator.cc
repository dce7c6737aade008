// SimulatorImpl: one io_context run by `threads` threads, three acceptors (HTTP: h2c + HTTP/1.1;
// HTTPS: ALPN h2 + HTTP/1.1; SMTP) and the shared SimState. Every accepted socket gets its own
// strand; the connection handlers in transport.h take it from there.

// clang-format off
#include <utility>  // before Boost 1.74's Asio headers (GCC 12)
// clang-format on

#include "sim/simulator.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "crypto/crypto.h"
#include "sim/demo_credentials.h"
#include "sim/tls_cert.h"
#include "sim/transport.h"

namespace herald::sim {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

enum class Wire { kHttp, kHttps, kSmtp };

Error ListenError(const std::string& what, const std::string& detail) {
  return MakeError(ErrorKind::kUnavailable, "listen_failed",
                   "Cannot listen on " + what + ": " + detail + ".");
}

// "host:port", "[v6]:port" or ":port" → an endpoint; "localhost" means 127.0.0.1.
Result<Tcp::endpoint> ParseEndpoint(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return ListenError(text, "expected HOST:PORT");
  std::string host = text.substr(0, colon);
  std::string port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host == "localhost") host = "127.0.0.1";
  error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) return ListenError(text, "the host must be an IP address or localhost");
  char* end = nullptr;
  unsigned long port = std::strtoul(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port > 65535) return ListenError(text, "bad port");
  return Tcp::endpoint(address, static_cast<uint16_t>(port));
}

class SimulatorImpl final : public Simulator {
 public:
  explicit SimulatorImpl(SimulatorOptions options)
      : options_(std::move(options)), state_(options_.max_recorded) {}
  ~SimulatorImpl() override { Stop(); }

  Status Start() override {
    if (io_) return MakeError(ErrorKind::kConflict, "already_started", "Start() was called twice.");
    crypto::InitCrypto();
    if (options_.trust_demo_apns_key) {
      Status s =
          state_.apns_tokens.RegisterKey(std::string(kDemoApnsKeyId), kDemoApnsPrivateKeyPem);
      if (!s.ok()) return s;
    }
    io_ = std::make_unique<asio::io_context>(std::max(1, options_.threads));
    const bool want_tls =
        !options_.tls_listen.empty() || !options_.tls_cert_file.empty() || options_.smtp_starttls;
    if (want_tls) {
      auto material = options_.tls_cert_file.empty()
                          ? MakeSelfSignedCertificate()
                          : ReadTlsFiles(options_.tls_cert_file, options_.tls_key_file);
      if (!material.ok()) return Fail(material.take_error());
      tls_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
      if (Status s = ConfigureServerTls(tls_->native_handle(), *material); !s.ok())
        return Fail(s.take_error());
      cert_pem_ = material->cert_pem;
    }
    if (Status s = Listen(options_.listen, Wire::kHttp, port_); !s.ok())
      return Fail(s.take_error());
    if (!options_.tls_listen.empty()) {
      if (Status s = Listen(options_.tls_listen, Wire::kHttps, tls_port_); !s.ok()) {
        return Fail(s.take_error());
      }
    }
    if (!options_.smtp_listen.empty()) {
      if (Status s = Listen(options_.smtp_listen, Wire::kSmtp, smtp_port_); !s.ok()) {
        return Fail(s.take_error());
      }
    }
    for (int i = 0; i < std::max(1, options_.threads); ++i) {
      threads_.emplace_back([this] { io_->run(); });
    }
    return Status::Ok();
  }

  void Stop() override {
    if (!io_) return;
    io_->stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    for (auto& a : acceptors_) {
      error_code ignored;
      a->acceptor.close(ignored);
    }
    acceptors_.clear();
    io_.reset();  // destroys every pending handler, and with them the connections
    tls_.reset();
  }

  uint16_t port() const override { return port_; }
  uint16_t smtp_port() const override { return smtp_port_; }
  uint16_t tls_port() const override { return tls_port_; }
  std::string tls_cert_pem() const override { return cert_pem_; }

 private:
  struct Listener {
    explicit Listener(asio::io_context& io, Wire w) : acceptor(io), retry(io), wire(w) {}
    Tcp::acceptor acceptor;
    asio::steady_timer retry;
    Wire wire;
  };

  Status Fail(Error error) {
    Stop();
    return error;
  }

  Status Listen(const std::string& where, Wire wire, uint16_t& bound_port) {
    auto endpoint = ParseEndpoint(where);
    if (!endpoint.ok()) return endpoint.take_error();
    auto listener = std::make_unique<Listener>(*io_, wire);
    error_code ec;
    listener->acceptor.open(endpoint->protocol(), ec);
    if (!ec) listener->acceptor.set_option(Tcp::acceptor::reuse_address(true), ec);
    if (!ec) listener->acceptor.bind(*endpoint, ec);
    if (!ec) listener->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return ListenError(where, ec.message());
    bound_port = listener->acceptor.local_endpoint(ec).port();
    Accept(*listener);
    acceptors_.push_back(std::move(listener));
    return Status::Ok();
  }

  void Accept(Listener& l) {
    l.acceptor.async_accept(asio::make_strand(*io_), [this, &l](error_code ec, auto socket) {
      if (ec == asio::error::operation_aborted) return;
      if (ec) {  // e.g. out of file descriptors: try again shortly instead of spinning
        l.retry.expires_after(std::chrono::milliseconds(50));
        l.retry.async_wait([this, &l](error_code wait_ec) {
          if (!wait_ec) Accept(l);
        });
        return;
      }
      Tcp::socket plain(std::move(socket));
      switch (l.wire) {
        case Wire::kHttp: ServeHttpConnection(std::move(plain), state_); break;
        case Wire::kHttps: ServeTlsConnection(std::move(plain), *tls_, state_); break;
        case Wire::kSmtp: ServeSmtpConnection(std::move(plain), tls_.get(), state_); break;
      }
      Accept(l);
    });
  }

  SimulatorOptions options_;
  SimState state_;  // outlives io_ (declared before it)
  std::string cert_pem_;
  std::unique_ptr<asio::ssl::context> tls_;
  std::unique_ptr<asio::io_context> io_;
  std::vector<std::unique_ptr<Listener>> acceptors_;
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
  uint16_t smtp_port_ = 0;
  uint16_t tls_port_ = 0;
};

}  // namespace

std::unique_ptr<Simulator> MakeSimulator(SimulatorOptions options) {
  return std::make_unique<SimulatorImpl>(std::move(options));
}

}  // namespace herald::sim

// One client HTTP/2 connection (internal to src/net): a TCP socket, TLS with ALPN "h2" for
// https origins, and libnghttp2's client session. Requests are submitted as streams; frames
// for all of them are gathered with nghttp2_session_mem_send and written with one write per
// loop turn (that batching is where the client's speed comes from); responses are read back.
//
// Thread-safety: none; the client's event-loop thread drives it. Asynchronous handlers hold a
// shared_ptr to the connection and do nothing once it is closed, so the owner may drop its
// reference at any time after Close(). Every event goes to the H2ConnectionOwner, which must
// outlive the io_context's run.
#pragma once

// clang-format off
#include <utility>  // before Boost 1.74's Asio headers (GCC 12)
// clang-format on

#include <nghttp2/nghttp2.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "net/destination_policy.h"
#include "net/h2_request.h"

namespace herald::net::internal {

class H2Connection;

// How a stream ended, from the client's point of view.
struct StreamResult {
  enum class Kind {
    kResponse,  // a complete response is in request->response
    kRetry,     // the server did not process it (GOAWAY above it, REFUSED_STREAM, never sent)
    kFailed,    // it may have been processed; curl_code and error say why it has no response
  };
  Kind kind = Kind::kResponse;
  int curl_code = 0;
  std::string error;
};

class H2ConnectionOwner {
 public:
  virtual ~H2ConnectionOwner() = default;
  // A request left the connection (it no longer refers to it). Buffered by the owner: it must
  // not touch the connection's session from here.
  virtual void OnStreamDone(H2Request* request, StreamResult result) = 0;
  // The end of an event on `connection` (connected, bytes read, a write done, closed): the
  // owner completes what OnStreamDone buffered and may submit more requests.
  virtual void AfterEvent(H2Connection& connection) = 0;
  // The connection is closed; every request on it was reported. `curl_code` != 0 when it never
  // became ready (connect, TLS or ALPN failed); then `not_h2` says the TLS peer chose another
  // protocol than h2 (serve that origin otherwise).
  virtual void OnClosed(H2Connection& connection, int curl_code, const std::string& error,
                        bool not_h2) = 0;
};

class H2Connection : public std::enable_shared_from_this<H2Connection> {
 public:
  struct Target {
    std::string host;
    uint16_t port = 0;
    boost::asio::ssl::context* tls = nullptr;  // https: outlives the connection
    bool verify_tls = true;
    int connect_timeout_ms = 5'000;
    int max_concurrent_streams = 100;                 // our own cap, besides the server's
    const DestinationPolicy* destinations = nullptr;  // where it may connect; nullptr = anywhere
  };

  H2Connection(boost::asio::io_context& io, H2ConnectionOwner& owner, H2Origin* origin,
               Target target);
  ~H2Connection();
  H2Connection(const H2Connection&) = delete;
  H2Connection& operator=(const H2Connection&) = delete;

  // Resolves, connects, handshakes; AfterEvent when ready, OnClosed when that fails.
  void Start();

  H2Origin* origin() const { return origin_; }
  bool ready() const { return ready_ && !closed_; }
  bool connecting() const { return !ready_ && !closed_; }
  bool was_ready() const { return ready_; }
  // Ready, no GOAWAY received, stream ids left.
  bool accepting() const { return ready_ && !closed_ && !draining_; }
  bool draining() const { return draining_; }
  // Streams this connection may still open: min(server's SETTINGS_MAX_CONCURRENT_STREAMS, our
  // cap) minus those in use.
  size_t free_slots() const;
  size_t active_streams() const { return streams_.size(); }

  // Opens a stream for `request` (frames go out on the next flush). False when the session
  // takes no more streams; then the request is untouched and the connection stops accepting.
  bool Submit(H2Request* request);
  // Timeout: resets the stream with CANCEL and detaches the request (no OnStreamDone for it).
  void Cancel(H2Request* request);
  // Detaches every request (no OnStreamDone) and closes the socket (no OnClosed).
  std::vector<H2Request*> Abandon();

 private:
  using Tcp = boost::asio::ip::tcp;

  void Connect(std::vector<Tcp::endpoint> endpoints);
  void Handshake();
  void BecomeReady();
  void Read();
  void OnRead(const boost::system::error_code& ec, size_t n);
  void ScheduleFlush();
  void Flush();
  // Ends the connection: reports every request (retry or failed), closes, OnClosed.
  void Fail(int curl_code, const std::string& error);
  void CloseSocket();
  void Finish(int32_t stream_id, StreamResult result);
  void EndEvent();
  H2Request* Find(int32_t stream_id) const;

  static nghttp2_session_callbacks* SessionCallbacks();
  static int OnHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                      const uint8_t*, size_t, uint8_t, void*);
  static int OnDataChunk(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame*, void*);
  static int OnFrameSend(nghttp2_session*, const nghttp2_frame*, void*);
  static int OnFrameNotSend(nghttp2_session*, const nghttp2_frame*, int, void*);
  static int OnStreamClose(nghttp2_session*, int32_t, uint32_t, void*);
  static ssize_t ReadBody(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*,
                          nghttp2_data_source*, void*);

  boost::asio::io_context& io_;
  H2ConnectionOwner& owner_;
  H2Origin* const origin_;
  const Target target_;
  Tcp::resolver resolver_;
  Tcp::socket socket_;
  std::unique_ptr<boost::asio::ssl::stream<Tcp::socket>> tls_;
  boost::asio::steady_timer connect_timer_;
  nghttp2_session* session_ = nullptr;
  std::unordered_map<int32_t, H2Request*> streams_;
  std::vector<std::string> names_;  // Submit's scratch
  std::vector<nghttp2_nv> nva_;

  std::array<uint8_t, 64 * 1024> read_buf_{};
  std::string out_;
  bool ready_ = false;
  bool draining_ = false;  // GOAWAY received (or stream ids exhausted): no new streams
  int32_t goaway_last_stream_ = -1;
  bool closed_ = false;
  bool not_h2_ = false;  // TLS peer chose another protocol by ALPN
  bool writing_ = false;
  bool flush_posted_ = false;
  bool in_event_ = false;  // inside a read/flush: EndEvent runs once at its end
};

}  // namespace herald::net::internal

// The server side of one HTTP/2 connection on libnghttp2's session API, independent of any
// socket: the owner feeds received bytes in (Receive), takes the frames to send out
// (TakeOutput) and answers requests (Respond) whenever it likes — at once, after a timer, or
// never. SETTINGS advertise 1000 concurrent streams.
//
// Thread-safety: none; one connection's strand drives it. Callbacks run inside Receive().
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sim/exchange.h"

namespace herald::sim {

class H2Session {
 public:
  // Called once per complete request (headers and body, END_STREAM seen).
  using RequestFn = std::function<void(int32_t stream_id, const SimRequest& request)>;

  static constexpr uint32_t kMaxConcurrentStreams = 1000;

  explicit H2Session(RequestFn on_request);
  ~H2Session();
  H2Session(const H2Session&) = delete;
  H2Session& operator=(const H2Session&) = delete;

  // Feeds bytes read from the peer. False on a protocol error: flush the output (it may hold a
  // GOAWAY) and close.
  bool Receive(const uint8_t* data, size_t n);
  // Appends every frame ready to go to `out`.
  void TakeOutput(std::string& out);
  // Answers a request; a no-op when the stream is gone (reset or closed by the peer).
  void Respond(int32_t stream_id, SimResponse response);
  // True when neither side wants the connection any more.
  bool Done() const;
  size_t open_streams() const { return open_streams_; }

 private:
  struct Stream;
  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame*, void*);
  static int OnHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                      const uint8_t*, size_t, uint8_t, void*);
  static int OnDataChunk(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame*, void*);
  static int OnStreamClose(nghttp2_session*, int32_t, uint32_t, void*);
  static ssize_t ReadBody(nghttp2_session*, int32_t, uint8_t*, size_t, uint32_t*,
                          nghttp2_data_source*, void*);
  Stream* Find(int32_t stream_id) const;
  void Close(Stream* stream);

  // Streams are looked up through nghttp2's stream user data; this side owns them. Open ones
  // are on an intrusive list (nghttp2_session_del reports no closes); closed ones are kept for
  // reuse, so a request costs no Stream, header-list or string allocations once warm.
  static constexpr size_t kMaxSpareStreams = 256;
  RequestFn on_request_;
  nghttp2_session* session_ = nullptr;
  Stream* open_ = nullptr;  // head of the open streams' list
  size_t open_streams_ = 0;
  std::vector<std::unique_ptr<Stream>> spare_;
};

}  // namespace herald::sim

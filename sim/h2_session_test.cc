// H2Session against an nghttp2 client session, bytes passed by hand (no sockets): what the
// server does with resets, empty bodies and many streams.
#include "sim/h2_session.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace herald::sim {
namespace {

// The client half: submits requests, records what comes back.
class Peer {
 public:
  Peer() {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &Peer::OnFrame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, &Peer::OnClose);
    nghttp2_session_client_new(&session_, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~Peer() { nghttp2_session_del(session_); }

  int32_t Get(const std::string& path) {
    const std::string m = ":method", get = "GET", s = ":scheme", http = "http", a = ":authority",
                      host = "sim", p = ":path";
    const nghttp2_nv nva[] = {Nv(m, get), Nv(s, http), Nv(a, host), Nv(p, path)};
    return nghttp2_submit_request(session_, nullptr, nva, std::size(nva), nullptr, nullptr);
  }
  void Reset(int32_t stream_id, uint32_t code) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, code);
  }
  std::string Output() {
    std::string out;
    const uint8_t* chunk = nullptr;
    for (ssize_t n; (n = nghttp2_session_mem_send(session_, &chunk)) > 0;) {
      out.append(reinterpret_cast<const char*>(chunk), static_cast<size_t>(n));
    }
    return out;
  }
  bool Input(const std::string& bytes) {
    return nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(bytes.data()),
                                    bytes.size()) == static_cast<ssize_t>(bytes.size());
  }

  int goaways = 0;
  uint32_t goaway_code = 0;
  std::map<int32_t, uint8_t> header_flags;  // stream -> flags of its response HEADERS
  std::vector<int32_t> closed;              // streams closed with NO_ERROR, in order

 private:
  static nghttp2_nv Nv(const std::string& name, const std::string& value) {
    return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
            reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
            NGHTTP2_NV_FLAG_NONE};
  }
  static int OnFrame(nghttp2_session*, const nghttp2_frame* frame, void* self) {
    auto* peer = static_cast<Peer*>(self);
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      ++peer->goaways;
      peer->goaway_code = frame->goaway.error_code;
    } else if (frame->hd.type == NGHTTP2_HEADERS) {
      peer->header_flags[frame->hd.stream_id] = frame->hd.flags;
    }
    return 0;
  }
  static int OnClose(nghttp2_session*, int32_t stream_id, uint32_t code, void* self) {
    if (code == NGHTTP2_NO_ERROR) static_cast<Peer*>(self)->closed.push_back(stream_id);
    return 0;
  }

  nghttp2_session* session_ = nullptr;
};

// Answers every request at once with `body`.
struct Server {
  explicit Server(std::string response_body)
      : body(std::move(response_body)), session([this](int32_t id, const SimRequest&) {
          SimResponse r;
          r.body = body;
          session.Respond(id, std::move(r));
        }) {}

  // One round trip: the peer's pending frames in, the server's answer back.
  bool Exchange(Peer& peer) {
    const std::string in = peer.Output();
    if (!session.Receive(reinterpret_cast<const uint8_t*>(in.data()), in.size())) return false;
    std::string out;
    session.TakeOutput(out);
    return peer.Input(out);
  }

  std::string body;
  H2Session session;
};

TEST(H2SessionTest, EmptyBodyEndsTheStreamOnHeaders) {
  Server server("");
  Peer peer;
  const int32_t id = peer.Get("/3/device/x");
  ASSERT_TRUE(server.Exchange(peer));
  ASSERT_EQ(peer.header_flags.count(id), 1u);
  EXPECT_NE(peer.header_flags[id] & NGHTTP2_FLAG_END_STREAM, 0);
  EXPECT_EQ(peer.closed, std::vector<int32_t>{id});
}

// libcurl 7.88 resets every stream whose response had no body after it read that response;
// RFC 9113 section 5.1 has the server ignore such resets. nghttp2's rapid-reset guard used to
// answer the 1001st with GOAWAY(INTERNAL_ERROR).
TEST(H2SessionTest, ResetsOfAnsweredStreamsNeverEndTheConnection) {
  for (const uint32_t code : {NGHTTP2_STREAM_CLOSED, NGHTTP2_NO_ERROR, NGHTTP2_CANCEL}) {
    Server server("");
    Peer peer;
    for (int round = 0; round < 30; ++round) {
      std::vector<int32_t> ids;
      ids.reserve(100);
      for (int i = 0; i < 100; ++i) ids.push_back(peer.Get("/3/device/x"));
      ASSERT_TRUE(server.Exchange(peer));  // requests out, answers back
      for (int32_t id : ids) peer.Reset(id, code);
      ASSERT_TRUE(server.Exchange(peer));  // the resets out
    }
    EXPECT_EQ(peer.goaways, 0) << "code " << code << ", GOAWAY " << peer.goaway_code;
    EXPECT_EQ(peer.closed.size(), 3000u);
    EXPECT_FALSE(server.session.Done());
    EXPECT_EQ(server.session.open_streams(), 0u);
  }
}

TEST(H2SessionTest, ResetOfAnOpenStreamDropsItsAnswer) {
  std::vector<int32_t> pending;
  H2Session session([&](int32_t id, const SimRequest&) { pending.push_back(id); });
  Peer peer;
  const int32_t id = peer.Get("/slow");
  std::string in = peer.Output();
  ASSERT_TRUE(session.Receive(reinterpret_cast<const uint8_t*>(in.data()), in.size()));
  ASSERT_EQ(pending, std::vector<int32_t>{id});
  EXPECT_EQ(session.open_streams(), 1u);
  peer.Reset(id, NGHTTP2_CANCEL);
  in = peer.Output();
  ASSERT_TRUE(session.Receive(reinterpret_cast<const uint8_t*>(in.data()), in.size()));
  EXPECT_EQ(session.open_streams(), 0u);
  session.Respond(id, SimResponse{});  // too late: a no-op
  std::string out;
  session.TakeOutput(out);
  ASSERT_TRUE(peer.Input(out));
  EXPECT_EQ(peer.header_flags.count(id), 0u);
  EXPECT_EQ(peer.goaways, 0);
}

TEST(H2SessionTest, BodyEndsTheStreamOnData) {
  Server server(std::string(40'000, 'x'));  // over the 16 KiB default frame size
  Peer peer;
  const int32_t id = peer.Get("/v1/projects/p/messages:send");
  ASSERT_TRUE(server.Exchange(peer));
  ASSERT_EQ(peer.header_flags.count(id), 1u);
  EXPECT_EQ(peer.header_flags[id] & NGHTTP2_FLAG_END_STREAM, 0);
  EXPECT_EQ(peer.closed, std::vector<int32_t>{id});
}

}  // namespace
}  // namespace herald::sim

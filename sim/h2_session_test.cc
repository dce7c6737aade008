// H2Session against an nghttp2 client session, bytes passed by hand (no sockets): what the
// server does with resets, empty bodies and many streams.
#include "sim/h2_session.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <map>
#include <memory>
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
  // A POST with extra headers and, unless empty, a body.
  int32_t Post(const std::string& path, const HeaderList& headers, const std::string& body) {
    const std::string m = ":method", post = "POST", s = ":scheme", http = "http", a = ":authority",
                      host = "sim", p = ":path";
    std::vector<nghttp2_nv> nva = {Nv(m, post), Nv(s, http), Nv(a, host), Nv(p, path)};
    for (const auto& [name, value] : headers) nva.push_back(Nv(name, value));
    bodies_.push_back(std::make_unique<Body>(Body{body, 0}));
    nghttp2_data_provider provider{};
    provider.source.ptr = bodies_.back().get();
    provider.read_callback = &Peer::ReadBody;
    return nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                  body.empty() ? nullptr : &provider, nullptr);
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

  struct Body {
    std::string bytes;
    size_t sent;
  };
  static ssize_t ReadBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                          uint32_t* data_flags, nghttp2_data_source* source, void*) {
    auto* body = static_cast<Body*>(source->ptr);
    const size_t n = std::min(length, body->bytes.size() - body->sent);
    std::copy_n(body->bytes.data() + body->sent, n, buf);
    body->sent += n;
    if (body->sent == body->bytes.size()) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  nghttp2_session* session_ = nullptr;
  std::vector<std::unique_ptr<Body>> bodies_;
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

// Streams and their buffers are reused once closed: each request must still arrive with exactly
// its own method, path, headers and body, whether it has fewer headers than the last one on a
// reused stream, more, or no body after one with a body.
TEST(H2SessionTest, ReusedStreamsCarryOnlyTheirOwnRequest) {
  std::vector<SimRequest> seen;
  H2Session session([&](int32_t id, const SimRequest& request) {
    seen.push_back(request);
    session.Respond(id, SimResponse{});
  });
  auto exchange = [&](Peer& peer) {
    const std::string in = peer.Output();
    ASSERT_TRUE(session.Receive(reinterpret_cast<const uint8_t*>(in.data()), in.size()));
    std::string out;
    session.TakeOutput(out);
    ASSERT_TRUE(peer.Input(out));
  };
  const std::string long_value(300, 'v');
  HeaderList many;
  for (int i = 0; i < 20; ++i) many.emplace_back("x-h" + std::to_string(i), std::to_string(i));
  struct Round {
    std::string path;
    HeaderList headers;
    std::string body;
  };
  const std::vector<Round> rounds = {
      {"/first",
       {{"authorization", "bearer " + long_value}, {"apns-topic", "t"}},
       std::string(500, 'b')},
      {"/second", {{"content-type", "application/json"}}, ""},
      {"/third", many, "{}"},
      {"/fourth", {}, "x"},
  };
  Peer peer;
  for (const Round& round : rounds) {
    seen.clear();
    for (int i = 0; i < 3; ++i) peer.Post(round.path, round.headers, round.body);
    exchange(peer);
    ASSERT_EQ(seen.size(), 3u) << round.path;
    HeaderList expected = {{"host", "sim"}};
    expected.insert(expected.end(), round.headers.begin(), round.headers.end());
    for (const SimRequest& request : seen) {
      EXPECT_EQ(request.method, "POST");
      EXPECT_EQ(request.target, round.path);
      EXPECT_EQ(request.headers, expected) << round.path;
      EXPECT_EQ(request.body, round.body) << round.path;
      EXPECT_FALSE(request.body_too_large);
      EXPECT_TRUE(request.h2);
    }
    EXPECT_EQ(session.open_streams(), 0u);
  }
}

}  // namespace
}  // namespace herald::sim

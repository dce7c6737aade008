// Test-only: a small HTTP/2 (h2c, prior knowledge) server on libnghttp2 and Asio, running on its
// own thread, whose misbehaviour a test chooses: GOAWAY after N requests on a connection,
// REFUSED_STREAM for every k-th request, an abrupt close, no answer at all. It counts what the
// client did (connections, requests, RST_STREAMs received). Included only by *_test.cc files.
//
// Paths: /empty (200, no body), /echo (the request body back), /big/N (N bytes), /hang (never
// answered), /drop (closes the connection at once), anything else: 200 "ok".
#pragma once

// clang-format off
#include <utility>  // before Boost 1.74's Asio headers (GCC 12)
// clang-format on

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>

namespace herald::net::h2test {

struct TestH2ServerOptions {
  uint32_t max_concurrent_streams = 100;
  int goaway_after = 0;  // per connection: GOAWAY(last = the N-th request's stream), then drain
  // RST_STREAM(REFUSED_STREAM) for every k-th request (over all), but never the same body
  // more than twice: a fixed pattern could otherwise keep hitting one retried request.
  int refuse_every = 0;
};

class TestH2Server {
 public:
  using Options = TestH2ServerOptions;

  std::atomic<int> connections{0};
  std::atomic<int> requests{0};          // complete requests received (refused ones included)
  std::atomic<int> refused{0};           // REFUSED_STREAM sent
  std::atomic<int> goaways{0};           // GOAWAY sent
  std::atomic<int> resets_received{0};   // RST_STREAM frames from the client
  std::atomic<int> cancels_received{0};  // ... of which with CANCEL
  std::atomic<int> open_connections{0};

  explicit TestH2Server(Options options = {}) : options_(options), acceptor_(io_) {
    using Tcp = boost::asio::ip::tcp;
    Tcp::endpoint endpoint(boost::asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(Tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TestH2Server() {
    io_.stop();
    thread_.join();
  }

  uint16_t port() const { return port_; }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  class Connection : public std::enable_shared_from_this<Connection> {
   public:
    Connection(TestH2Server& server, boost::asio::ip::tcp::socket socket)
        : server_(server), socket_(std::move(socket)) {
      nghttp2_session_callbacks* cb = nullptr;
      nghttp2_session_callbacks_new(&cb);
      nghttp2_session_callbacks_set_on_header_callback(cb, &Connection::OnHeader);
      nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &Connection::OnData);
      nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &Connection::OnFrame);
      nghttp2_session_callbacks_set_on_stream_close_callback(cb, &Connection::OnClose);
      nghttp2_session_server_new(&session_, cb, this);
      nghttp2_session_callbacks_del(cb);
      const nghttp2_settings_entry settings[] = {
          {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, server.options_.max_concurrent_streams}};
      nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 1);
    }
    ~Connection() {
      nghttp2_session_del(session_);
      --server_.open_connections;
    }

    void Start() {
      ++server_.connections;
      ++server_.open_connections;
      Flush();
      Read();
    }

   private:
    struct Stream {
      std::string path;
      std::string body;
      std::string response;
      size_t offset = 0;
    };

    void Read() {
      socket_.async_read_some(
          boost::asio::buffer(buf_),
          [self = shared_from_this()](boost::system::error_code ec, size_t n) {
            if (ec || self->closed_) return self->Close();
            if (nghttp2_session_mem_recv(self->session_, self->buf_.data(), n) < 0) {
              return self->Close();
            }
            self->Flush();
            if (!self->closed_) self->Read();
          });
    }

    void Flush() {
      if (writing_ || closed_) return;
      out_.clear();
      for (;;) {
        const uint8_t* chunk = nullptr;
        const ssize_t n = nghttp2_session_mem_send(session_, &chunk);
        if (n <= 0) break;
        out_.append(reinterpret_cast<const char*>(chunk), static_cast<size_t>(n));
      }
      if (out_.empty()) {
        if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0) {
          Close();
        }
        return;
      }
      writing_ = true;
      boost::asio::async_write(socket_, boost::asio::buffer(out_),
                               [self = shared_from_this()](boost::system::error_code ec, size_t) {
                                 self->writing_ = false;
                                 if (ec) return self->Close();
                                 self->Flush();
                               });
    }

    void Close() {
      if (closed_) return;
      closed_ = true;
      boost::system::error_code ignored;
      socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
      socket_.close(ignored);
    }

    void OnRequest(int32_t id, Stream& stream) {
      const int n = ++server_.requests;
      ++handled_;
      const Options& o = server_.options_;
      if (o.refuse_every > 0 && n % o.refuse_every == 0 && server_.refusals_[stream.body]++ < 2) {
        ++server_.refused;
        nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
        return;
      }
      if (stream.path == "/drop") {
        Close();
        return;
      }
      if (stream.path == "/hang") return;
      if (o.goaway_after > 0 && handled_ == o.goaway_after) {
        ++server_.goaways;
        nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR, nullptr, 0);
      }
      if (stream.path == "/empty") {
        Respond(id, stream, "", false);
      } else if (stream.path == "/echo") {
        Respond(id, stream, stream.body, true);
      } else if (stream.path.rfind("/big/", 0) == 0) {
        size_t size = 0;
        std::from_chars(stream.path.data() + 5, stream.path.data() + stream.path.size(), size);
        std::string body(size, 'x');
        for (size_t i = 0; i < size; ++i) body[i] = static_cast<char>('a' + i % 26);
        Respond(id, stream, std::move(body), true);
      } else {
        Respond(id, stream, "ok", true);
      }
    }

    void Respond(int32_t id, Stream& stream, std::string body, bool with_body) {
      stream.response = std::move(body);
      const std::string length = std::to_string(stream.response.size());
      const std::string size = std::to_string(stream.body.size());
      auto nv = [](const char* n, const std::string& v) {
        return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(n)),
                          reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), std::strlen(n),
                          v.size(), NGHTTP2_NV_FLAG_NONE};
      };
      const std::string status = "200";
      const nghttp2_nv headers[] = {nv(":status", status), nv("content-length", length),
                                    nv("x-request-body-size", size)};
      nghttp2_data_provider provider{};
      provider.source.ptr = &stream;
      provider.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t len,
                                  uint32_t* flags, nghttp2_data_source* src, void*) -> ssize_t {
        auto* s = static_cast<Stream*>(src->ptr);
        const size_t n = std::min(len, s->response.size() - s->offset);
        std::copy_n(s->response.data() + s->offset, n, buf);  // bytes, not a C string
        s->offset += n;
        if (s->offset == s->response.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
        return static_cast<ssize_t>(n);
      };
      nghttp2_submit_response(session_, id, headers, 3,
                              with_body && !stream.response.empty() ? &provider : nullptr);
    }

    static Connection* Self(void* p) { return static_cast<Connection*>(p); }
    static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                        size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* p) {
      if (std::string_view(reinterpret_cast<const char*>(name), namelen) == ":path") {
        Self(p)->streams_[frame->hd.stream_id].path.assign(reinterpret_cast<const char*>(value),
                                                           valuelen);
      }
      return 0;
    }
    static int OnData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                      void* p) {
      Self(p)->streams_[id].body.append(reinterpret_cast<const char*>(data), len);
      return 0;
    }
    static int OnFrame(nghttp2_session*, const nghttp2_frame* frame, void* p) {
      Connection* self = Self(p);
      if (frame->hd.type == NGHTTP2_RST_STREAM) {
        ++self->server_.resets_received;
        if (frame->rst_stream.error_code == NGHTTP2_CANCEL) ++self->server_.cancels_received;
      }
      if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
          (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
        auto it = self->streams_.find(frame->hd.stream_id);
        if (it != self->streams_.end()) self->OnRequest(frame->hd.stream_id, it->second);
      }
      return 0;
    }
    static int OnClose(nghttp2_session*, int32_t id, uint32_t, void* p) {
      Self(p)->streams_.erase(id);
      return 0;
    }

    TestH2Server& server_;
    boost::asio::ip::tcp::socket socket_;
    nghttp2_session* session_ = nullptr;
    std::map<int32_t, Stream> streams_;
    std::array<uint8_t, 16384> buf_{};
    std::string out_;
    int handled_ = 0;
    bool writing_ = false;
    bool closed_ = false;
  };

  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, boost::asio::ip::tcp::socket s) {
      if (ec) return;
      boost::system::error_code ignored;
      s.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
      std::make_shared<Connection>(*this, std::move(s))->Start();
      Accept();
    });
  }

  const Options options_;
  std::map<std::string, int> refusals_;  // by request body; touched on the server thread only
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace herald::net::h2test

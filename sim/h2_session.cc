#include "sim/h2_session.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::sim {

struct H2Session::Stream {
  Stream() {
    request.h2 = true;
    request.headers.reserve(16);
  }
  // Ready for another request; buffers keep their capacity, the header strings are kept in
  // `spare_headers` to be assigned to in place.
  void Reset() {
    request.method.clear();
    request.target.clear();
    std::swap(request.headers, spare_headers);
    request.headers.clear();
    if (request.body.capacity() > kMaxKeptBody) {
      std::string().swap(request.body);
    } else {
      request.body.clear();
    }
    request.body_too_large = false;
    dispatched = false;
    std::string().swap(response_body);
    sent = 0;
  }
  void AddHeader(std::string_view name, std::string_view value) {
    HeaderList& headers = request.headers;
    const size_t i = headers.size();
    if (i < spare_headers.size()) {
      headers.push_back(std::move(spare_headers[i]));
      headers.back().first.assign(name);
      headers.back().second.assign(value);
    } else {
      headers.emplace_back(name, value);
    }
  }

  static constexpr size_t kMaxKeptBody = 16 * 1024;  // larger bodies are not kept for reuse
  SimRequest request;
  HeaderList spare_headers;
  bool dispatched = false;
  std::string response_body;
  size_t sent = 0;
  Stream* prev = nullptr;  // the open streams' list
  Stream* next = nullptr;
};

namespace {

H2Session* Self(void* user_data) { return static_cast<H2Session*>(user_data); }

nghttp2_nv Nv(const std::string& name, const std::string& value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

H2Session::H2Session(RequestFn on_request) : on_request_(std::move(on_request)) {
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &H2Session::OnBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cb, &H2Session::OnHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &H2Session::OnDataChunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &H2Session::OnFrameRecv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &H2Session::OnStreamClose);
  // nghttp2's rapid-reset guard (CVE-2023-44487; 1000 RST_STREAMs, then 33 a second) counts
  // every RST_STREAM, even one for a stream this side has already answered and closed. RFC 9113
  // section 5.1 says such a frame must be ignored, and HTTP/2 clients send it routinely: libcurl
  // 7.88 resets every stream whose response has an empty body (APNs' 200) once it is done with
  // it. With the guard, a busy APNs connection got GOAWAY(INTERNAL_ERROR) after about 1000
  // pushes, and the pushes in flight on it failed. A simulator has no attacker to fend off.
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  nghttp2_option_set_stream_reset_rate_limit(option, std::numeric_limits<uint64_t>::max(), 0);
  nghttp2_session_server_new2(&session_, cb, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(cb);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  // A wider connection window too, so many concurrent uploads do not stall on WINDOW_UPDATEs.
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 16 << 20);
}

H2Session::~H2Session() {
  nghttp2_session_del(session_);
  while (open_ != nullptr) {
    Stream* next = open_->next;
    delete open_;  // the open list owns its streams
    open_ = next;
  }
}

H2Session::Stream* H2Session::Find(int32_t stream_id) const {
  return static_cast<Stream*>(nghttp2_session_get_stream_user_data(session_, stream_id));
}

void H2Session::Close(Stream* stream) {
  (stream->prev != nullptr ? stream->prev->next : open_) = stream->next;
  if (stream->next != nullptr) stream->next->prev = stream->prev;
  --open_streams_;
  std::unique_ptr<Stream> owned(stream);
  if (spare_.size() < kMaxSpareStreams) {
    owned->Reset();
    spare_.push_back(std::move(owned));
  }
}

bool H2Session::Receive(const uint8_t* data, size_t n) {
  ssize_t used = nghttp2_session_mem_recv(session_, data, n);
  return used >= 0 && static_cast<size_t>(used) == n;
}

void H2Session::TakeOutput(std::string& out) {
  for (;;) {
    const uint8_t* chunk = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &chunk);
    if (n <= 0) return;
    out.append(reinterpret_cast<const char*>(chunk), static_cast<size_t>(n));
  }
}

bool H2Session::Done() const {
  return nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0;
}

void H2Session::Respond(int32_t stream_id, SimResponse response) {
  Stream* found = Find(stream_id);
  if (found == nullptr) return;
  Stream& stream = *found;
  const std::string status_name = ":status";
  const std::string status = std::to_string(response.status);
  const std::string length_name = "content-length";
  const std::string length = std::to_string(response.body.size());
  std::vector<nghttp2_nv> nva;
  nva.reserve(response.headers.size() + 2);
  nva.push_back(Nv(status_name, status));
  for (const auto& [name, value] : response.headers) nva.push_back(Nv(name, value));
  nva.push_back(Nv(length_name, length));
  stream.response_body = std::move(response.body);
  stream.sent = 0;
  nghttp2_data_provider provider{};
  provider.source.ptr = &stream;
  provider.read_callback = &H2Session::ReadBody;
  // nghttp2 copies the header names and values, so the locals above may go.
  nghttp2_submit_response(session_, stream_id, nva.data(), nva.size(),
                          stream.response_body.empty() ? nullptr : &provider);
}

int H2Session::OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  H2Session* self = Self(user_data);
  std::unique_ptr<Stream> stream;
  if (self->spare_.empty()) {
    stream = std::make_unique<Stream>();
  } else {
    stream = std::move(self->spare_.back());
    self->spare_.pop_back();
  }
  if (nghttp2_session_set_stream_user_data(self->session_, frame->hd.stream_id, stream.get()) !=
      0) {
    return 0;
  }
  Stream* open = stream.release();  // owned by the open list until OnStreamClose
  open->prev = nullptr;
  open->next = self->open_;
  if (self->open_ != nullptr) self->open_->prev = open;
  self->open_ = open;
  ++self->open_streams_;
  return 0;
}

int H2Session::OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                        size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                        void* user_data) {
  Stream* stream = Self(user_data)->Find(frame->hd.stream_id);
  if (stream == nullptr) return 0;
  SimRequest& req = stream->request;
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (n == ":method") {
    req.method = v;
  } else if (n == ":path") {
    req.target = v;
  } else if (n == ":authority") {
    stream->AddHeader("host", v);
  } else if (!n.empty() && n.front() != ':') {
    stream->AddHeader(n, v);  // nghttp2 has checked that names are lower-case
  }
  return 0;
}

int H2Session::OnDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                           size_t len, void* user_data) {
  Stream* stream = Self(user_data)->Find(stream_id);
  if (stream == nullptr) return 0;
  SimRequest& req = stream->request;
  if (req.body.size() + len > kMaxBodyBytes) {
    req.body_too_large = true;
  } else {
    req.body.append(reinterpret_cast<const char*>(data), len);
  }
  return 0;
}

int H2Session::OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) {
    return 0;
  }
  H2Session* self = Self(user_data);
  Stream* stream = self->Find(frame->hd.stream_id);
  if (stream == nullptr || stream->dispatched) return 0;
  stream->dispatched = true;
  // The handler may Respond() at once; the Stream (and its request) stays until closed.
  self->on_request_(frame->hd.stream_id, stream->request);
  return 0;
}

int H2Session::OnStreamClose(nghttp2_session* session, int32_t stream_id, uint32_t,
                             void* user_data) {
  H2Session* self = Self(user_data);
  Stream* stream = self->Find(stream_id);
  if (stream == nullptr) return 0;
  nghttp2_session_set_stream_user_data(session, stream_id, nullptr);
  self->Close(stream);
  return 0;
}

ssize_t H2Session::ReadBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                            uint32_t* data_flags, nghttp2_data_source* source, void*) {
  auto* stream = static_cast<Stream*>(source->ptr);
  size_t n = std::min(length, stream->response_body.size() - stream->sent);
  std::copy_n(stream->response_body.data() + stream->sent, n, buf);
  stream->sent += n;
  if (stream->sent == stream->response_body.size()) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

}  // namespace herald::sim

// H2Connection, the stream half: requests in (Submit, Cancel, Abandon) and libnghttp2's
// callbacks that turn frames into responses and report how each stream ended.
#include <curl/curl.h>  // CURLE_* numbers, which HttpResponse::curl_code reuses

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string_view>

#include "net/h2_connection.h"

namespace herald::net::internal {
namespace {

H2Connection* Self(void* user_data) { return static_cast<H2Connection*>(user_data); }

// Header fields that HTTP/2 forbids (RFC 9113 section 8.2.2); "host" becomes :authority.
bool IsConnectionSpecific(std::string_view name) {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
         name == "transfer-encoding" || name == "upgrade" || name == "host";
}

nghttp2_nv Nv(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

size_t H2Connection::free_slots() const {
  const uint32_t remote =
      nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  const size_t cap =
      std::min<size_t>(remote, static_cast<size_t>(std::max(1, target_.max_concurrent_streams)));
  return cap > streams_.size() ? cap - streams_.size() : 0;
}

bool H2Connection::Submit(H2Request* request) {
  const HttpRequest& r = request->job.request;
  const std::string_view scheme = target_.tls != nullptr ? "https" : "http";
  std::string_view authority = request->authority;
  const bool carries_body =
      !r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH";
  bool has_length = false;
  bool has_type = false;
  bool has_accept = false;
  // Lower-cased names (scratch reused across requests: nghttp2 copies names and values).
  std::vector<std::string>& names = names_;
  if (names.size() < r.headers.size()) names.resize(r.headers.size());
  for (size_t i = 0; i < r.headers.size(); ++i) {
    std::string& lower = names[i];
    lower.assign(r.headers[i].first);
    for (char& c : lower) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (lower == "host") authority = r.headers[i].second;
    has_length = has_length || lower == "content-length";
    has_type = has_type || lower == "content-type";
    has_accept = has_accept || lower == "accept";
  }
  std::vector<nghttp2_nv>& nva = nva_;
  nva.clear();
  nva.push_back(Nv(":method", r.method));
  nva.push_back(Nv(":scheme", scheme));
  nva.push_back(Nv(":authority", authority));
  nva.push_back(Nv(":path", request->path));
  for (size_t i = 0; i < r.headers.size(); ++i) {
    if (IsConnectionSpecific(names[i]) || (names[i] == "te" && r.headers[i].second != "trailers")) {
      continue;
    }
    nva.push_back(Nv(names[i], r.headers[i].second));
  }
  // What libcurl adds to the same request, so that servers see no difference.
  const std::string length = std::to_string(r.body.size());
  if (carries_body && !has_length) nva.push_back(Nv("content-length", length));
  if (carries_body && !has_type) {
    nva.push_back(Nv("content-type", "application/x-www-form-urlencoded"));
  }
  if (!has_accept) nva.push_back(Nv("accept", "*/*"));

  nghttp2_data_provider provider{};
  provider.read_callback = &H2Connection::ReadBody;
  const int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                            r.body.empty() ? nullptr : &provider, nullptr);
  if (id < 0) {
    if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) draining_ = true;
    return false;
  }
  request->connection = this;
  request->stream_id = id;
  request->where = H2Request::Where::kOnStream;
  request->body_offset = 0;
  request->headers_sent = false;
  request->response_complete = false;
  request->response = HttpResponse{};
  streams_.emplace(id, request);
  ScheduleFlush();
  return true;
}

void H2Connection::Cancel(H2Request* request) {
  streams_.erase(request->stream_id);
  request->connection = nullptr;
  request->where = H2Request::Where::kLimbo;
  if (closed_) return;
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, request->stream_id, NGHTTP2_CANCEL);
  ScheduleFlush();
}

std::vector<H2Request*> H2Connection::Abandon() {
  std::vector<H2Request*> requests;
  requests.reserve(streams_.size());
  for (auto& [id, request] : streams_) {
    request->connection = nullptr;
    request->where = H2Request::Where::kLimbo;
    requests.push_back(request);
  }
  streams_.clear();
  closed_ = true;
  CloseSocket();
  return requests;
}

H2Request* H2Connection::Find(int32_t stream_id) const {
  auto it = streams_.find(stream_id);
  return it == streams_.end() ? nullptr : it->second;
}

void H2Connection::Finish(int32_t stream_id, StreamResult result) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  H2Request* request = it->second;
  streams_.erase(it);
  request->connection = nullptr;
  request->where = H2Request::Where::kLimbo;
  owner_.OnStreamDone(request, std::move(result));
}

int H2Connection::OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                           size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                           void* user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  H2Request* request = Self(user_data)->Find(frame->hd.stream_id);
  if (request == nullptr) return 0;
  const std::string_view n(reinterpret_cast<const char*>(name), namelen);
  const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  HttpResponse& response = request->response;
  if (n == ":status") {
    int status = 0;
    std::from_chars(v.data(), v.data() + v.size(), status);
    response.status = status;
    response.headers.clear();  // a final response after 1xx starts afresh
  } else if (!n.empty() && n.front() != ':') {
    response.headers.emplace_back(n, v);  // nghttp2 refuses upper-case names
  }
  return 0;
}

int H2Connection::OnDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                              size_t len, void* user_data) {
  H2Request* request = Self(user_data)->Find(stream_id);
  if (request != nullptr) request->response.body.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int H2Connection::OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  H2Connection* self = Self(user_data);
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
      if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
        if (H2Request* request = self->Find(frame->hd.stream_id); request != nullptr) {
          request->response_complete = request->response.status >= 200;
        }
      }
      break;
    case NGHTTP2_GOAWAY:
      // nghttp2 closes our streams above last_stream_id with REFUSED_STREAM (retried) and
      // fails the HEADERS it had not sent yet (retried too).
      self->draining_ = true;
      self->goaway_last_stream_ = frame->goaway.last_stream_id;
      break;
    default: break;
  }
  return 0;
}

int H2Connection::OnFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  if (frame->hd.type == NGHTTP2_HEADERS) {
    if (H2Request* request = Self(user_data)->Find(frame->hd.stream_id); request != nullptr) {
      request->headers_sent = true;
    }
  }
  return 0;
}

int H2Connection::OnFrameNotSend(nghttp2_session*, const nghttp2_frame* frame, int,
                                 void* user_data) {
  if (frame->hd.type == NGHTTP2_HEADERS) {
    StreamResult result;
    result.kind = StreamResult::Kind::kRetry;
    Self(user_data)->Finish(frame->hd.stream_id, std::move(result));
  }
  return 0;
}

int H2Connection::OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                                void* user_data) {
  H2Connection* self = Self(user_data);
  H2Request* request = self->Find(stream_id);
  if (request == nullptr) return 0;
  StreamResult result;
  if (request->response_complete) {
    result.kind = StreamResult::Kind::kResponse;
  } else if (error_code == NGHTTP2_REFUSED_STREAM || !request->headers_sent) {
    result.kind = StreamResult::Kind::kRetry;
  } else {
    result.kind = StreamResult::Kind::kFailed;
    result.curl_code = CURLE_HTTP2_STREAM;
    result.error = "HTTP/2 stream " + std::to_string(stream_id) +
                   " was closed: " + nghttp2_http2_strerror(error_code);
  }
  self->Finish(stream_id, std::move(result));
  return 0;
}

ssize_t H2Connection::ReadBody(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                               uint32_t* data_flags, nghttp2_data_source*, void* user_data) {
  H2Request* request = Self(user_data)->Find(stream_id);
  if (request == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  const std::string& body = request->job.request.body;
  const size_t n = std::min(length, body.size() - request->body_offset);
  std::copy_n(body.data() + request->body_offset, n, buf);  // bytes, not a C string
  request->body_offset += n;
  if (request->body_offset == body.size()) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

nghttp2_session_callbacks* H2Connection::SessionCallbacks() {
  static nghttp2_session_callbacks* callbacks = [] {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, &H2Connection::OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &H2Connection::OnDataChunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &H2Connection::OnFrameRecv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, &H2Connection::OnFrameSend);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, &H2Connection::OnFrameNotSend);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, &H2Connection::OnStreamClose);
    return cb;
  }();
  return callbacks;
}

}  // namespace herald::net::internal

#include "net/curl_transfer.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <string_view>

namespace herald::net::internal {
namespace {

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (AsciiLower(s[i]) != AsciiLower(prefix[i])) return false;
  }
  return true;
}

int HttpVersionNumber(long curl_version) {
  switch (curl_version) {
    case CURL_HTTP_VERSION_1_0: return 10;
    case CURL_HTTP_VERSION_1_1: return 11;
    case CURL_HTTP_VERSION_2_0: return 2;
    case CURL_HTTP_VERSION_3: return 3;
    default: return 0;
  }
}

// Errors that curl reports only after the request went out: a retry may duplicate it.
bool IsReceiveSideError(CURLcode code) {
  switch (code) {
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY: return true;
    default: return false;
  }
}

std::string ErrorText(CURLcode code, const char* buffer, const char* override_text) {
  if (override_text != nullptr) return override_text;
  if (code == CURLE_OK) return {};
  if (buffer[0] != '\0') return buffer;
  return curl_easy_strerror(code);
}

// The host of scheme://[user@]host[:port]/..., brackets removed; "" when there is none.
std::string HostOf(std::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return {};
  std::string_view authority = url.substr(scheme + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  if (!authority.empty() && authority.front() == '[') {
    return std::string(authority.substr(1, authority.find(']') - 1));
  }
  return std::string(authority.substr(0, authority.find(':')));
}

}  // namespace

Transfer::Transfer(const TransferDefaults* defaults)
    : defaults_(defaults), easy_(curl_easy_init()) {}

Transfer::~Transfer() {
  curl_slist_free_all(list_);
  if (easy_ != nullptr) curl_easy_cleanup(easy_);
}

void Transfer::SetKind(Kind kind) {
  if (kind_ == kind) return;
  if (kind_ != Kind::kNone) curl_easy_reset(easy_);
  kind_ = kind;
  curl_easy_setopt(easy_, CURLOPT_PRIVATE, this);
  curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy_, CURLOPT_ERRORBUFFER, error_);
  curl_easy_setopt(easy_, CURLOPT_CONNECTTIMEOUT_MS, defaults_->connect_timeout_ms);
  if (defaults_->close_socket != nullptr) {
    curl_easy_setopt(easy_, CURLOPT_CLOSESOCKETFUNCTION, defaults_->close_socket);
    curl_easy_setopt(easy_, CURLOPT_CLOSESOCKETDATA, defaults_->close_socket_data);
  }
  // Only the protocols Herald speaks, and no redirects (no provider sends one to an API call):
  // a stored URL cannot make curl speak gopher, dict, file or ftp, or follow a Location to an
  // internal address.
  const char* protocols = kind == Kind::kHttp ? "http,https" : "smtp,smtps";
  curl_easy_setopt(easy_, CURLOPT_PROTOCOLS_STR, protocols);
  curl_easy_setopt(easy_, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
  curl_easy_setopt(easy_, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy_, CURLOPT_MAXREDIRS, 0L);
  // Every new connection's address is checked (the destination policy), also for SMTP.
  curl_easy_setopt(easy_, CURLOPT_OPENSOCKETFUNCTION, &Transfer::OnOpenSocket);
  curl_easy_setopt(easy_, CURLOPT_OPENSOCKETDATA, this);
  if (kind == Kind::kHttp) {
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &Transfer::OnBody);
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(easy_, CURLOPT_HEADERFUNCTION, &Transfer::OnHeader);
    curl_easy_setopt(easy_, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(easy_, CURLOPT_PREREQFUNCTION, &Transfer::OnPrereq);
    curl_easy_setopt(easy_, CURLOPT_PREREQDATA, this);
  } else {
    curl_easy_setopt(easy_, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(easy_, CURLOPT_READFUNCTION, &Transfer::OnRead);
    curl_easy_setopt(easy_, CURLOPT_READDATA, this);
    // The reply lines reach us only through the debug callback, which needs VERBOSE.
    curl_easy_setopt(easy_, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(easy_, CURLOPT_DEBUGFUNCTION, &Transfer::OnDebug);
    curl_easy_setopt(easy_, CURLOPT_DEBUGDATA, this);
  }
}

void Transfer::SetTls(bool verify, const std::string& ca_file) {
  curl_easy_setopt(easy_, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
  curl_easy_setopt(easy_, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
  const std::string& ca = ca_file.empty() ? defaults_->default_ca_file : ca_file;
  curl_easy_setopt(easy_, CURLOPT_CAINFO, ca.empty() ? nullptr : ca.c_str());
}

void Transfer::PrepareHttp(HttpJob job, long timeout_ms, H2cRole role) {
  SetKind(Kind::kHttp);
  http_ = std::move(job);
  error_[0] = '\0';
  role_ = role;
  refused_socket_ = false;
  refused_why_.clear();
  request_started_ = false;
  saw_response_ = false;
  const HttpRequest& r = http_.request;
  host_ = HostOf(r.url);

  curl_easy_setopt(easy_, CURLOPT_URL, r.url.c_str());
  const bool https = StartsWithNoCase(r.url, "https:");
  long version = CURL_HTTP_VERSION_1_1;
  if (https) {
    version = CURL_HTTP_VERSION_2TLS;
  } else if (role == H2cRole::kReuseOnly) {
    version = CURL_HTTP_VERSION_2_0;  // never sends Upgrade: it never opens a connection
  } else if (r.h2c) {
    version = CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
  }
  curl_easy_setopt(easy_, CURLOPT_HTTP_VERSION, version);
  curl_easy_setopt(easy_, CURLOPT_FRESH_CONNECT, role == H2cRole::kOpener ? 1L : 0L);
  // Wait for a connection that can multiplex rather than open another one; HTTP/1.1 cannot.
  curl_easy_setopt(easy_, CURLOPT_PIPEWAIT, (https || r.h2c) ? 1L : 0L);
  curl_easy_setopt(easy_, CURLOPT_TIMEOUT_MS, timeout_ms);

  std::string line;
  for (const auto& [name, value] : r.headers) {
    line.assign(name);
    if (value.empty()) {
      line += ';';  // curl's way of sending a header with an empty value
    } else {
      line += ": ";
      line += value;
    }
    list_ = curl_slist_append(list_, line.c_str());
  }
  curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, list_);

  // HTTPGET first: it clears a previous request's POST, UPLOAD and NOBODY.
  curl_easy_setopt(easy_, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(easy_, CURLOPT_CUSTOMREQUEST, nullptr);
  const bool carries_body =
      !r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH";
  if (r.method == "HEAD") {
    curl_easy_setopt(easy_, CURLOPT_NOBODY, 1L);
  } else if (carries_body) {
    // No copy: the body lives in http_ until Finish().
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, r.body.data());
  }
  if (r.method != "GET" && r.method != "HEAD" && r.method != "POST") {
    curl_easy_setopt(easy_, CURLOPT_CUSTOMREQUEST, r.method.c_str());
  }
  SetTls(r.verify_tls, r.ca_file);
}

void Transfer::PrepareMail(MailJob job, long timeout_ms) {
  SetKind(Kind::kMail);
  mail_ = std::move(job);
  error_[0] = '\0';
  mail_offset_ = 0;
  last_reply_.clear();
  quit_sent_ = false;
  refused_why_.clear();
  const SmtpMessage& m = mail_.message;
  host_ = HostOf(m.url);

  curl_easy_setopt(easy_, CURLOPT_URL, m.url.c_str());
  curl_easy_setopt(easy_, CURLOPT_USE_SSL,
                   static_cast<long>(m.require_tls ? CURLUSESSL_ALL : CURLUSESSL_TRY));
  curl_easy_setopt(easy_, CURLOPT_USERNAME, m.username.empty() ? nullptr : m.username.c_str());
  curl_easy_setopt(easy_, CURLOPT_PASSWORD, m.username.empty() ? nullptr : m.password.c_str());
  curl_easy_setopt(easy_, CURLOPT_MAIL_FROM, m.mail_from.c_str());
  for (const auto& rcpt : m.rcpt_to) list_ = curl_slist_append(list_, rcpt.c_str());
  curl_easy_setopt(easy_, CURLOPT_MAIL_RCPT, list_);
  curl_easy_setopt(easy_, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(m.data.size()));
  curl_easy_setopt(easy_, CURLOPT_TIMEOUT_MS, timeout_ms);
  SetTls(m.verify_tls, m.ca_file);
}

Completion Transfer::Finish(CURLcode result) {
  Completion out;
  if (kind_ == Kind::kHttp) {
    FinishHttp(result, nullptr, out);
  } else {
    FinishMail(result, nullptr, out);
  }
  Clear();
  return out;
}

HttpJob Transfer::TakeHttpJob() {
  HttpJob job = std::move(http_);
  Clear();
  return job;
}

Completion Transfer::Abort(CURLcode code, const char* error) {
  Completion out;
  if (kind_ == Kind::kHttp) {
    FinishHttp(code, error, out);
  } else {
    FinishMail(code, error, out);
  }
  Clear();
  return out;
}

void Transfer::FinishHttp(CURLcode result, const char* error, Completion& out) {
  // curl resets a handle's info only when it starts the next transfer: before that (a request
  // abandoned while still waiting for a connection) it still shows the previous request's.
  const bool started = request_started_ || saw_response_;
  long status = 0;
  long version = 0;
  if (started) {
    curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy_, CURLINFO_HTTP_VERSION, &version);
  }

  out.http_done = std::move(http_.done);
  out.http = std::move(response_);
  HttpResponse& r = out.http;
  r.status = static_cast<int>(status);
  r.http_version = HttpVersionNumber(version);
  r.curl_code = static_cast<int>(result);
  r.error = ErrorText(result, error_, error);
  r.timed_out = result == CURLE_OPERATION_TIMEDOUT;
  if (result == CURLE_COULDNT_CONNECT && !refused_why_.empty()) {
    r.destination_refused = true;
    r.error = std::string(kDestinationRefused) + refused_why_;
  }
  // Conservative: once curl had a connection and began writing the request (the pre-request
  // callback), the peer may have seen it.
  r.sent = started || IsReceiveSideError(result);
  r.total_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - http_.submitted)
          .count();
}

void Transfer::FinishMail(CURLcode result, const char* error, Completion& out) {
  long code = 0;
  // A reply line proves this transfer ran, so the handle's info is its own (see FinishHttp).
  if (!last_reply_.empty()) curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &code);
  if (code == 0 && last_reply_.size() >= 3 &&
      std::all_of(last_reply_.begin(), last_reply_.begin() + 3,
                  [](char c) { return c >= '0' && c <= '9'; })) {
    code = std::stol(last_reply_.substr(0, 3));
  }
  out.mail_done = std::move(mail_.done);
  SmtpResult& r = out.mail;
  r.code = static_cast<int>(code);
  r.reply = std::move(last_reply_);
  r.curl_code = static_cast<int>(result);
  r.error = ErrorText(result, error_, error);
  r.timed_out = result == CURLE_OPERATION_TIMEDOUT;
  if (result == CURLE_COULDNT_CONNECT && !refused_why_.empty()) {
    r.destination_refused = true;
    r.error = std::string(kDestinationRefused) + refused_why_;
  }
}

void Transfer::Clear() {
  curl_slist_free_all(list_);
  list_ = nullptr;
  if (kind_ == Kind::kHttp) {
    // The request body must outlive the transfer (POSTFIELDS does not copy); drop it now.
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, nullptr);
    curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, nullptr);
    http_ = HttpJob{};
    response_ = HttpResponse{};
  } else {
    curl_easy_setopt(easy_, CURLOPT_MAIL_RCPT, nullptr);
    mail_ = MailJob{};
    last_reply_.clear();
  }
}

size_t Transfer::OnBody(char* data, size_t size, size_t count, void* self) {
  auto* t = static_cast<Transfer*>(self);
  t->saw_response_ = true;
  t->response_.body.append(data, size * count);
  return size * count;
}

size_t Transfer::OnHeader(char* data, size_t size, size_t count, void* self) {
  auto* t = static_cast<Transfer*>(self);
  const size_t n = size * count;
  t->saw_response_ = true;
  std::string_view line(data, n);
  if (StartsWithNoCase(line, "HTTP/")) {
    t->response_.headers.clear();  // a new response (after 100 Continue, say) starts afresh
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return n;  // blank line or folded junk
  std::string name(Trim(line.substr(0, colon)));
  std::transform(name.begin(), name.end(), name.begin(), AsciiLower);
  t->response_.headers.emplace_back(std::move(name), std::string(Trim(line.substr(colon + 1))));
  return n;
}

curl_socket_t Transfer::OnOpenSocket(void* self, curlsocktype, curl_sockaddr* address) {
  auto* t = static_cast<Transfer*>(self);
  if (t->kind_ == Kind::kHttp && t->role_ == H2cRole::kReuseOnly) {
    t->refused_socket_ = true;
    return CURL_SOCKET_BAD;
  }
  if (const DestinationPolicy* policy = t->defaults_->destinations; policy != nullptr) {
    IpEndpoint destination;
    std::string why;
    if (!IpEndpoint::FromSockaddr(&address->addr, &destination) ||
        !policy->Allows(destination, t->host_, &why)) {
      t->refused_why_ = why.empty() ? "the address family is not IP" : why;
      return CURL_SOCKET_BAD;  // curl tries the host's next address, if any
    }
  }
  return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

int Transfer::OnPrereq(void* self, char*, char*, int, int) {
  auto* t = static_cast<Transfer*>(self);
  t->request_started_ = true;
  if (t->role_ == H2cRole::kOpener && t->defaults_->opener_connected != nullptr) {
    t->defaults_->opener_connected(t->defaults_->opener_connected_data, t);
  }
  return CURL_PREREQFUNC_OK;
}

size_t Transfer::OnRead(char* buffer, size_t size, size_t count, void* self) {
  auto* t = static_cast<Transfer*>(self);
  const std::string& data = t->mail_.message.data;
  const size_t n = std::min(size * count, data.size() - t->mail_offset_);
  std::copy_n(data.data() + t->mail_offset_, n, buffer);  // bytes, not a C string
  t->mail_offset_ += n;
  return n;
}

int Transfer::OnDebug(CURL*, curl_infotype type, char* data, size_t size, void* self) {
  auto* t = static_cast<Transfer*>(self);
  std::string_view text(data, size);
  if (type == CURLINFO_HEADER_OUT) {
    // The reply to QUIT (221) says nothing about the message: keep the one before it.
    if (StartsWithNoCase(text, "QUIT")) t->quit_sent_ = true;
    return 0;
  }
  if (type != CURLINFO_HEADER_IN || t->quit_sent_) return 0;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    std::string_view line = Trim(text.substr(0, end));
    if (!line.empty()) t->last_reply_.assign(line);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return 0;
}

}  // namespace herald::net::internal

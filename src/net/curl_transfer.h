// One libcurl easy handle and the request it currently carries (HTTP or SMTP). Internal to
// src/net: only the client's event-loop thread touches a Transfer, and the client owns it (a
// pool of them, reused so that a request costs no easy-handle setup).
//
// Life of a Transfer: Prepare*() while it is outside the multi handle, curl_multi_add_handle,
// curl runs it, curl_multi_remove_handle, Finish() reads the outcome and hands back a
// Completion (the callback plus its result) that the client runs after the Transfer is back in
// the pool. Finish() leaves the Transfer ready for its next Prepare*().
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <functional>
#include <string>
#include <utility>

#include "net/destination_policy.h"
#include "net/http_client.h"
#include "net/job.h"

namespace herald::net::internal {

class Transfer;
struct OriginState;  // the client's per-origin bookkeeping (curl_client.cc)

// How an h2c request meets libcurl 7.88's prior-knowledge bug (curl issue 10634: a request with
// CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE that reuses an h2c connection switches it to HTTP/2 a
// second time and breaks every stream on it). See curl_client.cc.
enum class H2cRole {
  kPlain,      // no workaround: HTTP/1.1, https, or a libcurl without the bug
  kReuseOnly,  // CURL_HTTP_VERSION_2_0 on an existing h2c connection; never opens a socket
  kOpener,     // prior knowledge on a fresh connection (CURLOPT_FRESH_CONNECT), never a reused one
};

// Settings every easy handle gets from its client.
struct TransferDefaults {
  long connect_timeout_ms = 5'000;
  // curl's built-in CA bundle (CURLINFO_CAINFO), restored when a request names no ca_file.
  std::string default_ca_file;
  curl_closesocket_callback close_socket = nullptr;
  void* close_socket_data = nullptr;
  // Called (inside curl) when a kOpener's new connection is up and its request about to go.
  void (*opener_connected)(void* data, Transfer* transfer) = nullptr;
  void* opener_connected_data = nullptr;
  // Where connections may go; nullptr = anywhere.
  const DestinationPolicy* destinations = nullptr;
};

class Transfer {
 public:
  explicit Transfer(const TransferDefaults* defaults);
  ~Transfer();
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  // nullptr when curl_easy_init failed.
  CURL* easy() const { return easy_; }

  // Loads a request into the easy handle. `timeout_ms` is what is left of the request's budget
  // (0 = none).
  void PrepareHttp(HttpJob job, long timeout_ms, H2cRole role = H2cRole::kPlain);
  void PrepareMail(MailJob job, long timeout_ms);

  // Reads the outcome of the transfer that curl finished with `result` (the handle is already
  // out of the multi), releases the request and returns the completion to run.
  Completion Finish(CURLcode result);
  // The same for a transfer abandoned before curl finished it (shutdown).
  Completion Abort(CURLcode code, const char* error);
  // For a finished kReuseOnly transfer that found no connection to ride (refused_socket()):
  // hands the request back, unanswered, so that the client can route it to an opener.
  HttpJob TakeHttpJob();

  H2cRole role() const { return role_; }
  // curl wanted a new connection for a kReuseOnly transfer and was refused a socket.
  bool refused_socket() const { return refused_socket_; }
  // curl had a connection and began writing the request.
  bool request_started() const { return request_started_; }

  // Position in the client's list of active transfers (swap-remove bookkeeping).
  size_t active_index = 0;
  // The client's state for this HTTP request's origin; nullptr for mail.
  OriginState* origin = nullptr;

 private:
  enum class Kind { kNone, kHttp, kMail };

  void SetKind(Kind kind);
  void SetTls(bool verify, const std::string& ca_file);
  void FinishHttp(CURLcode result, const char* error, Completion& out);
  void FinishMail(CURLcode result, const char* error, Completion& out);
  void Clear();

  static size_t OnBody(char* data, size_t size, size_t count, void* self);
  static size_t OnHeader(char* data, size_t size, size_t count, void* self);
  static curl_socket_t OnOpenSocket(void* self, curlsocktype purpose, curl_sockaddr* address);
  static int OnPrereq(void* self, char* remote_ip, char* local_ip, int remote_port, int local_port);
  static size_t OnRead(char* buffer, size_t size, size_t count, void* self);
  static int OnDebug(CURL* easy, curl_infotype type, char* data, size_t size, void* self);

  const TransferDefaults* defaults_;
  CURL* easy_;
  Kind kind_ = Kind::kNone;
  char error_[CURL_ERROR_SIZE] = {};
  curl_slist* list_ = nullptr;  // request headers, or SMTP recipients

  HttpJob http_;
  HttpResponse response_;
  H2cRole role_ = H2cRole::kPlain;
  bool refused_socket_ = false;
  std::string host_;              // the URL's host, for the destination policy's name rules
  std::string refused_why_;       // set when the destination policy refused an address
  bool request_started_ = false;  // curl had a connection and began to write the request
  bool saw_response_ = false;     // a header or body byte arrived

  MailJob mail_;
  size_t mail_offset_ = 0;
  std::string last_reply_;
  bool quit_sent_ = false;
};

}  // namespace herald::net::internal

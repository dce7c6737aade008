// Beast-free pieces of reading and answering an HTTP/1.1 request, shared by the server and its
// tests: target decoding, request ids and Herald's JSON error body. Pure functions, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/percent.h"  // PercentDecode, for targets and queries
#include "http/handler.h"

namespace herald::http {

// A request target split into its percent-decoded path and its decoded query parameters.
struct DecodedTarget {
  std::string path;
  std::vector<std::pair<std::string, std::string>> query;  // in order, duplicates kept
};

// Splits an origin-form ("/a%20b?x=1"), absolute-form ("http://host/a?x=1") or asterisk-form
// ("*") target. Query keys and values also turn '+' into ' '. Malformed escapes stay as sent.
DecodedTarget DecodeTarget(std::string_view target);

// True for 1-128 characters of [A-Za-z0-9._-]: a client's X-Request-Id that is safe to echo.
bool IsSaneRequestId(std::string_view id);

// A fresh request id: 16 lower-case hex characters from a per-thread random generator.
std::string MintRequestId();

// `{"error":{"code":"…","message":"…","field":"…"}}`, the body of every error Herald sends.
std::string ErrorBody(std::string_view code, std::string_view message, std::string_view field = {});

// A JSON error response of the server's own (no route, actor "anonymous", `refusal` = code).
Response ErrorResponse(int status, std::string_view code, std::string_view message,
                       std::string_view field = {});

// The framing rules a request head must meet before its body may be read (RFC 9112 §6.1 and
// §3.2), or nullopt when it meets them. `headers` are the head's fields, names lower-cased.
//  - Transfer-Encoding, when present, must be exactly one `chunked` (in HTTP/1.1): a list that
//    does not end in chunked (`gzip`, `chunked, identity`, `xchunked`) or repeats it leaves the
//    body's length unknowable, so it is 400; other codings before a final chunked are 501 (not
//    implemented). Either way the connection must be closed: the bytes after the head cannot
//    be told apart from a next request (request smuggling).
//  - An HTTP/1.0 request with Transfer-Encoding is 400 (its framing is faulty).
//  - Exactly one Host in HTTP/1.1, at most one in HTTP/1.0, with a value that is a host name
//    or IP literal with an optional port: 400 otherwise (receipt signatures are computed over
//    URLs built from it).
std::optional<Response> CheckFraming(
    unsigned version, const std::vector<std::pair<std::string, std::string>>& headers);

}  // namespace herald::http

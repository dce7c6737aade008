// Beast-free pieces of reading and answering an HTTP/1.1 request, shared by the server and its
// tests: target decoding, request ids and Herald's JSON error body. Pure functions, thread-safe.
#pragma once

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

// `{"error":{"code":"…","message":"…","field":""}}`, the body of every error Herald sends.
std::string ErrorBody(std::string_view code, std::string_view message);

// A JSON error response of the server's own (no route, actor "anonymous").
Response ErrorResponse(int status, std::string_view code, std::string_view message);

}  // namespace herald::http

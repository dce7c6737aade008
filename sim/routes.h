// The simulator's HTTP routes, shared by the HTTP/1.1 and HTTP/2 transports, and the state they
// act on. Each provider's routes live in routes_<family>.cc; RouteRequest (router.cc) picks one.
//
// Thread-safety: RouteRequest may run on any IO thread at once; SimState's members are
// thread-safe. Routes never block: delays and holds are returned in SimResponse for the
// transport to carry out.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sim/exchange.h"
#include "sim/faults.h"
#include "sim/jwt_verify.h"
#include "sim/record.h"

namespace herald::sim {

struct SimState {
  explicit SimState(size_t max_recorded) : record(max_recorded) {}
  MessageRecord record;
  FaultTable faults;
  ApnsTokenVerifier apns_tokens;
  FcmAccessTokens fcm_tokens;
};

// Answers one request (router.cc).
SimResponse RouteRequest(SimState& state, const SimRequest& request);

// ---- per-family handlers (the router has checked method and path shape) ----
SimResponse HandleApnsPush(SimState& state, const SimRequest& request,
                           std::string_view device_token);
SimResponse HandleFcmToken(SimState& state, const SimRequest& request);
SimResponse HandleFcmSend(SimState& state, const SimRequest& request, std::string_view project);
SimResponse HandleSendgridSend(SimState& state, const SimRequest& request);
SimResponse HandleTwilioSend(SimState& state, const SimRequest& request,
                             std::string_view account_sid);
SimResponse HandleVonageSend(SimState& state, const SimRequest& request);
SimResponse HandleControl(SimState& state, const SimRequest& request);

// ---- helpers shared by the routes (route_util.cc) ----
using FormFields = std::vector<std::pair<std::string, std::string>>;

// Percent-decoding; '+' becomes a space when `plus_is_space` (forms and query strings).
std::string UrlDecode(std::string_view s, bool plus_is_space);
// application/x-www-form-urlencoded (also a URL's query string).
FormFields ParseForm(std::string_view s);
// The first value of `name`, or "".
std::string_view FormValue(const FormFields& form, std::string_view name);
bool HasField(const FormFields& form, std::string_view name);
// Standard base64 (RFC 4648 §4), padding optional; whitespace skipped. False on bad input.
bool Base64Decode(std::string_view in, std::string& out);

SimResponse JsonResponse(int status, std::string body);
// Lower-case hex from a fast thread-local generator (ids, not secrets).
std::string RandomHex(size_t n);
std::string RandomUuid();  // lower-case, version 4
bool IsUuid(std::string_view s);
int64_t NowSeconds();
// The value after "Bearer " (case-insensitive scheme), or "" when absent.
std::string_view BearerToken(std::string_view authorization);
// Escapes a string as a JSON string literal, quotes included.
std::string JsonQuote(std::string_view s);
// json::dump that replaces invalid UTF-8 instead of throwing.
std::string DumpJson(const nlohmann::json& doc);

}  // namespace herald::sim

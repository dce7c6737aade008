// FCM HTTP v1: the OAuth2 token endpoint (POST /token, jwt-bearer grant) and
// POST /v1/projects/{project}/messages:send with an access token it issued. Errors use FCM's
// JSON shape: {"error":{"code","message","status","details":[{"@type",..."errorCode"}]}}.
#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <string>

#include "common/clock.h"
#include "sim/push_body.h"
#include "sim/routes.h"

namespace herald::sim {
namespace {

using nlohmann::json;

constexpr int64_t kAccessTokenTtlS = 3600;

struct FcmCode {
  std::string_view status;      // google.rpc status
  std::string_view error_code;  // FcmError.errorCode
};

FcmCode CodeForHttp(int http) {
  switch (http) {
    case 400: return {"INVALID_ARGUMENT", "INVALID_ARGUMENT"};
    case 401: return {"UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"};
    case 403: return {"PERMISSION_DENIED", "SENDER_ID_MISMATCH"};
    case 404: return {"NOT_FOUND", "UNREGISTERED"};
    case 429: return {"RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"};
    case 503: return {"UNAVAILABLE", "UNAVAILABLE"};
    default: return {"INTERNAL", "INTERNAL"};
  }
}

SimResponse FcmError(int http, std::string_view message) {
  FcmCode code = CodeForHttp(http);
  json details = json::array({{{"@type", "type.googleapis.com/google.firebase.fcm.v1.FcmError"},
                               {"errorCode", code.error_code}}});
  json doc = {{"error",
               {{"code", http},
                {"message", message},
                {"status", code.status},
                {"details", std::move(details)}}}};
  return JsonResponse(http, DumpJson(doc));
}

SimResponse OAuthError(std::string_view error, std::string_view description) {
  return JsonResponse(400, DumpJson(json{{"error", error}, {"error_description", description}}));
}

SimResponse Decide(SimState& state, const SimRequest& req, std::string_view project,
                   const FaultConfig& faults) {
  auto refuse = [&](SimResponse r) {
    state.record.Refuse(Provider::kFcm);
    return r;
  };
  if (faults.outage) {
    SimResponse r = FcmError(503, "The service is currently unavailable.");
    r.close = true;
    return refuse(std::move(r));
  }
  std::string_view token = BearerToken(req.Header("authorization"));
  if (token.empty() || !state.fcm_tokens.Valid(token, NowSeconds())) {
    return refuse(FcmError(401,
                           "Request had invalid authentication credentials. Expected OAuth 2 "
                           "access token, login cookie or other valid authentication credential."));
  }
  FcmSend send = CheckFcmSend(req.body);
  if (!send.error.empty()) return refuse(FcmError(400, send.error));
  switch (RollFaults(faults)) {
    case FaultRoll::kNone: break;
    case FaultRoll::kThrottle: {
      SimResponse r = FcmError(429, "Quota exceeded for quota metric 'Send messages'.");
      r.headers.emplace_back("retry-after", "1");
      return refuse(std::move(r));
    }
    case FaultRoll::kError: {
      int status = faults.status != 0 ? faults.status : 500;
      return refuse(FcmError(status, status == 503 ? "The service is currently unavailable."
                                                   : "Internal error encountered."));
    }
  }
  if (faults.IsInvalid(Provider::kFcm, send.token)) {
    return refuse(FcmError(404, "Requested entity was not found."));
  }

  std::string id = "0:" + std::to_string(NowMillis()) + "%" + RandomHex(16);
  std::string name;
  name.reserve(32 + project.size() + id.size());
  name.append("projects/").append(project).append("/messages/").append(id);
  std::string response_body = "{\"name\":";
  AppendJsonString(response_body, name);
  response_body.push_back('}');
  std::string delivery_id = send.delivery_id;
  RecordedMessage m{
      Provider::kFcm,        std::move(send.token), std::move(id), std::move(send.delivery_id),
      std::move(send.title), std::move(send.body),  NowMillis()};
  state.record.Accept(std::move(m), delivery_id);
  SimResponse r = JsonResponse(200, std::move(response_body));
  r.hold = RollTimeoutAfterAccept(faults);
  return r;
}

}  // namespace

SimResponse HandleFcmToken(SimState& state, const SimRequest& request) {
  FormFields form = ParseForm(request.body);
  std::string_view grant = FormValue(form, "grant_type");
  if (grant != "urn:ietf:params:oauth:grant-type:jwt-bearer") {
    return OAuthError("unsupported_grant_type", "Invalid grant_type: " + std::string(grant));
  }
  std::string_view assertion = FormValue(form, "assertion");
  if (assertion.empty()) {
    return OAuthError("invalid_request", "Missing required parameter: assertion");
  }
  FcmAssertion check = CheckFcmAssertion(assertion, NowSeconds());
  if (!check.ok) return OAuthError("invalid_grant", check.error);
  std::string token = state.fcm_tokens.Issue(NowSeconds(), kAccessTokenTtlS);
  SimResponse r = JsonResponse(200, DumpJson(json{{"access_token", token},
                                                  {"expires_in", kAccessTokenTtlS - 1},
                                                  {"token_type", "Bearer"}}));
  r.headers.emplace_back("cache-control", "no-cache, no-store, max-age=0, must-revalidate");
  return r;
}

SimResponse HandleFcmSend(SimState& state, const SimRequest& request, std::string_view project) {
  auto faults = state.faults.Get(Provider::kFcm);
  SimResponse r = Decide(state, request, project, *faults);
  r.delay_ms = faults->latency_ms;
  return r;
}

}  // namespace herald::sim

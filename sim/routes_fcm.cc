// FCM HTTP v1: the OAuth2 token endpoint (POST /token, jwt-bearer grant) and
// POST /v1/projects/{project}/messages:send with an access token it issued. Errors use FCM's
// JSON shape: {"error":{"code","message","status","details":[{"@type",..."errorCode"}]}}.
#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <string>

#include "common/clock.h"
#include "sim/routes.h"

namespace herald::sim {
namespace {

using nlohmann::json;

constexpr int64_t kAccessTokenTtlS = 3600;
constexpr size_t kMaxPayload = 4096;

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

bool IsRegistrationToken(const std::string& t) {
  return !t.empty() && t.size() <= 4096 && std::all_of(t.begin(), t.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || c == '_' || c == ':' || c == '.' || c == '-';
  });
}

std::string StringField(const json& obj, const char* key) {
  if (!obj.is_object()) return {};
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
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
  json doc = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("message") || !doc["message"].is_object()) {
    return refuse(FcmError(400, "Invalid JSON payload received: expected {\"message\":{...}}."));
  }
  const json& message = doc["message"];
  std::string address = StringField(message, "token");
  if (!IsRegistrationToken(address)) {
    return refuse(FcmError(400, "The registration token is not a valid FCM registration token"));
  }
  const json notification = message.value("notification", json::object());
  const json data = message.value("data", json::object());
  if (!notification.is_object() || !data.is_object()) {
    return refuse(FcmError(400, "Invalid value at 'message.notification' or 'message.data'."));
  }
  size_t payload = 0;
  for (const auto& [key, value] : data.items()) {
    if (!value.is_string()) {
      return refuse(
          FcmError(400, "Invalid value at 'message.data[" + key + "].value' (TYPE_STRING)"));
    }
    payload += key.size() + value.get_ref<const std::string&>().size();
  }
  std::string title = StringField(notification, "title");
  std::string body = StringField(notification, "body");
  if (payload + title.size() + body.size() > kMaxPayload) {
    return refuse(FcmError(400, "Message is too big"));
  }
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
  if (faults.IsInvalid(Provider::kFcm, address)) {
    return refuse(FcmError(404, "Requested entity was not found."));
  }

  std::string id = "0:" + std::to_string(NowMillis()) + "%" + RandomHex(16);
  std::string delivery_id = StringField(data, "delivery_id");
  RecordedMessage m{Provider::kFcm,   address,         id,         delivery_id,
                    std::move(title), std::move(body), NowMillis()};
  state.record.Accept(std::move(m), delivery_id);
  SimResponse r = JsonResponse(
      200, DumpJson(json{{"name", "projects/" + std::string(project) + "/messages/" + id}}));
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

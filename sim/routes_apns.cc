// APNs: POST /3/device/{token} with token (JWT) authentication. Checks run in the order the
// real service reports them: provider token, headers, device token, payload size and shape;
// then the injected faults; then the push is accepted (200, apns-id echoed or minted).
#include <algorithm>
#include <cctype>
#include <string>

#include "common/clock.h"
#include "sim/push_body.h"
#include "sim/routes.h"

namespace herald::sim {
namespace {

constexpr size_t kMaxPayload = 4096;
constexpr size_t kMaxVoipPayload = 5120;

SimResponse ApnsError(int status, std::string_view reason) {
  std::string body = "{\"reason\":\"" + std::string(reason) + "\"";
  if (status == 410) body += ",\"timestamp\":" + std::to_string(NowMillis());
  body += "}";
  return JsonResponse(status, std::move(body));
}

std::string_view ReasonForStatus(int status) {
  switch (status) {
    case 400: return "BadDeviceToken";
    case 403: return "Forbidden";
    case 404: return "BadPath";
    case 405: return "MethodNotAllowed";
    case 410: return "Unregistered";
    case 413: return "PayloadTooLarge";
    case 429: return "TooManyRequests";
    case 503: return "ServiceUnavailable";
    default: return "InternalServerError";
  }
}

bool IsDeviceToken(std::string_view token) {
  return token.size() >= 64 && token.size() <= 200 &&
         std::all_of(token.begin(), token.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
         });
}

bool IsDigits(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

bool KnownPushType(std::string_view t) {
  for (std::string_view known : {"alert", "background", "voip", "complication", "fileprovider",
                                 "mdm", "location", "liveactivity", "pushtotalk"}) {
    if (t == known) return true;
  }
  return false;
}

// The header problem that APNs reports for this request, or "" when the headers are fine.
std::string_view HeaderProblem(const SimRequest& req) {
  if (req.Header("apns-topic").empty()) return "MissingTopic";
  std::string_view id = req.Header("apns-id");
  if (!id.empty() && !IsUuid(id)) return "BadMessageId";
  std::string_view priority = req.Header("apns-priority");
  if (!priority.empty() && priority != "10" && priority != "5" && priority != "1") {
    return "BadPriority";
  }
  std::string_view push_type = req.Header("apns-push-type");
  if (!push_type.empty() && !KnownPushType(push_type)) return "InvalidPushType";
  std::string_view expiration = req.Header("apns-expiration");
  if (!expiration.empty() && !IsDigits(expiration)) return "BadExpirationDate";
  if (req.Header("apns-collapse-id").size() > 64) return "BadCollapseId";
  return {};
}

SimResponse Decide(SimState& state, const SimRequest& req, std::string_view device_token,
                   const FaultConfig& faults) {
  auto refuse = [&](SimResponse r) {
    state.record.Refuse(Provider::kApns);
    return r;
  };
  if (faults.outage) {
    SimResponse r = ApnsError(503, "ServiceUnavailable");
    r.close = true;
    return refuse(std::move(r));
  }
  std::string_view authorization = req.Header("authorization");
  if (authorization.empty()) return refuse(ApnsError(403, "MissingProviderToken"));
  std::string_view jwt = BearerToken(authorization);
  if (jwt.empty()) return refuse(ApnsError(403, "InvalidProviderToken"));
  switch (state.apns_tokens.Check(jwt, NowSeconds())) {
    case ApnsTokenCheck::kOk: break;
    case ApnsTokenCheck::kInvalid: return refuse(ApnsError(403, "InvalidProviderToken"));
    case ApnsTokenCheck::kExpired: return refuse(ApnsError(403, "ExpiredProviderToken"));
  }
  if (std::string_view problem = HeaderProblem(req); !problem.empty()) {
    return refuse(ApnsError(400, problem));
  }
  if (device_token.empty()) return refuse(ApnsError(400, "MissingDeviceToken"));
  if (!IsDeviceToken(device_token)) return refuse(ApnsError(400, "BadDeviceToken"));
  std::string_view push_type = req.Header("apns-push-type");
  if (req.body.size() > (push_type == "voip" ? kMaxVoipPayload : kMaxPayload)) {
    return refuse(ApnsError(413, "PayloadTooLarge"));
  }
  ApnsAlert alert = CheckApnsAlert(req.body, push_type == "background");
  if (!alert.ok) return refuse(ApnsError(400, "PayloadEmpty"));
  switch (RollFaults(faults)) {
    case FaultRoll::kNone: break;
    case FaultRoll::kThrottle: {
      SimResponse r = ApnsError(429, "TooManyRequests");
      r.headers.emplace_back("retry-after", "1");
      return refuse(std::move(r));
    }
    case FaultRoll::kError: {
      int status = faults.status != 0 ? faults.status : 500;
      return refuse(ApnsError(status, ReasonForStatus(status)));
    }
  }
  if (faults.IsInvalid(Provider::kApns, device_token)) {
    return refuse(ApnsError(410, "Unregistered"));
  }

  std::string apns_id(req.Header("apns-id"));
  const bool client_id = !apns_id.empty();
  if (!client_id) apns_id = RandomUuid();
  RecordedMessage m{Provider::kApns,
                    std::string(device_token),
                    apns_id,
                    client_id ? apns_id : std::string(),
                    std::move(alert.title),
                    std::move(alert.body),
                    NowMillis()};
  state.record.Accept(std::move(m), client_id ? std::string_view(apns_id) : std::string_view());
  SimResponse r;
  r.status = 200;
  r.headers.emplace_back("apns-id", std::move(apns_id));
  r.hold = RollTimeoutAfterAccept(faults);
  return r;
}

}  // namespace

SimResponse HandleApnsPush(SimState& state, const SimRequest& request,
                           std::string_view device_token) {
  auto faults = state.faults.Get(Provider::kApns);
  SimResponse r = Decide(state, request, device_token, *faults);
  r.delay_ms = faults->latency_ms;
  return r;
}

}  // namespace herald::sim

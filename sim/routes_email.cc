// SendGrid v3: POST /v3/mail/send. One recorded message per personalizations[].to[] recipient;
// the request as a whole is accepted (202, X-Message-Id) or refused ({"errors":[...]}).
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "sim/routes.h"

namespace herald::sim {
namespace {

using nlohmann::json;

constexpr size_t kMaxPersonalizations = 1000;

SimResponse SendgridError(int status, std::string_view message, std::string_view field = {}) {
  json error = {{"message", message}, {"help", nullptr}};
  error["field"] = field.empty() ? json(nullptr) : json(field);
  return JsonResponse(status, DumpJson(json{{"errors", json::array({std::move(error)})}}));
}

bool IsEmail(const std::string& s) {
  size_t at = s.find('@');
  return s.size() <= 254 && at != std::string::npos && at > 0 && at + 1 < s.size() &&
         s.find('@', at + 1) == std::string::npos &&
         s.find_first_of(" \t\r\n<>") == std::string::npos;
}

std::string Str(const json& obj, const char* key) {
  if (!obj.is_object()) return {};
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

struct Recipient {
  std::string email;
  std::string subject;
  std::string delivery_id;
};

// Validates the body the way SendGrid does; fills the recipients or returns the 400 answer.
std::optional<SimResponse> Validate(const json& doc, std::vector<Recipient>& out,
                                    std::string& text) {
  if (!doc.is_object()) return SendgridError(400, "Bad Request");
  auto ps = doc.find("personalizations");
  if (ps == doc.end() || !ps->is_array() || ps->empty() || ps->size() > kMaxPersonalizations) {
    return SendgridError(400,
                         "The personalizations field is required and must have at least "
                         "one personalization (at most 1000).",
                         "personalizations");
  }
  if (!IsEmail(Str(doc.value("from", json::object()), "email"))) {
    return SendgridError(400,
                         "The from object must be provided for every email send. It is an "
                         "object that requires an email parameter.",
                         "from.email");
  }
  const std::string subject = Str(doc, "subject");
  const std::string top_delivery_id = Str(doc.value("custom_args", json::object()), "delivery_id");
  for (size_t i = 0; i < ps->size(); ++i) {
    const json& p = (*ps)[i];
    const std::string prefix = "personalizations." + std::to_string(i);
    auto to = p.is_object() ? p.find("to") : p.end();
    if (!p.is_object() || to == p.end() || !to->is_array() || to->empty()) {
      return SendgridError(400,
                           "The to array is required for all personalization objects, and "
                           "must have at least one email object with a valid email address.",
                           prefix + ".to");
    }
    std::string p_subject = Str(p, "subject");
    if (p_subject.empty()) p_subject = subject;
    if (p_subject.empty() && !doc.contains("template_id")) {
      return SendgridError(400,
                           "The subject is required. You can get around this requirement if "
                           "you use a template with a subject defined or if every "
                           "personalization has a subject defined.",
                           "subject");
    }
    std::string delivery_id = Str(p.value("custom_args", json::object()), "delivery_id");
    if (delivery_id.empty()) delivery_id = top_delivery_id;
    for (size_t j = 0; j < to->size(); ++j) {
      std::string email = Str((*to)[j], "email");
      if (!IsEmail(email)) {
        return SendgridError(400, "Does not contain a valid address.",
                             prefix + ".to." + std::to_string(j) + ".email");
      }
      out.push_back({std::move(email), p_subject, delivery_id});
    }
  }
  auto content = doc.find("content");
  if (content != doc.end() && content->is_array()) {
    for (const json& c : *content) {
      if (Str(c, "value").empty()) continue;
      if (text.empty() || Str(c, "type") == "text/plain") text = Str(c, "value");
    }
  }
  if (text.empty() && !doc.contains("template_id")) {
    return SendgridError(400,
                         "Unless a valid template_id is provided, the content parameter is "
                         "required. There must be at least one defined content block.",
                         "content");
  }
  return std::nullopt;
}

SimResponse Decide(SimState& state, const SimRequest& req, const FaultConfig& faults) {
  uint64_t recipients = 1;
  auto refuse = [&](SimResponse r) {
    state.record.Refuse(Provider::kSendgrid, recipients);
    return r;
  };
  if (faults.outage) {
    SimResponse r = SendgridError(503, "Service Unavailable");
    r.close = true;
    return refuse(std::move(r));
  }
  if (BearerToken(req.Header("authorization")).empty()) {
    return refuse(SendgridError(401,
                                "The provided authorization grant is invalid, expired, or "
                                "revoked"));
  }
  std::vector<Recipient> to;
  std::string text;
  json doc = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (auto problem = Validate(doc, to, text)) return refuse(std::move(*problem));
  recipients = to.size();
  switch (RollFaults(faults)) {
    case FaultRoll::kNone: break;
    case FaultRoll::kThrottle: {
      SimResponse r = SendgridError(429, "too many requests");
      r.headers.emplace_back("retry-after", "1");
      r.headers.emplace_back("x-ratelimit-reset", std::to_string(NowSeconds() + 1));
      return refuse(std::move(r));
    }
    case FaultRoll::kError:
      return refuse(SendgridError(faults.status != 0 ? faults.status : 500, "internal error"));
  }
  for (size_t j = 0; j < to.size(); ++j) {
    if (faults.IsInvalid(Provider::kSendgrid, to[j].email)) {
      return refuse(SendgridError(400, "Does not contain a valid address.",
                                  "personalizations.to." + std::to_string(j) + ".email"));
    }
  }

  const std::string message_id = RandomHex(22);
  const UnixMillis now = NowMillis();
  for (Recipient& r : to) {
    std::string key = r.delivery_id.empty()
                          ? ""
                          : r.delivery_id + "|" + NormalizeAddress(Provider::kSendgrid, r.email);
    RecordedMessage m{Provider::kSendgrid,
                      std::move(r.email),
                      message_id,
                      r.delivery_id,
                      std::move(r.subject),
                      text,
                      now};
    state.record.Accept(std::move(m), key);
  }
  SimResponse r;
  r.status = 202;
  r.headers.emplace_back("x-message-id", message_id);
  r.hold = RollTimeoutAfterAccept(faults);
  return r;
}

}  // namespace

SimResponse HandleSendgridSend(SimState& state, const SimRequest& request) {
  auto faults = state.faults.Get(Provider::kSendgrid);
  SimResponse r = Decide(state, request, *faults);
  r.delay_ms = faults->latency_ms;
  return r;
}

}  // namespace herald::sim

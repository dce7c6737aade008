// SMS: Twilio Programmable Messaging (POST /2010-04-01/Accounts/{sid}/Messages.json, form
// fields, HTTP Basic sid:token) and the Vonage SMS API (POST /sms/json, credentials in the
// form; problems are reported as a per-message "status", mostly with HTTP 200).
#include <algorithm>
#include <cctype>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>

#include "common/clock.h"
#include "sim/routes.h"

namespace herald::sim {
namespace {

using nlohmann::json;

// ---- shared ----------------------------------------------------------------------------------

bool IsPhoneNumber(std::string_view s, bool plus_required) {
  if (!s.empty() && s.front() == '+') {
    s.remove_prefix(1);
  } else if (plus_required) {
    return false;
  }
  return s.size() >= 7 && s.size() <= 15 && s.front() != '0' &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

// SMS segments: GSM-7 text in 160 (153 when concatenated), otherwise UCS-2 in 70 (67).
size_t Segments(std::string_view text) {
  size_t chars = 0;
  bool ascii = true;
  for (unsigned char c : text) {
    if ((c & 0xc0) != 0x80) ++chars;
    if (c >= 0x80) ascii = false;
  }
  size_t single = ascii ? 160 : 70;
  size_t part = ascii ? 153 : 67;
  return chars <= single ? 1 : (chars + part - 1) / part;
}

// ---- Twilio ----------------------------------------------------------------------------------

SimResponse TwilioError(int status, int code, std::string_view message) {
  json doc = {{"code", code},
              {"message", message},
              {"more_info", "https://www.twilio.com/docs/errors/" + std::to_string(code)},
              {"status", status}};
  return JsonResponse(status, DumpJson(doc));
}

std::string Rfc2822(int64_t unix_s) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return buf;
}

bool TwilioAuthorized(const SimRequest& req, std::string_view sid) {
  std::string_view auth = req.Header("authorization");
  if (auth.size() < 6 || (auth.substr(0, 6) != "Basic " && auth.substr(0, 6) != "basic ")) {
    return false;
  }
  std::string decoded;
  if (!Base64Decode(auth.substr(6), decoded)) return false;
  size_t colon = decoded.find(':');
  return colon != std::string::npos && std::string_view(decoded).substr(0, colon) == sid &&
         colon + 1 < decoded.size();
}

SimResponse DecideTwilio(SimState& state, const SimRequest& req, std::string_view sid,
                         const FaultConfig& faults) {
  auto refuse = [&](SimResponse r) {
    state.record.Refuse(Provider::kTwilio);
    return r;
  };
  if (faults.outage) {
    SimResponse r = TwilioError(503, 20503, "Service Unavailable");
    r.close = true;
    return refuse(std::move(r));
  }
  if (!TwilioAuthorized(req, sid)) {
    SimResponse r = TwilioError(401, 20003, "Authenticate");
    r.headers.emplace_back("www-authenticate", "Basic realm=\"Twilio API\"");
    return refuse(std::move(r));
  }
  FormFields form = ParseForm(req.body);
  std::string to(FormValue(form, "To"));
  std::string from(FormValue(form, "From"));
  std::string text(FormValue(form, "Body"));
  if (to.empty()) return refuse(TwilioError(400, 21604, "A 'To' phone number is required."));
  if (from.empty() && FormValue(form, "MessagingServiceSid").empty()) {
    return refuse(TwilioError(400, 21603, "A 'From' phone number is required."));
  }
  if (text.empty() && !HasField(form, "MediaUrl")) {
    return refuse(TwilioError(400, 21602, "Message body is required."));
  }
  if (text.size() > 1600 * 4 || Segments(text) > 10) {
    return refuse(
        TwilioError(400, 21617, "The concatenated message body exceeds the 1600 character limit."));
  }
  if (!IsPhoneNumber(to, /*plus_required=*/true)) {
    return refuse(
        TwilioError(400, 21211, "The 'To' number " + to + " is not a valid phone number."));
  }
  switch (RollFaults(faults)) {
    case FaultRoll::kNone: break;
    case FaultRoll::kThrottle: {
      SimResponse r = TwilioError(429, 20429, "Too Many Requests");
      r.headers.emplace_back("retry-after", "1");
      return refuse(std::move(r));
    }
    case FaultRoll::kError: {
      int status = faults.status != 0 ? faults.status : 500;
      if (status == 401 || status == 403) {  // refused credentials
        return refuse(TwilioError(status, 20003, "Authenticate"));
      }
      return refuse(TwilioError(status, status == 503 ? 20503 : 20500,
                                status == 503 ? "Service Unavailable" : "Internal Server Error"));
    }
  }
  if (faults.IsInvalid(Provider::kTwilio, to)) {
    return refuse(
        TwilioError(400, 21211, "The 'To' number " + to + " is not a valid phone number."));
  }

  std::string message_sid = "SM" + RandomHex(32);
  FormFields callback_query;
  std::string_view callback = FormValue(form, "StatusCallback");
  if (size_t q = callback.find('?'); q != std::string_view::npos) {
    callback_query = ParseForm(callback.substr(q + 1));
  }
  std::string delivery_id(FormValue(callback_query, "delivery_id"));
  const std::string now = Rfc2822(NowSeconds());
  const std::string uri = "/2010-04-01/Accounts/" + std::string(sid) + "/Messages/" + message_sid;
  json doc = {{"account_sid", sid},
              {"api_version", "2010-04-01"},
              {"body", text},
              {"date_created", now},
              {"date_sent", nullptr},
              {"date_updated", now},
              {"direction", "outbound-api"},
              {"error_code", nullptr},
              {"error_message", nullptr},
              {"from", from.empty() ? json(nullptr) : json(from)},
              {"messaging_service_sid", FormValue(form, "MessagingServiceSid").empty()
                                            ? json(nullptr)
                                            : json(FormValue(form, "MessagingServiceSid"))},
              {"num_media", "0"},
              {"num_segments", std::to_string(Segments(text))},
              {"price", nullptr},
              {"price_unit", "USD"},
              {"sid", message_sid},
              {"status", "queued"},
              {"subresource_uris", {{"media", uri + "/Media.json"}}},
              {"to", to},
              {"uri", uri + ".json"}};
  RecordedMessage m{Provider::kTwilio, to,         message_sid, delivery_id, "",
                    std::move(text),   NowMillis()};
  state.record.Accept(std::move(m), delivery_id);
  SimResponse r = JsonResponse(201, DumpJson(doc));
  r.hold = RollTimeoutAfterAccept(faults);
  return r;
}

// ---- Vonage ----------------------------------------------------------------------------------

SimResponse VonageStatus(int http, std::string_view status, std::string_view text) {
  json doc = {{"message-count", "1"},
              {"messages", json::array({{{"status", status}, {"error-text", text}}})}};
  return JsonResponse(http, DumpJson(doc));
}

// Vonage takes form fields or, with a JSON content type, a JSON object of strings.
FormFields VonageFields(const SimRequest& req) {
  if (req.Header("content-type").find("json") == std::string_view::npos) {
    return ParseForm(req.body);
  }
  FormFields out;
  json doc = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return out;
  for (const auto& [k, v] : doc.items()) {
    if (v.is_string()) out.emplace_back(k, v.get<std::string>());
    if (v.is_number()) out.emplace_back(k, v.dump());
  }
  return out;
}

SimResponse DecideVonage(SimState& state, const SimRequest& req, const FaultConfig& faults) {
  auto refuse = [&](SimResponse r) {
    state.record.Refuse(Provider::kVonage);
    return r;
  };
  if (faults.outage) {
    SimResponse r = VonageStatus(503, "5", "Internal Error");
    r.close = true;
    return refuse(std::move(r));
  }
  FormFields form = VonageFields(req);
  if (FormValue(form, "api_key").empty() || FormValue(form, "api_secret").empty()) {
    return refuse(VonageStatus(200, "4", "Bad Credentials"));
  }
  std::string to(FormValue(form, "to"));
  std::string text(FormValue(form, "text"));
  if (FormValue(form, "from").empty()) return refuse(VonageStatus(200, "2", "Missing from param"));
  if (to.empty()) return refuse(VonageStatus(200, "2", "Missing to param"));
  if (text.empty()) return refuse(VonageStatus(200, "2", "Missing text param"));
  if (!IsPhoneNumber(to, /*plus_required=*/false)) {
    return refuse(VonageStatus(200, "3", "Invalid to param"));
  }
  switch (RollFaults(faults)) {
    case FaultRoll::kNone: break;
    case FaultRoll::kThrottle: {
      SimResponse r =
          VonageStatus(429, "1", "Throughput Rate Exceeded - please wait [ 1000 ] and retry");
      r.headers.emplace_back("retry-after", "1");
      return refuse(std::move(r));
    }
    case FaultRoll::kError:
      if (faults.status == 401 || faults.status == 403) {  // refused credentials
        return refuse(VonageStatus(faults.status, "4", "Bad Credentials"));
      }
      return refuse(VonageStatus(faults.status != 0 ? faults.status : 200, "5", "Internal Error"));
  }
  if (faults.IsInvalid(Provider::kVonage, to)) {
    return refuse(VonageStatus(200, "7", "Number barred."));
  }

  std::string client_ref(FormValue(form, "client-ref"));
  const size_t parts = Segments(text);
  json messages = json::array();
  std::string first_id;
  for (size_t i = 0; i < parts; ++i) {
    std::string id = RandomHex(16);
    std::transform(id.begin(), id.end(), id.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (i == 0) first_id = id;
    json m = {{"to", NormalizeAddress(Provider::kVonage, to)},
              {"message-id", id},
              {"status", "0"},
              {"remaining-balance", "100.00000000"},
              {"message-price", "0.03330000"},
              {"network", "12345"}};
    if (!client_ref.empty()) m["client-ref"] = client_ref;
    messages.push_back(std::move(m));
  }
  RecordedMessage m{Provider::kVonage, to, first_id, client_ref, "", std::move(text), NowMillis()};
  state.record.Accept(std::move(m), client_ref);
  SimResponse r = JsonResponse(
      200, DumpJson(json{{"message-count", std::to_string(parts)}, {"messages", messages}}));
  r.hold = RollTimeoutAfterAccept(faults);
  return r;
}

}  // namespace

SimResponse HandleTwilioSend(SimState& state, const SimRequest& request,
                             std::string_view account_sid) {
  auto faults = state.faults.Get(Provider::kTwilio);
  SimResponse r = DecideTwilio(state, request, account_sid, *faults);
  r.delay_ms = faults->latency_ms;
  return r;
}

SimResponse HandleVonageSend(SimState& state, const SimRequest& request) {
  auto faults = state.faults.Get(Provider::kVonage);
  SimResponse r = DecideVonage(state, request, *faults);
  r.delay_ms = faults->latency_ms;
  return r;
}

}  // namespace herald::sim

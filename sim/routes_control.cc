// The simulator's own API under /sim/: the record (messages, stats), fault injection and APNs
// key registration. Errors use Herald's shape {"error":{"code","message","field"}}.
#include <charconv>
#include <nlohmann/json.hpp>
#include <string>

#include "common/clock.h"
#include "sim/routes.h"

namespace herald::sim {
namespace {

using nlohmann::json;

constexpr size_t kDefaultLimit = 100;
constexpr size_t kMaxLimit = 10'000;

SimResponse ControlError(int status, std::string_view code, std::string_view message,
                         std::string_view field = {}) {
  json error = {{"code", code}, {"message", message}};
  if (!field.empty()) error["field"] = field;
  return JsonResponse(status, DumpJson(json{{"error", std::move(error)}}));
}

SimResponse NoSuchProvider(std::string_view name) {
  return ControlError(404, "unknown_provider",
                      "No provider \"" + std::string(name) +
                          "\"; use apns, fcm, smtp, sendgrid, twilio or vonage.");
}

SimResponse Messages(SimState& state, const SimRequest& req) {
  FormFields query = ParseForm(req.Query());
  std::optional<Provider> provider;
  if (std::string_view name = FormValue(query, "provider"); !name.empty()) {
    provider = ProviderFromName(name);
    if (!provider) return NoSuchProvider(name);
  }
  size_t limit = kDefaultLimit;
  if (std::string_view text = FormValue(query, "limit"); !text.empty()) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), limit);
    if (ec != std::errc() || end != text.data() + text.size() || limit < 1 || limit > kMaxLimit) {
      return ControlError(400, "invalid_limit", "limit must be an integer from 1 to 10000.",
                          "limit");
    }
  }
  json list = json::array();
  for (RecordedMessage& m : state.record.Query(provider, FormValue(query, "address"), limit)) {
    list.push_back({{"provider", ProviderName(m.provider)},
                    {"address", std::move(m.address)},
                    {"id", std::move(m.id)},
                    {"delivery_id", std::move(m.delivery_id)},
                    {"title", std::move(m.title)},
                    {"body", std::move(m.body)},
                    {"received_at", FormatRfc3339(m.received_at)}});
  }
  return JsonResponse(200, DumpJson(json{{"messages", std::move(list)}}));
}

SimResponse Stats(SimState& state) {
  json providers = json::object();
  for (Provider p : kAllProviders) {
    ProviderStats s = state.record.Stats(p);
    providers[std::string(ProviderName(p))] = {{"accepted", s.accepted},
                                               {"refused", s.refused},
                                               {"unique_addresses", s.unique_addresses},
                                               {"duplicates", s.duplicates}};
  }
  return JsonResponse(200, DumpJson(json{{"providers", std::move(providers)}}));
}

SimResponse AllFaults(SimState& state) {
  json out = json::object();
  for (Provider p : kAllProviders) {
    out[std::string(ProviderName(p))] = json::parse(FaultConfigJson(*state.faults.Get(p)));
  }
  return JsonResponse(200, DumpJson(out));
}

SimResponse ProviderFaults(SimState& state, const SimRequest& req, std::string_view name) {
  auto provider = ProviderFromName(name);
  if (!provider) return NoSuchProvider(name);
  if (req.method == "GET") return JsonResponse(200, FaultConfigJson(*state.faults.Get(*provider)));
  if (req.method == "DELETE") {
    state.faults.Set(*provider, FaultConfig{});
    return JsonResponse(200, FaultConfigJson(FaultConfig{}));
  }
  if (req.method != "PUT")
    return ControlError(405, "method_not_allowed", "Use GET, PUT or DELETE.");
  auto config = ParseFaultConfig(*provider, req.body);
  if (!config.ok()) {
    return ControlError(400, config.error().code, config.error().message, config.error().field);
  }
  std::string echo = FaultConfigJson(*config);
  state.faults.Set(*provider, std::move(config).value());
  return JsonResponse(200, std::move(echo));
}

SimResponse ApnsKey(SimState& state, const SimRequest& req, std::string_view kid) {
  if (kid.empty() || kid.find('/') != std::string_view::npos) {
    return ControlError(404, "not_found", "Use /sim/apns/keys/{kid}.");
  }
  if (req.method == "DELETE") {
    if (!state.apns_tokens.RemoveKey(std::string(kid))) {
      return ControlError(404, "unknown_kid", "No key is registered under that kid.");
    }
    return JsonResponse(200, R"({"removed":true})");
  }
  if (req.method != "PUT") return ControlError(405, "method_not_allowed", "Use PUT or DELETE.");
  json doc = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("public_key_pem") || !doc["public_key_pem"].is_string()) {
    return ControlError(400, "invalid_body",
                        "Send {\"public_key_pem\":\"-----BEGIN PUBLIC KEY...\"}.",
                        "public_key_pem");
  }
  Status s =
      state.apns_tokens.RegisterKey(std::string(kid), doc["public_key_pem"].get<std::string>());
  if (!s.ok()) return ControlError(400, s.error().code, s.error().message, s.error().field);
  return JsonResponse(200, DumpJson(json{{"kid", kid}, {"registered", true}}));
}

}  // namespace

SimResponse HandleControl(SimState& state, const SimRequest& req) {
  std::string_view path = req.Path();
  const std::string& m = req.method;
  if (path == "/sim/messages") {
    if (m == "GET") return Messages(state, req);
    if (m == "DELETE") {
      state.record.Clear();
      return JsonResponse(200, R"({"cleared":true})");
    }
    return ControlError(405, "method_not_allowed", "Use GET or DELETE.");
  }
  if (path == "/sim/stats") {
    return m == "GET" ? Stats(state) : ControlError(405, "method_not_allowed", "Use GET.");
  }
  if (path == "/sim/faults") {
    if (m == "GET") return AllFaults(state);
    if (m == "DELETE") {
      state.faults.ClearAll();
      return JsonResponse(200, R"({"cleared":true})");
    }
    return ControlError(405, "method_not_allowed", "Use GET or DELETE.");
  }
  constexpr std::string_view kFaults = "/sim/faults/";
  if (path.substr(0, kFaults.size()) == kFaults) {
    return ProviderFaults(state, req, path.substr(kFaults.size()));
  }
  constexpr std::string_view kKeys = "/sim/apns/keys/";
  if (path.substr(0, kKeys.size()) == kKeys) return ApnsKey(state, req, path.substr(kKeys.size()));
  return ControlError(404, "not_found", "No such simulator control route.");
}

}  // namespace herald::sim

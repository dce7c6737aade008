#include "providers/chain.h"

#include <nlohmann/json.hpp>

namespace herald::providers {

Result<std::vector<std::unique_ptr<Provider>>> MakeProviderChain(std::string_view config_json,
                                                                 net::HttpClient* client) {
  const nlohmann::json doc = nlohmann::json::parse(config_json, nullptr, false);
  if (!doc.is_array() || doc.empty()) {
    return MakeError(ErrorKind::kInvalid, "invalid_provider_config",
                     "A channel's provider settings must be a non-empty list of providers.",
                     "providers");
  }
  std::vector<std::unique_ptr<Provider>> chain;
  for (const nlohmann::json& entry : doc) {
    Result<std::unique_ptr<Provider>> p = MakeProvider(entry.dump(), client);
    if (!p.ok()) return p.take_error();
    chain.push_back(std::move(*p));
  }
  return chain;
}

Result<std::string> ReceiptSecret(std::string_view config_json, std::string_view provider) {
  std::string_view key = provider == "twilio"   ? "auth_token"
                         : provider == "vonage" ? "signature_secret"
                                                : "webhook_public_key";
  const nlohmann::json doc = nlohmann::json::parse(config_json, nullptr, false);
  if (doc.is_array()) {
    for (const nlohmann::json& entry : doc) {
      if (!entry.is_object() || entry.value("name", "") != provider) continue;
      auto it = entry.find(key);
      if (it != entry.end() && it->is_string() && !it->get<std::string>().empty()) {
        return it->get<std::string>();
      }
    }
  }
  return MakeError(ErrorKind::kNotFound, "receipts_not_configured",
                   "The tenant's " + std::string(provider) + " settings hold no " +
                       std::string(key) + ", so its receipts cannot be verified.",
                   "providers");
}

}  // namespace herald::providers

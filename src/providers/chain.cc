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

Status CheckProviderSettings(std::string_view config_json, const net::DestinationPolicy& policy) {
  const nlohmann::json doc = nlohmann::json::parse(config_json, nullptr, false);
  if (!doc.is_array() || doc.empty()) {
    return MakeError(ErrorKind::kInvalid, "invalid_provider_config",
                     "A channel's provider settings must be a non-empty list of providers.",
                     "providers");
  }
  for (size_t i = 0; i < doc.size(); ++i) {
    const nlohmann::json& entry = doc[i];
    const std::string path = "providers[" + std::to_string(i) + "]";
    Result<std::unique_ptr<Provider>> built = MakeProvider(entry.dump(), nullptr);
    if (!built.ok()) {
      Error e = built.take_error();
      e.field = e.field.empty() ? path : path + "." + e.field;
      return e;
    }
    auto text = [&entry](const char* key) {
      auto it = entry.find(key);
      return it != entry.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    const bool smtp = entry.value("name", "") == "smtp";
    std::string connect_url;  // the URL whose host verify_tls and ca_file apply to
    for (const char* key : {"base_url", "token_url", "url"}) {
      const std::string url = text(key);
      if (url.empty()) continue;
      const std::string field = path + "." + key;
      Status s = smtp && std::string_view(key) == "url"
                     ? policy.CheckUrl(url, field, {"smtps"}, "smtp", /*plain_for_any_host=*/true)
                     : policy.CheckUrl(url, field, {"https"}, "http");
      if (!s.ok()) return s;
      if (connect_url.empty() && std::string_view(key) != "token_url") connect_url = url;
    }
    const bool weakened_tls =
        (entry.contains("verify_tls") && entry["verify_tls"] == false) || !text("ca_file").empty();
    if (weakened_tls) {
      Result<net::UrlParts> parts = net::ParseUrl(connect_url, path);
      if (!parts.ok() || !policy.IsAllowedHost(parts->host, parts->port)) {
        return MakeError(ErrorKind::kInvalid, "provider_url_not_allowed",
                         path +
                             ": verify_tls false and ca_file are for test peers on hosts the "
                             "operator allows (--allow-provider-hosts); a provider elsewhere "
                             "must present a certificate the system trusts.",
                         path + (text("ca_file").empty() ? ".verify_tls" : ".ca_file"));
      }
    }
  }
  return Status::Ok();
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

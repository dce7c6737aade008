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

}  // namespace herald::providers

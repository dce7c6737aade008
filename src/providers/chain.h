// Builds a channel's failover chain from its stored settings: a JSON array of provider objects,
// in failover order (what PUT /v1/tenants/{id}/providers/{channel} stores).
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "net/http_client.h"
#include "providers/provider.h"

namespace herald::providers {

// kInvalid "invalid_provider_config" when the document is not a non-empty array of valid
// provider objects.
Result<std::vector<std::unique_ptr<Provider>>> MakeProviderChain(std::string_view config_json,
                                                                 net::HttpClient* client);

}  // namespace herald::providers

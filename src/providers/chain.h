// Builds a channel's failover chain from its stored settings: a JSON array of provider objects,
// in failover order (what PUT /v1/tenants/{id}/providers/{channel} stores).
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "net/destination_policy.h"
#include "net/http_client.h"
#include "providers/provider.h"

namespace herald::providers {

// kInvalid "invalid_provider_config" when the document is not a non-empty array of valid
// provider objects.
Result<std::vector<std::unique_ptr<Provider>>> MakeProviderChain(std::string_view config_json,
                                                                 net::HttpClient* client);

// What PUT /v1/tenants/{id}/providers/{channel} checks before it stores a settings document:
// every provider builds (required fields present, keys readable), and every URL it will connect
// to passes the destination policy: base_url and FCM's token_url https:// (http:// only for
// hosts the operator allows), SMTP's url smtps:// or smtp:// (STARTTLS), no literal address
// the policy refuses, and verify_tls: false or a ca_file only for allowed hosts. kInvalid with
// the field path ("providers[1].base_url").
Status CheckProviderSettings(std::string_view config_json, const net::DestinationPolicy& policy);

// The secret that verifies delivery receipts from `provider` ("twilio": its auth_token;
// "vonage": its signature_secret; "sendgrid": its webhook_public_key, PEM), taken from a channel's
// provider settings. kNotFound "receipts_not_configured" when the settings hold none.
Result<std::string> ReceiptSecret(std::string_view config_json, std::string_view provider);

}  // namespace herald::providers

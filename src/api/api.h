// The HTTP API v1 of DESIGN §5 as an http::Handler: routing, authentication (admin token and
// API keys with scopes), JSON codecs and validation, the audit trail and request metrics.
// Depends on the Store interface only, never on a backend.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "api/rate_limiter.h"
#include "http/handler.h"
#include "observe/metrics.h"
#include "store/store.h"

namespace herald::api {

struct ApiOptions {
  std::string admin_token;                 // required; compared in constant time
  uint64_t max_body_bytes = 1 << 20;       // buffered request bodies
  uint64_t max_import_bytes = 4ull << 30;  // a streamed NDJSON import as a whole
  size_t import_batch = 1000;              // users per store batch during an import
  // Called (on a worker thread, quick) after a new notification is durable, so that the
  // pipeline starts its fan-out at once. May be empty (the fan-out then finds it at start).
  std::function<void(const std::string& notification_id)> on_notification;
  // The secret that verifies a tenant's delivery receipts from one provider ("twilio": the
  // account's auth token; "vonage": the signature secret; "sendgrid": the webhook's public key),
  // or an error when that tenant has none (the receipt is then refused). May be empty.
  std::function<Result<std::string>(const std::string& tenant_id, std::string_view provider)>
      receipt_secret;
  // The externally visible base URL (scheme://host:port) that signed callback URLs are built on.
  std::string public_url;
  // Checks a provider settings document before PUT /v1/tenants/{id}/providers/{channel}
  // stores it (every provider builds, every URL passes the destination policy); its error is
  // the answer. May be empty (then only the provider names are checked).
  std::function<Status(std::string_view config_json)> check_provider_settings;
  // Called after a tenant's provider settings for a channel were stored, so that the next
  // send uses them. May be empty.
  std::function<void(const std::string& tenant_id, Channel channel)> on_provider_settings;
  // Quotas and their defaults (api/rate_limiter.h).
  RateLimiterOptions rate_limits;
  // A receipt whose provider signs a timestamp (Vonage, SendGrid) is refused when it was signed
  // more than this many seconds before or after now: a replay.
  int receipt_tolerance_s = 300;
  // Only /healthz, /readyz, /metrics and /openapi.json (a process without the api role).
  bool ops_only = false;
};

// Owns nothing but its options; the store and the registry must outlive it. Thread-safe.
std::shared_ptr<http::Handler> MakeApiHandler(ApiOptions options, Store* store,
                                              observe::Registry* metrics);

}  // namespace herald::api

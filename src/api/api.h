// The HTTP API v1 of DESIGN §5 as an http::Handler: routing, authentication (admin token and
// API keys with scopes), JSON codecs and validation, the audit trail and request metrics.
// Depends on the Store interface only, never on a backend.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

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
};

// Owns nothing but its options; the store and the registry must outlive it. Thread-safe.
std::shared_ptr<http::Handler> MakeApiHandler(ApiOptions options, Store* store,
                                              observe::Registry* metrics);

}  // namespace herald::api

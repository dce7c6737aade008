// The HTTP API v1 of DESIGN §5 as an http::Handler: routing, authentication (admin token and
// API keys with scopes), JSON codecs and validation, the audit trail and request metrics.
// Depends on the Store interface only, never on a backend.
#pragma once

#include <memory>
#include <string>

#include "http/handler.h"
#include "observe/metrics.h"
#include "store/store.h"

namespace herald::api {

struct ApiOptions {
  std::string admin_token;                 // required; compared in constant time
  uint64_t max_body_bytes = 1 << 20;       // buffered request bodies
  uint64_t max_import_bytes = 4ull << 30;  // a streamed NDJSON import as a whole
  size_t import_batch = 1000;              // users per store batch during an import
};

// Owns nothing but its options; the store and the registry must outlive it. Thread-safe.
std::shared_ptr<http::Handler> MakeApiHandler(ApiOptions options, Store* store,
                                              observe::Registry* metrics);

}  // namespace herald::api

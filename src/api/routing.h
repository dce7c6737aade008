// Internal to src/api: the route table, the authenticated call a route handler receives, and
// response helpers. One file per route family registers its routes (tenant_routes.cc,
// user_routes.cc, group_routes.cc, import_routes.cc, notification_routes.cc, receipt_routes.cc,
// ops_routes.cc), Dragonfly-style.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/api.h"
#include "api/json_body.h"
#include "api/rate_limiter.h"
#include "http/handler.h"
#include "observe/metrics.h"
#include "store/store.h"

namespace herald::api {

enum class Auth { kNone, kAdmin, kTenant };

// Who is calling, once authenticated.
struct Principal {
  std::string tenant_id;            // for API keys
  std::string actor = "anonymous";  // "admin" or the key id
};

struct Call {
  const http::Request& request;
  std::vector<std::pair<std::string, std::string>> params;  // decoded path parameters
  Principal who;
  std::string_view Param(std::string_view name) const;
};

using RouteFn = std::function<http::Response(const Call&)>;
using StreamFn = std::function<std::unique_ptr<http::BodySink>(const Call&)>;

struct Route {
  std::string method;
  std::string pattern;  // "/v1/users/{external_id}"
  Auth auth = Auth::kNone;
  std::string scope;    // required API key scope for Auth::kTenant; "" = any key
  RouteFn fn;           // buffered
  StreamFn stream;      // or streamed body
  bool audited = true;  // operations endpoints are not audited
  // Unauthenticated routes that verify a signature (provider receipts): a bad signature counts
  // as a failed authentication of the client address.
  bool verifies_signature = false;
  // Which of the tenant's quotas the route draws on; set by Router::Add for Auth::kTenant
  // routes (streamed: imports; GET: reads; /v1/notifications...: sends; else user writes).
  std::optional<RateClass> rate_class;
  std::vector<std::string> segments;
};

struct Match {
  const Route* route = nullptr;
  std::vector<std::pair<std::string, std::string>> params;
  std::vector<std::string> allowed_methods;  // when the path matched but not the method
};

class Router {
 public:
  void Add(Route route);
  // `raw_path` is the undecoded path; each segment is percent-decoded after splitting, so an
  // encoded '/' stays inside its parameter.
  Match Find(std::string_view method, std::string_view raw_path) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

// Shared by every route family.
struct ApiContext {
  ApiOptions options;
  Store* store = nullptr;
  observe::Registry* metrics = nullptr;
  TenantQuotas* quotas = nullptr;  // tenant routes that change a tenant's limits tell it
};

// ---- responses ----
http::Response JsonResponse(int status, const Json& body);
http::Response ErrorResponse(const Error& error);
http::Response NoContent();

// ---- route families ----
void RegisterTenantRoutes(Router& router, ApiContext& ctx);
void RegisterUserRoutes(Router& router, ApiContext& ctx);
void RegisterGroupRoutes(Router& router, ApiContext& ctx);
void RegisterImportRoutes(Router& router, ApiContext& ctx);
void RegisterAuditRoutes(Router& router, ApiContext& ctx);
void RegisterNotificationRoutes(Router& router, ApiContext& ctx);
void RegisterReceiptRoutes(Router& router, ApiContext& ctx);
void RegisterOpsRoutes(Router& router, ApiContext& ctx);

// ---- helpers shared by route families ----
// Reads ?limit= and ?cursor= (422 "invalid_limit" for a non-number or out of [1, 1000]).
Result<PageRequest> ReadPage(const http::Request& request);
Json ErrorJson(const Error& error);

}  // namespace herald::api

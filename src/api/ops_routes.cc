// Operations endpoints: liveness, readiness, Prometheus metrics and the OpenAPI description.
#include "api/openapi.h"
#include "api/routing.h"

namespace herald::api {

void RegisterOpsRoutes(Router& router, ApiContext& ctx) {
  Store* store = ctx.store;
  observe::Registry* metrics = ctx.metrics;
  router.Add({.method = "GET",
              .pattern = "/healthz",
              .fn =
                  [](const Call&) {
                    return JsonResponse(200, {{"status", "ok"}});
                  },
              .audited = false});
  router.Add({.method = "GET",
              .pattern = "/readyz",
              .fn =
                  [store](const Call&) {
                    if (auto s = store->Ping(); !s.ok()) {
                      return ErrorResponse(
                          MakeError(ErrorKind::kUnavailable, "store_unavailable",
                                    "The store does not answer: " + s.error().message));
                    }
                    return JsonResponse(200, {{"status", "ready"}});
                  },
              .audited = false});
  router.Add({.method = "GET",
              .pattern = "/metrics",
              .fn =
                  [metrics](const Call&) {
                    http::Response r;
                    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
                    r.body = metrics->Render();
                    return r;
                  },
              .audited = false});
  router.Add({.method = "GET",
              .pattern = "/openapi.json",
              .fn =
                  [](const Call&) {
                    http::Response r;
                    r.body = std::string(OpenApiDocument());
                    return r;
                  },
              .audited = false});
}

}  // namespace herald::api

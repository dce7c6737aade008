#include "api/api.h"

#include <chrono>
#include <string>

#include "api/routing.h"
#include "crypto/crypto.h"
#include "observe/log.h"

namespace herald::api {
namespace {

std::string_view PathOf(std::string_view target) {
  const size_t q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

std::string_view BearerToken(const http::Request& request) {
  std::string_view h = request.Header("authorization");
  constexpr std::string_view kPrefix = "Bearer ";
  if (h.size() <= kPrefix.size()) return {};
  for (size_t i = 0; i < kPrefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(h[i])) !=
        std::tolower(static_cast<unsigned char>(kPrefix[i]))) {
      return {};
    }
  }
  h.remove_prefix(kPrefix.size());
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  while (!h.empty() && h.back() == ' ') h.remove_suffix(1);
  return h;
}

Error Unauthenticated(std::string code, std::string message) {
  return MakeError(ErrorKind::kUnauthenticated, std::move(code), std::move(message));
}

class ApiHandler final : public http::Handler {
 public:
  ApiHandler(ApiOptions options, Store* store, observe::Registry* metrics) {
    ctx_.options = std::move(options);
    ctx_.store = store;
    ctx_.metrics = metrics;
    RegisterTenantRoutes(router_, ctx_);
    RegisterUserRoutes(router_, ctx_);
    RegisterGroupRoutes(router_, ctx_);
    RegisterImportRoutes(router_, ctx_);
    RegisterAuditRoutes(router_, ctx_);
    RegisterNotificationRoutes(router_, ctx_);
    RegisterReceiptRoutes(router_, ctx_);
    RegisterOpsRoutes(router_, ctx_);
    unmatched_ = &metrics->GetCounter("herald_http_requests_unmatched_total",
                                      "Requests that matched no route.");
  }

  http::BodyPlan PlanBody(const http::Request& head) override {
    const Match m = router_.Find(head.method, PathOf(head.target));
    if (m.route != nullptr && m.route->stream) {
      return {.stream = true, .max_bytes = ctx_.options.max_import_bytes};
    }
    return {.stream = false, .max_bytes = ctx_.options.max_body_bytes};
  }

  http::Response Handle(const http::Request& request) override {
    Match m = router_.Find(request.method, PathOf(request.target));
    if (m.route == nullptr) return NoRoute(m);
    http::Response response;
    Call call{request, std::move(m.params), {}};
    if (auto auth = Authenticate(*m.route, call); !auth.ok()) {
      response = ErrorResponse(auth.error());
    } else if (m.route->stream) {
      // A streamed route reached through Handle: the server read it buffered. Feed it whole.
      auto sink = m.route->stream(call);
      sink->Write(request.body);
      response = sink->Finish(true);
    } else {
      try {
        response = m.route->fn(call);
      } catch (const std::exception& e) {
        observe::Error("handler threw", {{"route", m.route->pattern}, {"what", e.what()}});
        response = ErrorResponse(MakeError(ErrorKind::kInternal, "internal_error",
                                           "Herald failed to handle this request; it has been "
                                           "logged with its request id. Try again."));
      }
    }
    Annotate(response, *m.route, call.who);
    return response;
  }

  std::variant<http::Response, std::unique_ptr<http::BodySink>> OpenStream(
      const http::Request& head) override {
    Match m = router_.Find(head.method, PathOf(head.target));
    if (m.route == nullptr) return NoRoute(m);
    Call call{head, std::move(m.params), {}};
    if (auto auth = Authenticate(*m.route, call); !auth.ok()) {
      auto response = ErrorResponse(auth.error());
      Annotate(response, *m.route, call.who);
      return response;
    }
    return std::make_unique<AnnotatingSink>(m.route->stream(call), *m.route, call.who);
  }

  void Record(const http::Request& request, const http::Response& response,
              int64_t latency_us) override {
    const std::string route = response.route.empty() ? "unmatched" : response.route;
    const std::string status = std::to_string(response.status);
    ctx_.metrics
        ->GetCounter("herald_http_requests_total", "HTTP requests by route, method and status.",
                     {{"route", route}, {"method", request.method}, {"status", status}})
        .Inc();
    ctx_.metrics
        ->GetHistogram("herald_http_request_duration_seconds",
                       "Time from a request's head to its response written.",
                       observe::LatencyBuckets(), {{"route", route}})
        .Observe(static_cast<double>(latency_us) / 1e6);
    if (IsOpsRoute(response.route)) return;
    AuditRecord rec;
    rec.at = NowMillis();
    rec.tenant_id = response.tenant_id;
    rec.actor = response.actor.empty() ? "anonymous" : response.actor;
    rec.method = request.method;
    rec.route = route;
    rec.status = response.status;
    rec.request_id = request.request_id;
    rec.latency_us = latency_us;
    ctx_.store->AppendAudit(std::move(rec));
  }

 private:
  // Wraps a route's sink so its final response carries the route and principal.
  class AnnotatingSink final : public http::BodySink {
   public:
    AnnotatingSink(std::unique_ptr<http::BodySink> inner, const Route& route, Principal who)
        : inner_(std::move(inner)), route_(route), who_(std::move(who)) {}
    bool Write(std::string_view piece) override { return inner_->Write(piece); }
    http::Response Finish(bool complete) override {
      auto r = inner_->Finish(complete);
      Annotate(r, route_, who_);
      return r;
    }

   private:
    std::unique_ptr<http::BodySink> inner_;
    const Route& route_;
    Principal who_;
  };

  static bool IsOpsRoute(std::string_view route) {
    return route == "/healthz" || route == "/readyz" || route == "/metrics" ||
           route == "/openapi.json" || route == "/";
  }

  static void Annotate(http::Response& response, const Route& route, const Principal& who) {
    response.route = route.pattern;
    if (response.tenant_id.empty())
      response.tenant_id = who.tenant_id;  // a new tenant names itself
    response.actor = who.actor;
  }

  http::Response NoRoute(const Match& m) {
    unmatched_->Inc();
    if (!m.allowed_methods.empty()) {
      std::string allow;
      for (const auto& method : m.allowed_methods) allow += (allow.empty() ? "" : ", ") + method;
      auto r = ErrorResponse(
          MakeError(ErrorKind::kMalformed, "method_not_allowed",
                    "This path does not accept that method; it accepts " + allow + "."));
      r.status = 405;
      r.headers.emplace_back("Allow", allow);
      return r;
    }
    return ErrorResponse(MakeError(ErrorKind::kNotFound, "route_not_found",
                                   "No such endpoint; see /openapi.json for the API."));
  }

  Status Authenticate(const Route& route, Call& call) {
    if (route.auth == Auth::kNone) return Status::Ok();
    const std::string_view token = BearerToken(call.request);
    if (token.empty()) {
      return Unauthenticated("missing_credentials",
                             route.auth == Auth::kAdmin
                                 ? "This endpoint needs the admin token: send "
                                   "'Authorization: Bearer <admin token>'."
                                 : "This endpoint needs an API key: send "
                                   "'Authorization: Bearer <key>'.");
    }
    if (route.auth == Auth::kAdmin) {
      if (!crypto::ConstantTimeEquals(token, ctx_.options.admin_token)) {
        return Unauthenticated("invalid_credentials", "The admin token is not valid.");
      }
      call.who.actor = "admin";
      const auto tenant = call.Param("tenant_id");
      if (!tenant.empty()) call.who.tenant_id = std::string(tenant);
      return Status::Ok();
    }
    auto key_id = crypto::ApiKeyIdOf(token);
    if (!key_id.ok()) {
      return Unauthenticated("invalid_credentials", "The API key is not a valid Herald key.");
    }
    auto record = ctx_.store->GetApiKey(*key_id);
    if (!record.ok()) {
      if (record.error().kind == ErrorKind::kNotFound) {
        return Unauthenticated("invalid_credentials", "The API key is not valid.");
      }
      return record.take_error();
    }
    if (!crypto::VerifyApiKey(token, record->hash)) {
      return Unauthenticated("invalid_credentials", "The API key is not valid.");
    }
    if (record->key.revoked_at) {
      return Unauthenticated("key_revoked",
                             "This API key was revoked; ask the tenant's admin for a new one.");
    }
    call.who.actor = record->key.id;
    call.who.tenant_id = record->key.tenant_id;
    if (!route.scope.empty()) {
      bool has = false;
      for (const auto& s : record->key.scopes) has = has || s == route.scope;
      if (!has) {
        return MakeError(
            ErrorKind::kForbidden, "missing_scope",
            "This API key lacks the scope '" + route.scope + "' that this endpoint needs.",
            "scope");
      }
    }
    return Status::Ok();
  }

  ApiContext ctx_;
  Router router_;
  observe::Counter* unmatched_ = nullptr;
};

}  // namespace

std::shared_ptr<http::Handler> MakeApiHandler(ApiOptions options, Store* store,
                                              observe::Registry* metrics) {
  return std::make_shared<ApiHandler>(std::move(options), store, metrics);
}

}  // namespace herald::api

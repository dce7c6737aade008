#include "api/api.h"

#include <atomic>
#include <chrono>
#include <optional>
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

// RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers): the quota in force
// and what is left of it.
void AddRateHeaders(http::Response& response, const RateDecision& d) {
  response.headers.emplace_back(
      "RateLimit-Policy",
      "\"" + d.policy + "\";q=" + std::to_string(d.quota) + ";w=" + std::to_string(d.window_s));
  response.headers.emplace_back(
      "RateLimit",
      "\"" + d.policy + "\";r=" + std::to_string(d.remaining) + ";t=" + std::to_string(d.reset_s));
  if (!d.allowed) response.headers.emplace_back("Retry-After", std::to_string(d.retry_after_s));
}

class ApiHandler final : public http::Handler {
 public:
  ApiHandler(ApiOptions options, Store* store, observe::Registry* metrics)
      : limiter_(options.rate_limits),
        quotas_(
            [store](const std::string& tenant_id) -> std::optional<RateLimits> {
              Result<Tenant> t = store->GetTenant(tenant_id);
              if (!t.ok()) return std::nullopt;
              return t->rate_limits;
            },
            5'000, options.rate_limits.clock) {
    ctx_.options = std::move(options);
    ctx_.store = store;
    ctx_.metrics = metrics;
    ctx_.quotas = &quotas_;
    if (!ctx_.options.ops_only) {
      RegisterTenantRoutes(router_, ctx_);
      RegisterUserRoutes(router_, ctx_);
      RegisterGroupRoutes(router_, ctx_);
      RegisterImportRoutes(router_, ctx_);
      RegisterAuditRoutes(router_, ctx_);
      RegisterNotificationRoutes(router_, ctx_);
      RegisterReceiptRoutes(router_, ctx_);
    }
    RegisterOpsRoutes(router_, ctx_);
    unmatched_ = &metrics->GetCounter("herald_http_requests_unmatched_total",
                                      "Requests that matched no route.");
    rate_limited_ = &metrics->GetCounter("herald_http_rate_limited_total",
                                         "Requests answered 429 by a tenant's quota.");
    auth_blocked_ = &metrics->GetCounter(
        "herald_http_auth_blocked_total",
        "Requests answered 429 because their address failed to authenticate too often.");
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
    std::optional<RateDecision> quota;
    if (auto admitted = Admit(*m.route, call, quota); !admitted.ok()) {
      response = ErrorResponse(admitted.error());
      if (quota) AddRateHeaders(response, *quota);
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
      if (m.route->verifies_signature && response.status == 403 && response.tenant_id.empty()) {
        limiter_.RecordAuthFailure(request.remote);  // a forged or replayed callback
      }
    }
    if (quota && quota->allowed) AddRateHeaders(response, *quota);
    Annotate(response, *m.route, call.who);
    return response;
  }

  std::variant<http::Response, std::unique_ptr<http::BodySink>> OpenStream(
      const http::Request& head) override {
    Match m = router_.Find(head.method, PathOf(head.target));
    if (m.route == nullptr) return NoRoute(m);
    Call call{head, std::move(m.params), {}};
    std::optional<RateDecision> quota;
    if (auto admitted = Admit(*m.route, call, quota); !admitted.ok()) {
      auto response = ErrorResponse(admitted.error());
      if (quota) AddRateHeaders(response, *quota);
      Annotate(response, *m.route, call.who);
      return response;
    }
    return std::make_unique<AnnotatingSink>(m.route->stream(call), *m.route, call.who, quota);
  }

  void Record(const http::Request& request, const http::Response& response,
              int64_t latency_us) override {
    if (!response.refusal.empty()) {
      RecordRefusal(response);
      return;
    }
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
    // What the audit trail may take: every call of an admin or a tenant, but from
    // unauthenticated callers (wrong keys, unknown routes, forged receipts) only a bounded
    // sample, and of a tenant's 429s only a few a second; the rest is counted.
    const bool anonymous = response.tenant_id.empty() && response.actor == "anonymous";
    if ((anonymous && !limiter_.AdmitAnonymousAudit()) ||
        (!anonymous && response.status == 429 && !response.tenant_id.empty() &&
         !limiter_.AdmitRefusedAudit(response.tenant_id))) {
      ctx_.metrics
          ->GetCounter("herald_audit_dropped_total",
                       "Audit records not written: unauthenticated or rate-limited traffic past "
                       "its audit budget.",
                       {{"reason", anonymous ? "unauthenticated" : "rate_limited"}})
          .Inc();
      return;
    }
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
    AnnotatingSink(std::unique_ptr<http::BodySink> inner, const Route& route, Principal who,
                   std::optional<RateDecision> quota)
        : inner_(std::move(inner)), route_(route), who_(std::move(who)), quota_(std::move(quota)) {}
    bool Write(std::string_view piece) override { return inner_->Write(piece); }
    http::Response Finish(bool complete) override {
      auto r = inner_->Finish(complete);
      if (quota_) AddRateHeaders(r, *quota_);
      Annotate(r, route_, who_);
      return r;
    }

   private:
    std::unique_ptr<http::BodySink> inner_;
    const Route& route_;
    Principal who_;
    std::optional<RateDecision> quota_;
  };

  // Authentication, then the route's quota. `quota` is set when a bucket was consulted (its
  // headers go on the answer), also when it refused.
  Status Admit(const Route& route, Call& call, std::optional<RateDecision>& quota) {
    const bool authenticates = route.auth != Auth::kNone || route.verifies_signature;
    RateDecision blocked;
    if (authenticates && limiter_.AuthBlocked(call.request.remote, &blocked)) {
      auth_blocked_->Inc();
      quota = blocked;
      return MakeError(ErrorKind::kRateLimited, "too_many_failed_authentications",
                       "Too many requests from this address failed to authenticate; wait " +
                           std::to_string(blocked.retry_after_s) +
                           " s (Retry-After) and check the credentials before retrying.",
                       "Authorization");
    }
    Status auth = Authenticate(route, call);
    if (!auth.ok()) {
      if (auth.error().kind == ErrorKind::kUnauthenticated) {
        limiter_.RecordAuthFailure(call.request.remote);
      }
      return auth;
    }
    if (!route.rate_class || call.who.tenant_id.empty()) return Status::Ok();
    const RateClass c = *route.rate_class;
    quota = limiter_.Take(c, call.who.tenant_id, call.who.actor, quotas_.Get(call.who.tenant_id));
    if (quota->allowed) return Status::Ok();
    rate_limited_->Inc();
    return MakeError(ErrorKind::kRateLimited, "rate_limited",
                     "This tenant used its quota of " + std::to_string(quota->quota) + " " +
                         std::string(ToString(c)) + " per " + std::to_string(quota->window_s) +
                         " s (" + quota->policy + "); retry in " +
                         std::to_string(quota->retry_after_s) +
                         " s (Retry-After). The admin can raise it: PATCH /v1/tenants/{id} "
                         "rate_limits.",
                     "");
  }

  // The server's own refusals (bad HTTP, timeouts, limits, connection ceilings) are counted
  // by code; connection ceilings are also logged (at most once a second). None is audited:
  // they belong to no tenant, and writing them would let anyone fill the trail.
  void RecordRefusal(const http::Response& response) {
    ctx_.metrics
        ->GetCounter("herald_http_refusals_total",
                     "Requests and connections the HTTP server refused itself, by error code.",
                     {{"code", response.refusal}, {"status", std::to_string(response.status)}})
        .Inc();
    if (!response.refusal.starts_with("too_many_connections")) return;
    const int64_t now = NowMillis();
    const int64_t n = ceiling_refusals_.fetch_add(1) + 1;
    int64_t last = last_ceiling_log_.load();
    if (now - last >= 1000 && last_ceiling_log_.compare_exchange_strong(last, now)) {
      ceiling_refusals_.fetch_sub(n);
      // (No client address: the logs carry ids and numbers only.)
      observe::Warn("connections refused at the ceiling",
                    {{"code", response.refusal}, {"refused", static_cast<long long>(n)}});
    }
  }

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

  RateLimiter limiter_;
  TenantQuotas quotas_;
  ApiContext ctx_;
  Router router_;
  observe::Counter* unmatched_ = nullptr;
  observe::Counter* rate_limited_ = nullptr;
  observe::Counter* auth_blocked_ = nullptr;
  std::atomic<int64_t> ceiling_refusals_{0};  // since the last log line
  std::atomic<int64_t> last_ceiling_log_{0};
};

}  // namespace

std::shared_ptr<http::Handler> MakeApiHandler(ApiOptions options, Store* store,
                                              observe::Registry* metrics) {
  return std::make_shared<ApiHandler>(std::move(options), store, metrics);
}

}  // namespace herald::api

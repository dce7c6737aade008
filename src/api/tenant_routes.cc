// Admin routes: tenants, their API keys and their provider settings.
#include <algorithm>
#include <string>

#include "api/routing.h"
#include "crypto/crypto.h"
#include "model/validation.h"

namespace herald::api {
namespace {

constexpr int kMinDeadline = 10;
constexpr int kMaxDeadline = 30;
constexpr int kMaxConsentDays = 36500;

Error Invalid(std::string code, std::string message, std::string field) {
  return MakeError(ErrorKind::kInvalid, std::move(code), std::move(message), std::move(field));
}

// The quotas in force per class: the tenant's own, or the server's default.
Json RateLimitsJson(const RateLimits& own, const RateLimiterOptions& server) {
  Json out = Json::object();
  for (RateClass c : kAllRateClasses) {
    const RateQuota q = own[c].value_or(server.defaults[static_cast<size_t>(c)]);
    Json j{{"limit", q.limit},
           {"window_seconds", q.window_s},
           {"source", own[c] ? "tenant" : "default"}};
    j["per_key_limit"] = q.per_key_limit > 0 ? Json(q.per_key_limit) : Json(nullptr);
    out[std::string(ToString(c))] = std::move(j);
  }
  return out;
}

Json TenantJson(const Tenant& t, const RateLimiterOptions& server) {
  return {{"id", t.id},
          {"name", t.name},
          {"delivery_deadline_minutes", t.delivery_deadline_minutes},
          {"default_consent_days", t.default_consent_days},
          {"rate_limits", RateLimitsJson(t.rate_limits, server)},
          {"created_at", FormatRfc3339(t.created_at)},
          {"updated_at", FormatRfc3339(t.updated_at)}};
}

constexpr int64_t kMaxQuota = 1'000'000;
constexpr int64_t kMaxWindowSeconds = 86'400;

// `rate_limits`: {class: {limit, window_seconds?, per_key_limit?} | null}. A class named with
// null goes back to the default; classes not named keep what they have.
Status ReadRateLimits(const Json& body, RateLimits& limits) {
  auto it = body.find("rate_limits");
  if (it == body.end()) return Status::Ok();
  if (!it->is_object()) {
    return Invalid("invalid_type",
                   "rate_limits must be an object of classes (sends, user_writes, imports, "
                   "reads); got " +
                       std::string(JsonTypeName(*it)) + ".",
                   "rate_limits");
  }
  for (const auto& [name, value] : it->items()) {
    const std::string path = "rate_limits." + name;
    const std::optional<RateClass> c = ParseRateClass(name);
    if (!c) {
      return Invalid("unknown_field",
                     "Unknown rate limit class \"" + name +
                         "\"; the classes are sends, user_writes, imports, reads.",
                     path);
    }
    if (value.is_null()) {
      limits[*c].reset();
      continue;
    }
    if (!value.is_object()) {
      return Invalid("invalid_type", path + " must be an object or null.", path);
    }
    if (auto s = CheckFields(value, {"limit", "window_seconds", "per_key_limit"}, path + ".");
        !s.ok()) {
      return s;
    }
    auto limit = GetInt(value, "limit", path + ".limit");
    if (!limit.ok()) return limit.take_error();
    auto window = GetInt(value, "window_seconds", path + ".window_seconds");
    if (!window.ok()) return window.take_error();
    auto per_key = GetInt(value, "per_key_limit", path + ".per_key_limit");
    if (!per_key.ok()) return per_key.take_error();
    RateQuota q;
    q.limit = limit->value_or(0);
    q.window_s = window->value_or(1);
    q.per_key_limit = per_key->value_or(0);
    if (!limit->has_value() || q.limit < 1 || q.limit > kMaxQuota) {
      return Invalid("invalid_rate_limit",
                     path + ".limit must be an integer from 1 to 1000000 (requests per window).",
                     path + ".limit");
    }
    if (q.window_s < 1 || q.window_s > kMaxWindowSeconds) {
      return Invalid("invalid_rate_limit",
                     path + ".window_seconds must be from 1 to 86400 (one day).",
                     path + ".window_seconds");
    }
    if (q.per_key_limit < 0 || q.per_key_limit > q.limit) {
      return Invalid("invalid_rate_limit",
                     path + ".per_key_limit must be from 0 (no per-key limit) to the limit (" +
                         std::to_string(q.limit) + ").",
                     path + ".per_key_limit");
    }
    limits[*c] = q;
  }
  return Status::Ok();
}

Json KeyJson(const ApiKey& k) {
  Json j{{"id", k.id},
         {"tenant_id", k.tenant_id},
         {"name", k.name},
         {"scopes", k.scopes},
         {"created_at", FormatRfc3339(k.created_at)}};
  j["revoked_at"] = k.revoked_at ? Json(FormatRfc3339(*k.revoked_at)) : Json(nullptr);
  return j;
}

// Applies the fields of a tenant body to `t`. `creating` makes name required.
Status ReadTenantFields(const Json& body, bool creating, Tenant& t) {
  if (auto s = CheckFields(
          body, {"name", "delivery_deadline_minutes", "default_consent_days", "rate_limits"});
      !s.ok()) {
    return s;
  }
  if (auto s = ReadRateLimits(body, t.rate_limits); !s.ok()) return s;
  auto name = GetString(body, "name", "name");
  if (!name.ok()) return name.take_error();
  if (name->has_value()) {
    t.name = **name;
  } else if (creating) {
    return Invalid("missing_field", "name is required: the tenant's display name.", "name");
  }
  if (t.name.empty()) {
    return Invalid("invalid_name", "name must be 1-256 bytes of UTF-8 text; it is empty.", "name");
  }
  if (auto s = ValidateName(t.name, "name"); !s.ok()) return s;
  auto deadline = GetInt(body, "delivery_deadline_minutes", "delivery_deadline_minutes");
  if (!deadline.ok()) return deadline.take_error();
  if (deadline->has_value()) {
    if (**deadline < kMinDeadline || **deadline > kMaxDeadline) {
      return Invalid("invalid_deadline",
                     "delivery_deadline_minutes must be from 10 to 30; got " +
                         std::to_string(**deadline) + ".",
                     "delivery_deadline_minutes");
    }
    t.delivery_deadline_minutes = static_cast<int>(**deadline);
  }
  auto days = GetInt(body, "default_consent_days", "default_consent_days");
  if (!days.ok()) return days.take_error();
  if (days->has_value()) {
    if (**days < 1 || **days > kMaxConsentDays) {
      return Invalid(
          "invalid_consent_days",
          "default_consent_days must be from 1 to 36500; got " + std::to_string(**days) + ".",
          "default_consent_days");
    }
    t.default_consent_days = static_cast<int>(**days);
  }
  return Status::Ok();
}

// Which providers may serve a channel.
bool ProviderFitsChannel(std::string_view provider, Channel channel) {
  switch (channel) {
    case Channel::kIos: return provider == "apns";
    case Channel::kAndroid: return provider == "fcm";
    case Channel::kEmail: return provider == "smtp" || provider == "sendgrid";
    case Channel::kSms: return provider == "twilio" || provider == "vonage";
  }
  return false;
}

Result<Json> ReadProviderList(const Json& body, Channel channel) {
  if (auto s = CheckFields(body, {"providers"}); !s.ok()) return s.take_error();
  auto it = body.find("providers");
  if (it == body.end() || !it->is_array() || it->empty() || it->size() > 8) {
    return Invalid("invalid_providers",
                   "providers must be a list of 1-8 provider objects, in failover order.",
                   "providers");
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& p = (*it)[i];
    const std::string path = "providers[" + std::to_string(i) + "]";
    if (!p.is_object()) {
      return Invalid("invalid_type", path + " must be an object.", path);
    }
    auto name = GetString(p, "name", path + ".name");
    if (!name.ok()) return name.take_error();
    if (!name->has_value() || !ProviderFitsChannel(**name, channel)) {
      return Invalid("invalid_provider",
                     path + ".name must name a provider of the " + std::string(ToString(channel)) +
                         " channel (ios: apns; android: fcm; email: smtp, sendgrid; sms: twilio, "
                         "vonage).",
                     path + ".name");
    }
  }
  return *it;
}

Json ProviderSummary(const ProviderSettings& s) {
  Json names = Json::array();
  auto doc = Json::parse(s.config_json, nullptr, false);
  if (doc.is_array()) {
    for (const auto& p : doc) names.push_back({{"name", p.value("name", "")}});
  }
  return {{"channel", ToString(s.channel)},
          {"providers", names},
          {"updated_at", FormatRfc3339(s.updated_at)}};
}

}  // namespace

void RegisterTenantRoutes(Router& router, ApiContext& ctx) {
  Store* store = ctx.store;
  const RateLimiterOptions* limits = &ctx.options.rate_limits;
  TenantQuotas* quotas = ctx.quotas;
  router.Add({.method = "POST",
              .pattern = "/v1/tenants",
              .auth = Auth::kAdmin,
              .fn = [store, limits](const Call& call) {
                auto body = ParseJsonObject(call.request.body);
                if (!body.ok()) return ErrorResponse(body.error());
                Tenant t;
                if (auto s = ReadTenantFields(*body, true, t); !s.ok()) {
                  return ErrorResponse(s.error());
                }
                auto created = store->CreateTenant(std::move(t));
                if (!created.ok()) return ErrorResponse(created.error());
                auto response = JsonResponse(201, TenantJson(*created, *limits));
                response.tenant_id = created->id;  // the creation belongs to its trail
                return response;
              }});
  router.Add(
      {.method = "GET",
       .pattern = "/v1/tenants",
       .auth = Auth::kAdmin,
       .fn = [store, limits](const Call& call) {
         auto page = ReadPage(call.request);
         if (!page.ok()) return ErrorResponse(page.error());
         auto tenants = store->ListTenants(*page);
         if (!tenants.ok()) return ErrorResponse(tenants.error());
         Json items = Json::array();
         for (const auto& t : tenants->items) items.push_back(TenantJson(t, *limits));
         return JsonResponse(200, {{"tenants", items}, {"next_cursor", tenants->next_cursor}});
       }});
  router.Add({.method = "GET",
              .pattern = "/v1/tenants/{tenant_id}",
              .auth = Auth::kAdmin,
              .fn = [store, limits](const Call& call) {
                auto t = store->GetTenant(call.Param("tenant_id"));
                if (!t.ok()) return ErrorResponse(t.error());
                return JsonResponse(200, TenantJson(*t, *limits));
              }});
  router.Add({.method = "PATCH",
              .pattern = "/v1/tenants/{tenant_id}",
              .auth = Auth::kAdmin,
              .fn = [store, limits, quotas](const Call& call) {
                auto body = ParseJsonObject(call.request.body);
                if (!body.ok()) return ErrorResponse(body.error());
                auto t = store->GetTenant(call.Param("tenant_id"));
                if (!t.ok()) return ErrorResponse(t.error());
                if (auto s = ReadTenantFields(*body, false, *t); !s.ok()) {
                  return ErrorResponse(s.error());
                }
                auto updated = store->UpdateTenant(*t);
                if (!updated.ok()) return ErrorResponse(updated.error());
                if (quotas != nullptr) quotas->Put(updated->id, updated->rate_limits);
                return JsonResponse(200, TenantJson(*updated, *limits));
              }});
  router.Add({.method = "POST",
              .pattern = "/v1/tenants/{tenant_id}/keys",
              .auth = Auth::kAdmin,
              .fn = [store](const Call& call) {
                auto body = ParseJsonObject(call.request.body);
                if (!body.ok()) return ErrorResponse(body.error());
                if (auto s = CheckFields(*body, {"name", "scopes"}); !s.ok()) {
                  return ErrorResponse(s.error());
                }
                auto tenant = store->GetTenant(call.Param("tenant_id"));
                if (!tenant.ok()) return ErrorResponse(tenant.error());
                auto name = GetString(*body, "name", "name");
                if (!name.ok()) return ErrorResponse(name.error());
                ApiKey key;
                key.name = name->value_or("");
                if (auto s = ValidateName(key.name, "name"); !s.ok()) {
                  return ErrorResponse(s.error());
                }
                auto scopes = body->find("scopes");
                if (scopes == body->end() || !scopes->is_array() || scopes->empty()) {
                  return ErrorResponse(Invalid("invalid_scopes",
                                               "scopes must be a non-empty list of: users:read, "
                                               "users:write, notifications:send, "
                                               "notifications:read, events:read, audit:read.",
                                               "scopes"));
                }
                for (size_t i = 0; i < scopes->size(); ++i) {
                  const Json& s = (*scopes)[i];
                  bool known = false;
                  for (auto k : kScopes) known = known || (s.is_string() && s == k);
                  if (!known) {
                    return ErrorResponse(Invalid(
                        "unknown_scope",
                        "scopes[" + std::to_string(i) +
                            "] is not a scope; use users:read, users:write, notifications:send, "
                            "notifications:read, events:read or audit:read.",
                        "scopes[" + std::to_string(i) + "]"));
                  }
                  const std::string scope = s.get<std::string>();
                  if (std::find(key.scopes.begin(), key.scopes.end(), scope) == key.scopes.end()) {
                    key.scopes.push_back(scope);
                  }
                }
                auto minted = crypto::MintApiKey();
                key.id = minted.id;
                key.tenant_id = tenant->id;
                key.created_at = NowMillis();
                if (auto s = store->CreateApiKey(key, minted.hash); !s.ok()) {
                  return ErrorResponse(s.error());
                }
                Json j = KeyJson(key);
                j["key"] = minted.secret;
                return JsonResponse(201, j);
              }});
  router.Add({.method = "GET",
              .pattern = "/v1/tenants/{tenant_id}/keys",
              .auth = Auth::kAdmin,
              .fn = [store](const Call& call) {
                auto tenant = store->GetTenant(call.Param("tenant_id"));
                if (!tenant.ok()) return ErrorResponse(tenant.error());
                auto keys = store->ListApiKeys(tenant->id);
                if (!keys.ok()) return ErrorResponse(keys.error());
                Json items = Json::array();
                for (const auto& k : *keys) items.push_back(KeyJson(k));
                return JsonResponse(200, {{"keys", items}});
              }});
  router.Add({.method = "DELETE",
              .pattern = "/v1/tenants/{tenant_id}/keys/{key_id}",
              .auth = Auth::kAdmin,
              .fn = [store](const Call& call) {
                auto s = store->RevokeApiKey(call.Param("tenant_id"), call.Param("key_id"));
                if (!s.ok()) return ErrorResponse(s.error());
                return NoContent();
              }});
  router.Add({.method = "PUT",
              .pattern = "/v1/tenants/{tenant_id}/providers/{channel}",
              .auth = Auth::kAdmin,
              .fn = [store, &options = ctx.options](const Call& call) {
                auto tenant = store->GetTenant(call.Param("tenant_id"));
                if (!tenant.ok()) return ErrorResponse(tenant.error());
                auto channel = ParseChannel(call.Param("channel"));
                if (!channel) {
                  return ErrorResponse(MakeError(ErrorKind::kNotFound, "unknown_channel",
                                                 "The channel must be ios, android, email or sms.",
                                                 "channel"));
                }
                auto body = ParseJsonObject(call.request.body);
                if (!body.ok()) return ErrorResponse(body.error());
                auto list = ReadProviderList(*body, *channel);
                if (!list.ok()) return ErrorResponse(list.error());
                ProviderSettings settings{tenant->id, *channel, list->dump(), NowMillis()};
                if (options.check_provider_settings) {
                  if (Status s = options.check_provider_settings(settings.config_json); !s.ok()) {
                    return ErrorResponse(s.error());
                  }
                }
                if (auto s = store->PutProviderSettings(settings); !s.ok()) {
                  return ErrorResponse(s.error());
                }
                if (options.on_provider_settings) {
                  options.on_provider_settings(tenant->id, *channel);
                }
                return JsonResponse(200, ProviderSummary(settings));
              }});
  router.Add({.method = "GET",
              .pattern = "/v1/tenants/{tenant_id}/providers/{channel}",
              .auth = Auth::kAdmin,
              .fn = [store](const Call& call) {
                auto channel = ParseChannel(call.Param("channel"));
                if (!channel) {
                  return ErrorResponse(MakeError(ErrorKind::kNotFound, "unknown_channel",
                                                 "The channel must be ios, android, email or sms.",
                                                 "channel"));
                }
                auto settings = store->GetProviderSettings(call.Param("tenant_id"), *channel);
                if (!settings.ok()) return ErrorResponse(settings.error());
                return JsonResponse(200, ProviderSummary(*settings));
              }});
}

}  // namespace herald::api

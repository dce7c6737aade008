// Tenant routes for users and their devices.
#include <string>

#include "api/routing.h"
#include "api/user_codec.h"
#include "model/validation.h"

namespace herald::api {
namespace {

constexpr int kPatchAttempts = 5;

Result<std::string> ExternalIdParam(const Call& call) {
  std::string id(call.Param("external_id"));
  if (auto s = ValidateExternalId(id, "external_id"); !s.ok()) return s.take_error();
  return id;
}

Result<UserDefaults> DefaultsFor(Store* store, const std::string& tenant_id) {
  auto tenant = store->GetTenant(tenant_id);
  if (!tenant.ok()) return tenant.take_error();
  return UserDefaults{NowMillis(), tenant->default_consent_days};
}

http::Response PutUser(Store* store, const Call& call) {
  auto id = ExternalIdParam(call);
  if (!id.ok()) return ErrorResponse(id.error());
  auto body = ParseJsonObject(call.request.body);
  if (!body.ok()) return ErrorResponse(body.error());
  auto defaults = DefaultsFor(store, call.who.tenant_id);
  if (!defaults.ok()) return ErrorResponse(defaults.error());
  auto user = ReadUser(*body, *defaults, false);
  if (!user.ok()) return ErrorResponse(user.error());
  user->tenant_id = call.who.tenant_id;
  user->external_id = std::move(*id);
  auto stored = store->PutUser(*user);
  if (!stored.ok()) return ErrorResponse(stored.error());
  return JsonResponse(stored->created ? 201 : 200, UserJson(stored->user));
}

// JSON merge patch (RFC 7396) over the user's writable fields, retried on a concurrent write.
http::Response PatchUser(Store* store, const Call& call) {
  auto id = ExternalIdParam(call);
  if (!id.ok()) return ErrorResponse(id.error());
  auto patch = ParseJsonObject(call.request.body);
  if (!patch.ok()) return ErrorResponse(patch.error());
  if (auto s = CheckFields(
          *patch, {"name", "opt_in", "consent_from", "consent_until", "devices", "groups"});
      !s.ok()) {
    return ErrorResponse(s.error());
  }
  if (auto it = patch->find("opt_in"); it != patch->end() && it->is_null()) {
    return ErrorResponse(MakeError(ErrorKind::kInvalid, "invalid_type",
                                   "opt_in cannot be removed; set it to true or false.", "opt_in"));
  }
  auto defaults = DefaultsFor(store, call.who.tenant_id);
  if (!defaults.ok()) return ErrorResponse(defaults.error());
  for (int attempt = 0; attempt < kPatchAttempts; ++attempt) {
    auto current = store->GetUser(call.who.tenant_id, *id);
    if (!current.ok()) return ErrorResponse(current.error());
    Json doc = UserWritableJson(*current);
    doc.merge_patch(*patch);
    auto user = ReadUser(doc, *defaults, false);
    if (!user.ok()) return ErrorResponse(user.error());
    user->tenant_id = call.who.tenant_id;
    user->external_id = *id;
    auto stored = store->PutUser(*user, current->version);
    if (stored.ok()) return JsonResponse(200, UserJson(stored->user));
    if (stored.error().code != "version_conflict") return ErrorResponse(stored.error());
  }
  return ErrorResponse(MakeError(ErrorKind::kConflict, "version_conflict",
                                 "The user kept changing while this patch was applied; retry."));
}

}  // namespace

void RegisterUserRoutes(Router& router, ApiContext& ctx) {
  Store* store = ctx.store;
  router.Add({.method = "PUT",
              .pattern = "/v1/users/{external_id}",
              .auth = Auth::kTenant,
              .scope = "users:write",
              .fn = [store](const Call& call) { return PutUser(store, call); }});
  router.Add({.method = "PATCH",
              .pattern = "/v1/users/{external_id}",
              .auth = Auth::kTenant,
              .scope = "users:write",
              .fn = [store](const Call& call) { return PatchUser(store, call); }});
  router.Add({.method = "GET",
              .pattern = "/v1/users/{external_id}",
              .auth = Auth::kTenant,
              .scope = "users:read",
              .fn = [store](const Call& call) {
                auto id = ExternalIdParam(call);
                if (!id.ok()) return ErrorResponse(id.error());
                auto user = store->GetUser(call.who.tenant_id, *id);
                if (!user.ok()) return ErrorResponse(user.error());
                return JsonResponse(200, UserJson(*user));
              }});
  router.Add({.method = "DELETE",
              .pattern = "/v1/users/{external_id}",
              .auth = Auth::kTenant,
              .scope = "users:write",
              .fn = [store](const Call& call) {
                auto id = ExternalIdParam(call);
                if (!id.ok()) return ErrorResponse(id.error());
                if (auto s = store->DeleteUser(call.who.tenant_id, *id); !s.ok()) {
                  return ErrorResponse(s.error());
                }
                return NoContent();
              }});
  router.Add({.method = "POST",
              .pattern = "/v1/users/{external_id}/devices",
              .auth = Auth::kTenant,
              .scope = "users:write",
              .fn = [store](const Call& call) {
                auto id = ExternalIdParam(call);
                if (!id.ok()) return ErrorResponse(id.error());
                auto body = ParseJsonObject(call.request.body);
                if (!body.ok()) return ErrorResponse(body.error());
                auto device = ReadDevice(*body, "");
                if (!device.ok()) return ErrorResponse(device.error());
                auto stored = store->AddDevice(call.who.tenant_id, *id, std::move(*device));
                if (!stored.ok()) return ErrorResponse(stored.error());
                return JsonResponse(201, DeviceJson(*stored));
              }});
  router.Add({.method = "DELETE",
              .pattern = "/v1/users/{external_id}/devices/{device_id}",
              .auth = Auth::kTenant,
              .scope = "users:write",
              .fn = [store](const Call& call) {
                auto id = ExternalIdParam(call);
                if (!id.ok()) return ErrorResponse(id.error());
                auto s = store->RemoveDevice(call.who.tenant_id, *id, call.Param("device_id"));
                if (!s.ok()) return ErrorResponse(s.error());
                return NoContent();
              }});
}

}  // namespace herald::api

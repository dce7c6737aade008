// Tenant routes for groups and their members.
#include <string>

#include "api/routing.h"
#include "model/validation.h"

namespace herald::api {
namespace {

constexpr size_t kMaxBulkMembers = 10'000;

Json GroupJson(const Group& g) {
  return {{"key", g.key},
          {"name", g.name},
          {"member_count", g.member_count},
          {"created_at", FormatRfc3339(g.created_at)}};
}

Result<std::string> GroupKeyParam(const Call& call) {
  std::string key(call.Param("group_key"));
  if (auto s = ValidateGroupKey(key, "group_key"); !s.ok()) return s.take_error();
  return key;
}

http::Response PutGroup(Store* store, const Call& call) {
  auto key = GroupKeyParam(call);
  if (!key.ok()) return ErrorResponse(key.error());
  Group group;
  group.tenant_id = call.who.tenant_id;
  group.key = *key;
  if (!call.request.body.empty()) {
    auto body = ParseJsonObject(call.request.body);
    if (!body.ok()) return ErrorResponse(body.error());
    if (auto s = CheckFields(*body, {"name"}); !s.ok()) return ErrorResponse(s.error());
    auto name = GetString(*body, "name", "name");
    if (!name.ok()) return ErrorResponse(name.error());
    group.name = name->value_or("");
    if (auto s = ValidateName(group.name, "name"); !s.ok()) return ErrorResponse(s.error());
  }
  const bool existed = store->GetGroup(group.tenant_id, group.key).ok();
  auto stored = store->PutGroup(group);
  if (!stored.ok()) return ErrorResponse(stored.error());
  return JsonResponse(existed ? 200 : 201, GroupJson(*stored));
}

http::Response AddMembers(Store* store, const Call& call) {
  auto key = GroupKeyParam(call);
  if (!key.ok()) return ErrorResponse(key.error());
  auto body = ParseJsonObject(call.request.body);
  if (!body.ok()) return ErrorResponse(body.error());
  if (auto s = CheckFields(*body, {"users"}); !s.ok()) return ErrorResponse(s.error());
  auto users = body->find("users");
  if (users == body->end() || !users->is_array() || users->empty() ||
      users->size() > kMaxBulkMembers) {
    return ErrorResponse(MakeError(ErrorKind::kInvalid, "invalid_users",
                                   "users must be a list of 1-10000 external ids.", "users"));
  }
  std::vector<std::string> ids;
  ids.reserve(users->size());
  for (size_t i = 0; i < users->size(); ++i) {
    const std::string path = "users[" + std::to_string(i) + "]";
    const Json& u = (*users)[i];
    if (!u.is_string()) {
      return ErrorResponse(MakeError(ErrorKind::kInvalid, "invalid_type",
                                     path + " must be a string (an external id).", path));
    }
    if (auto s = ValidateExternalId(u.get_ref<const std::string&>(), path); !s.ok()) {
      return ErrorResponse(s.error());
    }
    ids.push_back(u.get<std::string>());
  }
  auto unknown = store->AddMembers(call.who.tenant_id, *key, ids);
  if (!unknown.ok()) return ErrorResponse(unknown.error());
  return JsonResponse(200, {{"added", ids.size() - unknown->size()}, {"unknown_users", *unknown}});
}

}  // namespace

void RegisterGroupRoutes(Router& router, ApiContext& ctx) {
  Store* store = ctx.store;
  router.Add({.method = "PUT",
              .pattern = "/v1/groups/{group_key}",
              .auth = Auth::kTenant,
              .scope = "users:write",
              .fn = [store](const Call& call) { return PutGroup(store, call); }});
  router.Add({.method = "GET",
              .pattern = "/v1/groups/{group_key}",
              .auth = Auth::kTenant,
              .scope = "users:read",
              .fn = [store](const Call& call) {
                auto key = GroupKeyParam(call);
                if (!key.ok()) return ErrorResponse(key.error());
                auto group = store->GetGroup(call.who.tenant_id, *key);
                if (!group.ok()) return ErrorResponse(group.error());
                return JsonResponse(200, GroupJson(*group));
              }});
  router.Add({.method = "DELETE",
              .pattern = "/v1/groups/{group_key}",
              .auth = Auth::kTenant,
              .scope = "users:write",
              .fn = [store](const Call& call) {
                auto key = GroupKeyParam(call);
                if (!key.ok()) return ErrorResponse(key.error());
                if (auto s = store->DeleteGroup(call.who.tenant_id, *key); !s.ok()) {
                  return ErrorResponse(s.error());
                }
                return NoContent();
              }});
  router.Add({.method = "GET",
              .pattern = "/v1/groups/{group_key}/members",
              .auth = Auth::kTenant,
              .scope = "users:read",
              .fn = [store](const Call& call) {
                auto key = GroupKeyParam(call);
                if (!key.ok()) return ErrorResponse(key.error());
                auto page = ReadPage(call.request);
                if (!page.ok()) return ErrorResponse(page.error());
                auto members = store->ListMembers(call.who.tenant_id, *key, *page);
                if (!members.ok()) return ErrorResponse(members.error());
                return JsonResponse(
                    200, {{"users", members->items}, {"next_cursor", members->next_cursor}});
              }});
  router.Add({.method = "POST",
              .pattern = "/v1/groups/{group_key}/members",
              .auth = Auth::kTenant,
              .scope = "users:write",
              .fn = [store](const Call& call) { return AddMembers(store, call); }});
  router.Add({.method = "PUT",
              .pattern = "/v1/groups/{group_key}/members/{external_id}",
              .auth = Auth::kTenant,
              .scope = "users:write",
              .fn = [store](const Call& call) {
                auto key = GroupKeyParam(call);
                if (!key.ok()) return ErrorResponse(key.error());
                std::string id(call.Param("external_id"));
                if (auto s = ValidateExternalId(id, "external_id"); !s.ok()) {
                  return ErrorResponse(s.error());
                }
                if (auto s = store->AddMember(call.who.tenant_id, *key, id); !s.ok()) {
                  return ErrorResponse(s.error());
                }
                return NoContent();
              }});
  router.Add({.method = "DELETE",
              .pattern = "/v1/groups/{group_key}/members/{external_id}",
              .auth = Auth::kTenant,
              .scope = "users:write",
              .fn = [store](const Call& call) {
                auto key = GroupKeyParam(call);
                if (!key.ok()) return ErrorResponse(key.error());
                auto s = store->RemoveMember(call.who.tenant_id, *key, call.Param("external_id"));
                if (!s.ok()) return ErrorResponse(s.error());
                return NoContent();
              }});
}

}  // namespace herald::api

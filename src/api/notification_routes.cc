// Tenant routes for sending notifications and following them: the send itself (with
// idempotency), its status and counts, its deliveries, cancellation, and a user's timeline.
#include <string>

#include "api/notification_codec.h"
#include "api/routing.h"
#include "model/validation.h"
#include "observe/log.h"

namespace herald::api {
namespace {

constexpr int64_t kMinuteMillis = 60'000;

Error Invalid(std::string code, std::string message, std::string field) {
  return MakeError(ErrorKind::kInvalid, std::move(code), std::move(message), std::move(field));
}

// The position of `key` in the request's to.groups, for an error that names the field as sent.
std::string GroupPath(const Json& doc, const std::string& key) {
  const Json& groups = doc["to"]["groups"];
  for (size_t i = 0; i < groups.size(); ++i) {
    if (groups[i] == key) return "to.groups[" + std::to_string(i) + "]";
  }
  return "to.groups";
}

// Named groups must exist: a misspelt key would otherwise send to nobody without a word.
// (Unknown users are not an error: a tenant's user list changes all the time, and the fan-out
// skips those it cannot find.)
Status CheckGroupsExist(Store* store, const std::string& tenant_id, const Json& doc,
                        const Notification& n) {
  auto missing = store->MissingGroups(tenant_id, n.to_groups);
  if (!missing.ok()) return missing.take_error();
  if (missing->empty()) return Status::Ok();
  // Name the first missing group.
  const std::string& key = missing->front();
  std::string path = GroupPath(doc, key);
  std::string message = path;
  message += " names the group \"";
  message += key;
  message +=
      "\", which does not exist; create it with PUT /v1/groups/{group_key} or "
      "fix the key.";
  return Invalid("group_not_found", std::move(message), std::move(path));
}

http::Response Accepted(const Notification& n, bool replayed) {
  auto r = JsonResponse(202, AcceptedJson(n));
  r.headers.emplace_back("Location", "/v1/notifications/" + n.id);
  if (replayed) r.headers.emplace_back("Idempotent-Replayed", "true");
  return r;
}

http::Response Send(const ApiContext& ctx, const Call& call) {
  auto key = ReadIdempotencyKey(call.request.FindHeader("idempotency-key"));
  if (!key.ok()) return ErrorResponse(key.error());
  auto doc = ParseJsonObject(call.request.body);
  if (!doc.ok()) return ErrorResponse(doc.error());
  auto n = ReadSendRequest(*doc);
  if (!n.ok()) return ErrorResponse(n.error());
  const std::string& tenant_id = call.who.tenant_id;
  if (Status s = CheckGroupsExist(ctx.store, tenant_id, *doc, *n); !s.ok()) {
    return ErrorResponse(s.error());
  }
  auto tenant = ctx.store->GetTenant(tenant_id);
  if (!tenant.ok()) return ErrorResponse(tenant.error());
  n->tenant_id = tenant_id;
  n->idempotency_key = std::move(*key);
  n->request_hash = SendRequestHash(*n);
  n->accepted_at = NowMillis();
  n->deadline = n->accepted_at + tenant->delivery_deadline_minutes * kMinuteMillis;
  auto stored = ctx.store->CreateNotification(*n);
  if (!stored.ok()) return ErrorResponse(stored.error());
  const Notification& first = stored->notification;
  if (!stored->created) {
    if (first.request_hash != n->request_hash) {
      return ErrorResponse(
          MakeError(ErrorKind::kConflict, "idempotency_key_reused",
                    "This Idempotency-Key was already used for a different notification (" +
                        first.id + "); use a new key for a new notification.",
                    "Idempotency-Key"));
    }
    return Accepted(first, true);
  }
  if (ctx.options.on_notification) {
    try {
      ctx.options.on_notification(first.id);
    } catch (const std::exception& e) {
      // The notification is durable: the fan-out finds it at the next start even if this failed.
      observe::Error("on_notification threw", {{"notification", first.id}, {"what", e.what()}});
    }
  }
  return Accepted(first, false);
}

http::Response ListDeliveries(Store* store, const Call& call) {
  auto page = ReadPage(call.request);
  if (!page.ok()) return ErrorResponse(page.error());
  std::optional<DeliveryStatus> status;
  if (const std::string* text = call.request.Query("status")) {
    status = ParseDeliveryStatus(*text);
    if (!status) {
      std::string valid;
      for (DeliveryStatus s : kAllDeliveryStatuses) {
        valid += (valid.empty() ? "" : ", ") + std::string(ToString(s));
      }
      return ErrorResponse(
          Invalid("invalid_status", "status must be one of " + valid + ".", "status"));
    }
  }
  auto list = store->ListDeliveries(call.who.tenant_id, call.Param("id"), status, *page);
  if (!list.ok()) return ErrorResponse(list.error());
  Json items = Json::array();
  for (const Delivery& d : list->items) items.push_back(DeliveryJson(d));
  return JsonResponse(200, {{"deliveries", std::move(items)}, {"next_cursor", list->next_cursor}});
}

http::Response ListUserEvents(Store* store, const Call& call) {
  const std::string id(call.Param("external_id"));
  if (Status s = ValidateExternalId(id, "external_id"); !s.ok()) return ErrorResponse(s.error());
  auto page = ReadPage(call.request);
  if (!page.ok()) return ErrorResponse(page.error());
  auto list = store->ListUserEvents(call.who.tenant_id, id, *page);
  if (!list.ok()) return ErrorResponse(list.error());
  Json items = Json::array();
  for (const DeliveryEvent& e : list->items) items.push_back(EventJson(e));
  return JsonResponse(200, {{"events", std::move(items)}, {"next_cursor", list->next_cursor}});
}

}  // namespace

void RegisterNotificationRoutes(Router& router, ApiContext& ctx) {
  const ApiContext* c = &ctx;
  Store* store = ctx.store;
  router.Add({.method = "POST",
              .pattern = "/v1/notifications",
              .auth = Auth::kTenant,
              .scope = "notifications:send",
              .fn = [c](const Call& call) { return Send(*c, call); }});
  router.Add({.method = "GET",
              .pattern = "/v1/notifications/{id}",
              .auth = Auth::kTenant,
              .scope = "notifications:read",
              .fn = [store](const Call& call) {
                auto n = store->GetNotification(call.who.tenant_id, call.Param("id"));
                if (!n.ok()) return ErrorResponse(n.error());
                return JsonResponse(200, NotificationJson(*n));
              }});
  router.Add({.method = "DELETE",
              .pattern = "/v1/notifications/{id}",
              .auth = Auth::kTenant,
              .scope = "notifications:send",
              .fn = [store](const Call& call) {
                auto cancelled = store->CancelNotification(call.who.tenant_id, call.Param("id"));
                if (!cancelled.ok()) return ErrorResponse(cancelled.error());
                return JsonResponse(200, {{"id", call.Param("id")}, {"cancelled", *cancelled}});
              }});
  router.Add({.method = "GET",
              .pattern = "/v1/notifications/{id}/deliveries",
              .auth = Auth::kTenant,
              .scope = "notifications:read",
              .fn = [store](const Call& call) { return ListDeliveries(store, call); }});
  router.Add({.method = "GET",
              .pattern = "/v1/users/{external_id}/events",
              .auth = Auth::kTenant,
              .scope = "events:read",
              .fn = [store](const Call& call) { return ListUserEvents(store, call); }});
}

}  // namespace herald::api

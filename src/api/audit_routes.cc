// GET /v1/audit — the tenant's audit trail, newest first.
#include "api/routing.h"
#include "common/sealed_ids.h"

namespace herald::api {

void RegisterAuditRoutes(Router& router, ApiContext& ctx) {
  Store* store = ctx.store;
  router.Add(
      {.method = "GET",
       .pattern = "/v1/audit",
       .auth = Auth::kTenant,
       .scope = "audit:read",
       .fn = [store](const Call& call) {
         auto page = ReadPage(call.request);
         if (!page.ok()) return ErrorResponse(page.error());
         auto records = store->ListAudit(call.who.tenant_id, *page);
         if (!records.ok()) return ErrorResponse(records.error());
         Json items = Json::array();
         for (const auto& r : records->items) {
           items.push_back({{"id", "aud_" + SealRowKey('a', r.id)},
                            {"at", FormatRfc3339(r.at)},
                            {"actor", r.actor},
                            {"method", r.method},
                            {"route", r.route},
                            {"status", r.status},
                            {"request_id", r.request_id},
                            {"latency_us", r.latency_us}});
         }
         return JsonResponse(200, {{"records", items}, {"next_cursor", records->next_cursor}});
       }});
}

}  // namespace herald::api

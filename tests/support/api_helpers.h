// Helpers shared by the end-to-end tests: tenants and keys through the admin API, error-body
// assertions, time formatting and Prometheus parsing.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "support/http_client.h"

namespace herald::e2e {

inline const std::vector<std::string>& AllScopes() {
  static const std::vector<std::string> kAll = {"users:read",         "users:write",
                                                "notifications:send", "notifications:read",
                                                "events:read",        "audit:read"};
  return kAll;
}

struct TenantKey {
  std::string tenant_id;
  std::string key_id;
  std::string key;  // the bearer secret
};

// Creates a tenant (deadline 15 min, 365 consent days) and one key with `scopes`. Records a
// test failure and returns empty fields when the admin API refuses.
TenantKey CreateTenantWithKey(HttpClient& admin, const std::string& name,
                              const std::vector<std::string>& scopes = AllScopes());
// Mints another key for an existing tenant.
TenantKey CreateKey(HttpClient& admin, const std::string& tenant_id, const std::string& name,
                    const std::vector<std::string>& scopes = AllScopes());

// Success when `r` has `status` and a JSON error body {"error":{code,message,field}} with `code`,
// a non-empty message and, when `field` is given, that field.
::testing::AssertionResult IsError(const HttpResponse& r, int status, const std::string& code,
                                   const std::optional<std::string>& field = std::nullopt);

// Percent-encodes every byte outside [A-Za-z0-9-._~] (for path segments).
std::string PathEscape(std::string_view segment);

// RFC 3339 UTC with milliseconds: 2026-11-24T06:00:00.123Z.
std::string Rfc3339(std::chrono::system_clock::time_point t);

// The value of an unlabelled sample `name` in Prometheus text, or nullopt.
std::optional<double> MetricValue(const std::string& exposition, const std::string& name);
// The sum of the samples of `name` whose labels contain `label` (e.g. `code="rate_limited"`);
// 0 when there are none.
double MetricSum(const std::string& exposition, const std::string& name,
                 const std::string& label = "");

// NDJSON of `users` users `<prefix><i>`, each with an iOS device (an APNs token made from i) and
// an Android device, all in group "all": the audience of the end-to-end send suites.
std::string PushAudience(int users, const std::string& prefix = "u");

// A user body for PUT with the given name and devices; opt_in true.
nlohmann::json UserBody(const std::string& name,
                        const nlohmann::json& devices = nlohmann::json::array(),
                        const nlohmann::json& groups = nlohmann::json::array());

}  // namespace herald::e2e

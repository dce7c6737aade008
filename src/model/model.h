// Herald's value types. Plain data, no behaviour beyond conversions: every component may include
// this header. Times are UnixMillis (common/clock.h). Texts here are plaintext; the store
// encrypts what is PII (names, device addresses) before it reaches the disk.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"

namespace herald {

enum class Channel { kIos, kAndroid, kEmail, kSms };
inline constexpr Channel kAllChannels[] = {Channel::kIos, Channel::kAndroid, Channel::kEmail,
                                           Channel::kSms};

std::string_view ToString(Channel c);                     // "ios", "android", "email", "sms"
std::optional<Channel> ParseChannel(std::string_view s);  // inverse of ToString

// The classes of a tenant's API traffic that are rate-limited apart (api/rate_limiter.h).
enum class RateClass { kSends, kUserWrites, kImports, kReads };
inline constexpr RateClass kAllRateClasses[] = {RateClass::kSends, RateClass::kUserWrites,
                                                RateClass::kImports, RateClass::kReads};
inline constexpr size_t kRateClassCount = std::size(kAllRateClasses);
std::string_view ToString(RateClass c);  // "sends", "user_writes", "imports", "reads"
std::optional<RateClass> ParseRateClass(std::string_view s);

// `limit` requests per `window_s` seconds: a token bucket that holds `limit` and refills at
// limit / window_s per second. `per_key_limit` > 0 also gives each API key of the tenant a
// bucket of its own of that size (same window), so one leaked key cannot use the whole quota.
struct RateQuota {
  int64_t limit = 0;
  int64_t window_s = 1;
  int64_t per_key_limit = 0;
  bool operator==(const RateQuota&) const = default;
};

// A tenant's own quotas by class; a class without one uses the server's default.
struct RateLimits {
  std::array<std::optional<RateQuota>, kRateClassCount> quotas;
  std::optional<RateQuota>& operator[](RateClass c) { return quotas[static_cast<size_t>(c)]; }
  const std::optional<RateQuota>& operator[](RateClass c) const {
    return quotas[static_cast<size_t>(c)];
  }
  bool operator==(const RateLimits&) const = default;
};
// The stored form, "sends=100/1/0;imports=5/60/0" (class=limit/window/per-key); Decode skips
// parts it cannot read.
std::string EncodeRateLimits(const RateLimits& limits);
RateLimits DecodeRateLimits(std::string_view text);

struct Tenant {
  std::string id;  // minted: "ten_" + 20 base32 chars
  std::string name;
  int delivery_deadline_minutes = 15;  // [10, 30]
  int default_consent_days = 365;      // [1, 36500]
  UnixMillis created_at = 0;
  UnixMillis updated_at = 0;
  RateLimits rate_limits;  // the admin's overrides of the server's default quotas
};

// Scopes an API key may hold.
inline constexpr std::string_view kScopes[] = {"users:read",         "users:write",
                                               "notifications:send", "notifications:read",
                                               "events:read",        "audit:read"};

struct ApiKey {
  std::string id;  // minted: "key_" + 20 base32 chars; also the public prefix of the secret
  std::string tenant_id;
  std::string name;
  std::vector<std::string> scopes;
  UnixMillis created_at = 0;
  std::optional<UnixMillis> revoked_at;
};

struct Device {
  std::string id;  // minted: "dev_" + 20 base32 chars; kept when a PUT repeats the same address
  Channel channel = Channel::kEmail;
  std::string address;  // normalised: E.164 for sms, lower-cased domain for email
  bool disabled = false;
  UnixMillis created_at = 0;
};

struct User {
  std::string tenant_id;
  std::string external_id;  // the tenant's own id: 1-128 bytes, no control characters
  std::string name;         // at most 256 bytes
  bool opt_in = true;
  UnixMillis consent_from = 0;
  UnixMillis consent_until = 0;     // > consent_from
  std::vector<Device> devices;      // at most 16
  std::vector<std::string> groups;  // group keys, sorted, unique
  int64_t version = 0;              // bumped by every write; PutUser may require the current one
  UnixMillis created_at = 0;
  UnixMillis updated_at = 0;
};

struct Group {
  std::string tenant_id;
  std::string key;   // 1-128 bytes of [A-Za-z0-9_.:-]
  std::string name;  // optional display name, at most 256 bytes (not PII: no encryption)
  int64_t member_count = 0;
  UnixMillis created_at = 0;
};

struct AuditRecord {
  int64_t id = 0;  // assigned by the store, increasing
  UnixMillis at = 0;
  std::string tenant_id;  // empty for admin calls that name no tenant and for anonymous calls
  std::string actor;      // "admin", an API key id, or "anonymous"
  std::string method;
  std::string route;  // the route pattern, e.g. "/v1/users/{external_id}": never an id
  int status = 0;
  std::string request_id;
  int64_t latency_us = 0;
};

// Provider settings of a tenant for one channel: an ordered list of provider names and their
// configuration as a JSON document (credentials included: the store keeps it encrypted).
struct ProviderSettings {
  std::string tenant_id;
  Channel channel = Channel::kEmail;
  std::string config_json;
  UnixMillis updated_at = 0;
};

}  // namespace herald

// Rate limits of the API (DESIGN N1): token buckets per tenant and route class (sends, user
// writes, imports, reads), optionally per API key, per client address for failed
// authentications, and a global budget for what unauthenticated traffic may write to the audit
// trail. In memory, per process: with N API processes behind a balancer, each enforces 1/N of
// every quota (Options::processes), so the whole fleet holds the quota while the balancer
// spreads a client's requests (docs/architecture.md says why there is no shared counter).
//
// Thread-safety: every method may be called from any thread. Buckets live in shards, each
// behind its own mutex; idle buckets that have refilled are dropped, so memory follows the
// active clients, not every address ever seen.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/clock.h"
#include "model/model.h"

namespace herald::api {

struct RateLimiterOptions {
  // The defaults for tenants without quotas of their own (DESIGN: sane for a service whose
  // sends reach many devices each).
  std::array<RateQuota, kRateClassCount> defaults = {
      RateQuota{100, 1, 0},             // sends: 100 notifications a second
      RateQuota{1000, 1, 0},            // user_writes
      RateQuota{10, 60, 0},             // imports: ten bulk imports a minute
      RateQuota{1000, 1, 0}};           // reads
  RateQuota failed_auth{60, 60, 0};     // failed authentications per client address
  RateQuota anonymous_audit{50, 1, 0};  // audit rows of unauthenticated requests, in all
  RateQuota refused_audit{10, 1, 0};    // audit rows of 429 answers, per tenant
  int processes = 1;                    // API processes that share the quotas
  std::function<UnixMillis()> clock = NowMillis;
};

// What one bucket said: the values of the RateLimit and RateLimit-Policy headers.
struct RateDecision {
  bool allowed = true;
  std::string policy;         // "sends", or "sends-per-key"
  int64_t quota = 0;          // q: requests per window (this process's share)
  int64_t window_s = 1;       // w
  int64_t remaining = 0;      // r
  int64_t reset_s = 0;        // t: seconds until the bucket is full again
  int64_t retry_after_s = 0;  // when !allowed: seconds until one request is allowed
};

class RateLimiter {
 public:
  explicit RateLimiter(RateLimiterOptions options = {});
  ~RateLimiter();
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // The quota in force for a tenant's class: its own, else the default.
  RateQuota QuotaFor(const RateLimits& tenant_limits, RateClass c) const;

  // Takes one request of class `c` from the tenant's bucket and, when the quota has a
  // per-key limit, from the key's: allowed only when both have a token (neither is charged
  // otherwise). The decision reported is the tighter bucket's.
  RateDecision Take(RateClass c, std::string_view tenant_id, std::string_view key_id,
                    const RateLimits& tenant_limits);

  // Failed authentications from one client address: Blocked is true (with the decision to
  // answer 429 with) once the address has used its quota; RecordAuthFailure uses one.
  bool AuthBlocked(std::string_view remote, RateDecision* decision);
  void RecordAuthFailure(std::string_view remote);

  // Whether an audit row may be written for an unauthenticated request (global budget), or for
  // a 429 answer of this tenant (per tenant); the rest are only counted.
  bool AdmitAnonymousAudit();
  bool AdmitRefusedAudit(std::string_view tenant_id);

  // Buckets held now (for tests and metrics).
  size_t buckets() const;

 private:
  struct Bucket {
    double tokens = 0;
    UnixMillis at = 0;  // when `tokens` was last brought up to date
    double capacity = 1;
    double per_ms = 0;  // refill rate
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, Bucket> buckets;
    size_t sweep_at = 1024;  // sweep idle buckets when the map grows past this
  };

  // The share of `q` this process enforces.
  RateQuota Local(RateQuota q) const;
  Shard& ShardOf(const std::string& key);
  // Refills the bucket (creating it full) and reports it; takes a token when `take` and one is
  // there. Call with the shard's lock held.
  RateDecision Refill(Shard& shard, const std::string& key, const RateQuota& q,
                      std::string_view policy, UnixMillis now, bool take);
  void Sweep(Shard& shard, UnixMillis now);
  bool Admit(const std::string& key, const RateQuota& q);

  RateLimiterOptions options_;
  static constexpr size_t kShards = 16;
  std::array<Shard, kShards> shards_;
};

// The quotas each tenant set, read from the store at most every refresh_ms per tenant (a
// change made through this process applies at once: Put). Thread-safe.
class TenantQuotas {
 public:
  using Loader = std::function<std::optional<RateLimits>(const std::string& tenant_id)>;
  TenantQuotas(Loader loader, int refresh_ms = 5'000,
               std::function<UnixMillis()> clock = NowMillis);
  // The tenant's limits; the defaults (empty) when it cannot be read.
  RateLimits Get(const std::string& tenant_id);
  void Put(const std::string& tenant_id, const RateLimits& limits);

 private:
  struct Entry {
    RateLimits limits;
    UnixMillis read_at = 0;
  };
  Loader loader_;
  int refresh_ms_;
  std::function<UnixMillis()> clock_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace herald::api

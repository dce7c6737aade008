#include "api/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace herald::api {
namespace {

// Seconds, rounded up, for `tokens` to flow in at `per_ms`.
int64_t SecondsFor(double tokens, double per_ms) {
  if (tokens <= 0) return 0;
  return static_cast<int64_t>(std::ceil(tokens / per_ms / 1000.0));
}

}  // namespace

RateLimiter::RateLimiter(RateLimiterOptions options) : options_(std::move(options)) {
  if (options_.processes < 1) options_.processes = 1;
  if (!options_.clock) options_.clock = NowMillis;
}

RateLimiter::~RateLimiter() = default;

RateQuota RateLimiter::QuotaFor(const RateLimits& tenant_limits, RateClass c) const {
  const std::optional<RateQuota>& own = tenant_limits[c];
  return own ? *own : options_.defaults[static_cast<size_t>(c)];
}

RateQuota RateLimiter::Local(RateQuota q) const {
  if (options_.processes > 1) {
    q.limit = std::max<int64_t>(1, q.limit / options_.processes);
    if (q.per_key_limit > 0) {
      q.per_key_limit = std::max<int64_t>(1, q.per_key_limit / options_.processes);
    }
  }
  return q;
}

RateLimiter::Shard& RateLimiter::ShardOf(const std::string& key) {
  return shards_[std::hash<std::string>()(key) % kShards];
}

RateDecision RateLimiter::Refill(Shard& shard, const std::string& key, const RateQuota& q,
                                 std::string_view policy, UnixMillis now, bool take) {
  const auto capacity = static_cast<double>(std::max<int64_t>(1, q.limit));
  const double per_ms = capacity / (static_cast<double>(std::max<int64_t>(1, q.window_s)) * 1000);
  auto [it, fresh] = shard.buckets.try_emplace(key, Bucket{capacity, now, capacity, per_ms});
  Bucket& b = it->second;
  if (!fresh && now > b.at) {
    b.tokens = std::min(b.capacity, b.tokens + static_cast<double>(now - b.at) * b.per_ms);
  }
  if (b.capacity != capacity) {
    // The quota changed: what was used of it stays used, the difference is there at once.
    b.tokens = std::clamp(b.tokens + capacity - b.capacity, 0.0, capacity);
    b.capacity = capacity;
  }
  b.per_ms = per_ms;
  b.at = std::max(b.at, now);
  RateDecision d;
  d.policy = std::string(policy);
  d.quota = static_cast<int64_t>(capacity);
  d.window_s = std::max<int64_t>(1, q.window_s);
  if (take && b.tokens >= 1) {
    b.tokens -= 1;
  } else if (take) {
    d.allowed = false;
    d.retry_after_s = std::max<int64_t>(1, SecondsFor(1 - b.tokens, per_ms));
  }
  d.remaining = static_cast<int64_t>(std::floor(b.tokens));
  d.reset_s = SecondsFor(capacity - b.tokens, per_ms);
  if (shard.buckets.size() > shard.sweep_at) Sweep(shard, now);
  return d;
}

void RateLimiter::Sweep(Shard& shard, UnixMillis now) {
  // A bucket that has refilled to the brim holds nothing a new one would not: drop it.
  std::erase_if(shard.buckets, [now](const auto& entry) {
    const Bucket& b = entry.second;
    return b.tokens + static_cast<double>(std::max<UnixMillis>(0, now - b.at)) * b.per_ms >=
           b.capacity;
  });
  shard.sweep_at = std::max<size_t>(1024, shard.buckets.size() * 2);
}

RateDecision RateLimiter::Take(RateClass c, std::string_view tenant_id, std::string_view key_id,
                               const RateLimits& tenant_limits) {
  const RateQuota q = Local(QuotaFor(tenant_limits, c));
  const std::string name(ToString(c));
  const UnixMillis now = options_.clock();
  const std::string tenant_key = "t/" + name + "/" + std::string(tenant_id);
  Shard& tenant_shard = ShardOf(tenant_key);
  RateDecision tenant;
  {
    std::lock_guard lock(tenant_shard.mu);
    tenant = Refill(tenant_shard, tenant_key, q, name, now, true);
  }
  if (q.per_key_limit <= 0 || key_id.empty()) return tenant;
  const std::string key_key = "k/" + name + "/" + std::string(key_id);
  Shard& key_shard = ShardOf(key_key);
  RateDecision key;
  {
    std::lock_guard lock(key_shard.mu);
    key = Refill(key_shard, key_key, RateQuota{q.per_key_limit, q.window_s, 0}, name + "-per-key",
                 now, tenant.allowed);
  }
  if (tenant.allowed && !key.allowed) {
    // Refused by the key's bucket: the tenant's token goes back.
    std::lock_guard lock(tenant_shard.mu);
    auto it = tenant_shard.buckets.find(tenant_key);
    if (it != tenant_shard.buckets.end()) it->second.tokens += 1;
    return key;
  }
  if (!tenant.allowed) return tenant;
  return key.remaining < tenant.remaining ? key : tenant;
}

bool RateLimiter::AuthBlocked(std::string_view remote, RateDecision* decision) {
  const std::string key = "a/" + std::string(remote);
  Shard& shard = ShardOf(key);
  std::lock_guard lock(shard.mu);
  if (!shard.buckets.contains(key)) return false;  // no failure lately: no bucket
  RateDecision d = Refill(shard, key, options_.failed_auth, "failed-authentications",
                          options_.clock(), /*take=*/false);
  if (d.remaining >= 1) return false;
  const Bucket& b = shard.buckets[key];
  d.allowed = false;
  d.retry_after_s = std::max<int64_t>(1, SecondsFor(1 - b.tokens, b.per_ms));
  if (decision != nullptr) *decision = d;
  return true;
}

void RateLimiter::RecordAuthFailure(std::string_view remote) {
  const std::string key = "a/" + std::string(remote);
  Shard& shard = ShardOf(key);
  std::lock_guard lock(shard.mu);
  Refill(shard, key, options_.failed_auth, "failed-authentications", options_.clock(), true);
}

bool RateLimiter::Admit(const std::string& key, const RateQuota& q) {
  Shard& shard = ShardOf(key);
  std::lock_guard lock(shard.mu);
  return Refill(shard, key, q, "audit", options_.clock(), true).allowed;
}

bool RateLimiter::AdmitAnonymousAudit() { return Admit("x/anonymous", options_.anonymous_audit); }

bool RateLimiter::AdmitRefusedAudit(std::string_view tenant_id) {
  return Admit("x/429/" + std::string(tenant_id), options_.refused_audit);
}

size_t RateLimiter::buckets() const {
  size_t n = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    n += shard.buckets.size();
  }
  return n;
}

TenantQuotas::TenantQuotas(Loader loader, int refresh_ms, std::function<UnixMillis()> clock)
    : loader_(std::move(loader)), refresh_ms_(refresh_ms), clock_(std::move(clock)) {}

RateLimits TenantQuotas::Get(const std::string& tenant_id) {
  const UnixMillis now = clock_();
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(tenant_id);
    if (it != entries_.end() && now - it->second.read_at < refresh_ms_) return it->second.limits;
  }
  std::optional<RateLimits> read = loader_ ? loader_(tenant_id) : std::nullopt;
  std::lock_guard lock(mu_);
  Entry& e = entries_[tenant_id];
  if (read) e.limits = *read;
  e.read_at = now;
  return e.limits;
}

void TenantQuotas::Put(const std::string& tenant_id, const RateLimits& limits) {
  std::lock_guard lock(mu_);
  entries_[tenant_id] = Entry{limits, clock_()};
}

}  // namespace herald::api

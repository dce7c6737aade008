// The token buckets behind the API's rate limits, on a clock the test moves.
#include "api/rate_limiter.h"

#include <gtest/gtest.h>

#include <memory>

namespace herald::api {
namespace {

class RateLimiterTest : public ::testing::Test {
 protected:
  RateLimiter Make(RateLimiterOptions options = {}) {
    options.clock = [this] { return now_; };
    return RateLimiter(std::move(options));
  }
  static RateLimits Sends(int64_t limit, int64_t window_s, int64_t per_key = 0) {
    RateLimits l;
    l[RateClass::kSends] = RateQuota{limit, window_s, per_key};
    return l;
  }
  UnixMillis now_ = 1'000'000;
};

TEST_F(RateLimiterTest, AQuotaIsABucketThatRefillsAtLimitPerWindow) {
  RateLimiter limiter = Make();
  const RateLimits limits = Sends(10, 10);  // one a second, ten at once
  for (int i = 0; i < 10; ++i) {
    const RateDecision d = limiter.Take(RateClass::kSends, "t", "k", limits);
    ASSERT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.remaining, 9 - i);
    EXPECT_EQ(d.quota, 10);
    EXPECT_EQ(d.window_s, 10);
    EXPECT_EQ(d.policy, "sends");
  }
  RateDecision refused = limiter.Take(RateClass::kSends, "t", "k", limits);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_s, 1);
  EXPECT_EQ(refused.reset_s, 10);
  now_ += 999;
  EXPECT_FALSE(limiter.Take(RateClass::kSends, "t", "k", limits).allowed);
  now_ += 1;
  EXPECT_TRUE(limiter.Take(RateClass::kSends, "t", "k", limits).allowed);
  EXPECT_FALSE(limiter.Take(RateClass::kSends, "t", "k", limits).allowed);
  // Other tenants and other classes are not touched.
  EXPECT_TRUE(limiter.Take(RateClass::kSends, "other", "k2", limits).allowed);
  EXPECT_TRUE(limiter.Take(RateClass::kReads, "t", "k", limits).allowed);
}

TEST_F(RateLimiterTest, TenantsWithoutQuotasGetTheDefaults) {
  RateLimiterOptions options;
  options.defaults[static_cast<size_t>(RateClass::kImports)] = RateQuota{2, 60, 0};
  RateLimiter limiter = Make(options);
  EXPECT_TRUE(limiter.Take(RateClass::kImports, "t", "k", {}).allowed);
  EXPECT_TRUE(limiter.Take(RateClass::kImports, "t", "k", {}).allowed);
  const RateDecision d = limiter.Take(RateClass::kImports, "t", "k", {});
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_s, 30);
}

TEST_F(RateLimiterTest, APerKeyLimitRefusesOneKeyWithoutChargingTheTenant) {
  RateLimiter limiter = Make();
  const RateLimits limits = Sends(10, 60, 3);
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(limiter.Take(RateClass::kSends, "t", "a", limits).allowed);
  const RateDecision refused = limiter.Take(RateClass::kSends, "t", "a", limits);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.policy, "sends-per-key");
  // The tenant has 7 left: another key can use them (its own three, the tenant's seven).
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(limiter.Take(RateClass::kSends, "t", "b", limits).allowed);
  const RateDecision tighter = limiter.Take(RateClass::kSends, "t", "c", limits);
  ASSERT_TRUE(tighter.allowed);
  EXPECT_EQ(tighter.policy, "sends-per-key") << "the tighter bucket is reported";
  EXPECT_EQ(tighter.remaining, 2);
  limiter.Take(RateClass::kSends, "t", "c", limits);  // the tenant's 8th
  limiter.Take(RateClass::kSends, "t", "d", limits);
  const RateDecision last = limiter.Take(RateClass::kSends, "t", "e", limits);
  ASSERT_TRUE(last.allowed);  // the 10th
  EXPECT_EQ(last.policy, "sends");
  EXPECT_EQ(last.remaining, 0);
  EXPECT_FALSE(limiter.Take(RateClass::kSends, "t", "f", limits).allowed) << "a fresh key too";
}

TEST_F(RateLimiterTest, SeveralProcessesEachEnforceTheirShare) {
  RateLimiterOptions options;
  options.processes = 4;
  RateLimiter limiter = Make(options);
  const RateLimits limits = Sends(100, 1);
  int allowed = 0;
  for (int i = 0; i < 100; ++i)
    allowed += limiter.Take(RateClass::kSends, "t", "k", limits).allowed;
  EXPECT_EQ(allowed, 25);
}

TEST_F(RateLimiterTest, ARaisedQuotaIsThereAtOnceAndALoweredOneKeepsWhatWasUsed) {
  RateLimiter limiter = Make();
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(limiter.Take(RateClass::kSends, "t", "", Sends(5, 60)).allowed);
  ASSERT_FALSE(limiter.Take(RateClass::kSends, "t", "", Sends(5, 60)).allowed);
  const RateDecision raised = limiter.Take(RateClass::kSends, "t", "", Sends(8, 60));
  ASSERT_TRUE(raised.allowed);
  EXPECT_EQ(raised.remaining, 2);
  limiter.Take(RateClass::kSends, "t", "", Sends(8, 60));
  EXPECT_FALSE(limiter.Take(RateClass::kSends, "t", "", Sends(3, 60)).allowed);
}

TEST_F(RateLimiterTest, AnAddressIsBlockedAfterItsFailedAuthenticationsAndRecovers) {
  RateLimiterOptions options;
  options.failed_auth = RateQuota{3, 60, 0};
  RateLimiter limiter = Make(options);
  RateDecision d;
  EXPECT_FALSE(limiter.AuthBlocked("10.0.0.1", &d)) << "no failures: no bucket";
  EXPECT_EQ(limiter.buckets(), 0u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(limiter.AuthBlocked("10.0.0.1", &d));
    limiter.RecordAuthFailure("10.0.0.1");
  }
  ASSERT_TRUE(limiter.AuthBlocked("10.0.0.1", &d));
  EXPECT_EQ(d.retry_after_s, 20);
  EXPECT_EQ(d.policy, "failed-authentications");
  EXPECT_FALSE(limiter.AuthBlocked("10.0.0.2", &d)) << "another address";
  now_ += 20'000;
  EXPECT_FALSE(limiter.AuthBlocked("10.0.0.1", &d));
}

TEST_F(RateLimiterTest, IdleBucketsAreDroppedSoMemoryFollowsTheActiveClients) {
  RateLimiter limiter = Make();
  for (int i = 0; i < 50'000; ++i) limiter.RecordAuthFailure("10.1." + std::to_string(i));
  EXPECT_GT(limiter.buckets(), 40'000u);
  now_ += 61'000;  // every one of them has refilled
  for (int i = 0; i < 50'000; ++i) limiter.RecordAuthFailure("10.2." + std::to_string(i));
  EXPECT_LT(limiter.buckets(), 60'000u) << "the refilled buckets were swept";
}

TEST_F(RateLimiterTest, AuditBudgetsAdmitABurstThenTheRate) {
  RateLimiterOptions options;
  options.anonymous_audit = RateQuota{5, 1, 0};
  options.refused_audit = RateQuota{2, 1, 0};
  RateLimiter limiter = Make(options);
  int anonymous = 0;
  for (int i = 0; i < 20; ++i) anonymous += limiter.AdmitAnonymousAudit();
  EXPECT_EQ(anonymous, 5);
  now_ += 400;
  EXPECT_TRUE(limiter.AdmitAnonymousAudit());
  EXPECT_TRUE(limiter.AdmitAnonymousAudit());
  EXPECT_FALSE(limiter.AdmitAnonymousAudit());
  EXPECT_TRUE(limiter.AdmitRefusedAudit("t"));
  EXPECT_TRUE(limiter.AdmitRefusedAudit("t"));
  EXPECT_FALSE(limiter.AdmitRefusedAudit("t"));
  EXPECT_TRUE(limiter.AdmitRefusedAudit("u")) << "per tenant";
}

TEST(TenantQuotasTest, ReadsAtMostEveryRefreshAndTakesLocalChangesAtOnce) {
  UnixMillis now = 0;
  int reads = 0;
  RateLimits stored;
  TenantQuotas quotas(
      [&](const std::string&) {
        ++reads;
        return std::optional<RateLimits>(stored);
      },
      5'000, [&] { return now; });
  stored[RateClass::kReads] = RateQuota{7, 1, 0};
  EXPECT_EQ(quotas.Get("t")[RateClass::kReads], (RateQuota{7, 1, 0}));
  stored[RateClass::kReads] = RateQuota{9, 1, 0};
  now += 4'999;
  EXPECT_EQ(quotas.Get("t")[RateClass::kReads], (RateQuota{7, 1, 0}));
  EXPECT_EQ(reads, 1);
  now += 1;
  EXPECT_EQ(quotas.Get("t")[RateClass::kReads], (RateQuota{9, 1, 0}));
  EXPECT_EQ(reads, 2);
  RateLimits patched;
  patched[RateClass::kSends] = RateQuota{1, 1, 0};
  quotas.Put("t", patched);
  EXPECT_EQ(quotas.Get("t"), patched);
  EXPECT_EQ(reads, 2);
}

}  // namespace
}  // namespace herald::api

// bench_api_checks: what the request checks of issue 8 cost per request, measured one by one on
// this machine (an end-to-end A/B cannot see a microsecond under the milliseconds of noise of a
// shared 2-core VM): the framing check of a request head, the tenant's quota (its limits looked
// up and a token taken), the rate headers written, and the sealing of a delivery id. Prints ns
// per call and the sum as a share of a single send's accept latency (--accept-us, default the
// p50 measured by bench_single_send).
//
//   build/bench_api_checks [--iterations=2000000] [--accept-us=1000]
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "api/rate_limiter.h"
#include "bench/bench_util.h"
#include "common/sealed_ids.h"
#include "http/wire.h"
#include "model/notification.h"

namespace herald {
namespace {

template <typename F>
double NanosPerCall(int iterations, F&& f) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) f(i);
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start)
             .count() /
         iterations;
}

int Main(int argc, char** argv) {
  const int n = std::stoi(bench::Flag(argc, argv, "iterations", "2000000"));
  const double accept_us = std::stod(bench::Flag(argc, argv, "accept-us", "1000"));
  // A typical API request head, as the server hands it over.
  const std::vector<std::pair<std::string, std::string>> head = {
      {"host", "api.herald.example:8443"},
      {"user-agent", "acme-backend/1.0"},
      {"accept", "*/*"},
      {"authorization", "Bearer hk_abcdefghijklmnopqrst_" + std::string(43, 'x')},
      {"content-type", "application/json"},
      {"content-length", "96"},
      {"idempotency-key", "7f1d0a54-2a8e-4e0b-9d5c-5f3e8b2a6c11"}};
  size_t sink = 0;
  const double framing =
      NanosPerCall(n, [&](int) { sink += http::CheckFraming(11, head).has_value(); });

  api::RateLimiterOptions options;
  options.defaults[static_cast<size_t>(RateClass::kSends)] = RateQuota{1'000'000'000, 1, 0};
  api::RateLimiter limiter(options);
  api::TenantQuotas quotas(
      [](const std::string&) { return std::optional<RateLimits>(RateLimits{}); });
  const std::string tenant = "ten_b2k7q4xw9m3hjd5tr8ca";
  const std::string key = "key_j5uckwe22xkbfxmwg3mw";
  const double quota = NanosPerCall(n, [&](int) {
    sink += limiter.Take(RateClass::kSends, tenant, key, quotas.Get(tenant)).remaining > 0;
  });
  api::RateDecision d = limiter.Take(RateClass::kSends, tenant, key, quotas.Get(tenant));
  const double headers = NanosPerCall(n, [&](int) {
    std::vector<std::pair<std::string, std::string>> h;
    h.emplace_back("RateLimit-Policy", "\"" + d.policy + "\";q=" + std::to_string(d.quota) +
                                           ";w=" + std::to_string(d.window_s));
    h.emplace_back("RateLimit", "\"" + d.policy + "\";r=" + std::to_string(d.remaining) +
                                    ";t=" + std::to_string(d.reset_s));
    sink += h.size();
  });
  const double seal = NanosPerCall(n, [&](int i) { sink += DeliveryIdOf(i + 1).size(); });
  const double open =
      NanosPerCall(n, [&](int i) { sink += DeliveryKeyOf(DeliveryIdOf(i + 1)).value_or(0) > 0; }) -
      seal;

  std::printf("framing check of a request head: %.0f ns\n", framing);
  std::printf("tenant quota (limits looked up, one token taken): %.0f ns\n", quota);
  std::printf("RateLimit headers: %.0f ns\n", headers);
  std::printf("delivery id sealed: %.0f ns, opened: %.0f ns\n", seal, open);
  const double per_request = framing + quota + headers;
  std::printf("per API request: %.2f us = %.3f %% of a %.0f us accept (target < 2 %%)\n",
              per_request / 1000, per_request / 10 / accept_us, accept_us);
  std::printf("per delivery (one id sealed): %.3f us\n", seal / 1000);
  return sink == 42 ? 1 : 0;  // keeps the work from being optimised away
}

}  // namespace
}  // namespace herald

int main(int argc, char** argv) { return herald::Main(argc, argv); }

// Consent-expiry benchmark: N users whose consent ends in the same second, the ConsentReaper
// running as in `herald serve`. Reports the erase lag (time from consent_until to the commit
// that erased the user) at p50 / p99 / max, and the time until the last one was gone.
//
//   build/bench_expiry [--users=100000]
#include <algorithm>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "crypto/crypto.h"
#include "observe/metrics.h"
#include "pipeline/consent_reaper.h"
#include "store/sqlite/sqlite_store.h"

namespace hb = herald::bench;

int main(int argc, char** argv) {
  using namespace herald;
  const int users = std::stoi(hb::Flag(argc, argv, "users", "100000"));
  crypto::InitCrypto();
  const auto dir = hb::TempDir("herald-bench-expiry");
  observe::Registry metrics;
  SqliteStoreOptions so;
  so.path = (dir / "herald.db").string();
  so.master_key = crypto::RandomKey();
  auto store = OpenSqliteStore(std::move(so));
  if (!store.ok()) return 1;
  Tenant t;
  t.name = "bench";
  auto tenant = (*store)->CreateTenant(t);

  // Everyone's consent ends at the same instant, a little after the load finishes.
  const UnixMillis load_start = NowMillis();
  std::fprintf(stderr, "registering %d users...\n", users);
  std::vector<User> batch;
  UnixMillis expiry = 0;
  for (int i = 0; i < users; ++i) {
    User u;
    u.tenant_id = tenant->id;
    u.external_id = "u" + std::to_string(i);
    u.name = "User " + std::to_string(i);
    u.consent_from = load_start;
    u.consent_until = load_start + 3'600'000;  // rewritten below once the load time is known
    Device d;
    d.channel = Channel::kEmail;
    d.address = "u" + std::to_string(i) + "@example.com";
    u.devices.push_back(d);
    u.groups = {"all"};
    batch.push_back(std::move(u));
    if (batch.size() == 1000 || i == users - 1) {
      if (expiry == 0) expiry = ((NowMillis() + 10'000) / 1000 + 1) * 1000;  // whole second
      for (auto& b : batch) b.consent_until = expiry;
      auto r = (*store)->PutUsers(tenant->id, std::move(batch));
      if (!r.ok()) return 1;
      batch.clear();
    }
  }
  std::fprintf(stderr, "loaded in %.1f s; consent ends at +%.1f s\n",
               (NowMillis() - load_start) / 1000.0, (expiry - NowMillis()) / 1000.0);

  std::mutex mu;
  std::vector<std::pair<int64_t, UnixMillis>> batches;  // (erased, committed at)
  int64_t erased_total = 0;
  ConsentReaper reaper(store->get(), &metrics, [&](int64_t n, UnixMillis at) {
    std::lock_guard lock(mu);
    batches.emplace_back(n, at);
    erased_total += n;
  });
  (*store)->SetConsentExpiryListener([&reaper](UnixMillis at) { reaper.Nudge(at); });
  reaper.Start();
  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::lock_guard lock(mu);
    if (erased_total >= users) break;
    if (NowMillis() > expiry + 30'000) break;
  }
  reaper.Stop();

  // Every user of a batch waited from `expiry` until that batch's commit.
  std::vector<UnixMillis> lags;
  lags.reserve(static_cast<size_t>(users));
  for (auto [n, at] : batches) lags.insert(lags.end(), static_cast<size_t>(n), at - expiry);
  std::sort(lags.begin(), lags.end());
  auto pct = [&](double p) {
    return lags.empty() ? -1 : lags[std::min(lags.size() - 1, size_t(p * lags.size()))];
  };
  auto remaining = (*store)->NextConsentExpiry();
  std::printf("expiry: %d users with the same consent_until\n", users);
  std::printf("  erased        : %lld (left: %s)\n", static_cast<long long>(erased_total),
              remaining.ok() && !remaining->has_value() ? "none" : "SOME");
  std::printf("  lag p50       : %lld ms\n", static_cast<long long>(pct(0.50)));
  std::printf("  lag p99       : %lld ms\n", static_cast<long long>(pct(0.99)));
  std::printf("  lag max       : %lld ms (the last user gone)\n",
              static_cast<long long>(lags.empty() ? -1 : lags.back()));
  std::printf("  batches       : %zu\n", batches.size());
  std::filesystem::remove_all(dir);
  return erased_total == users ? 0 : 1;
}

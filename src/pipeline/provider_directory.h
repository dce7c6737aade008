// Which providers serve a tenant's channel: the ProviderRouter built from the tenant's stored
// settings or, for a tenant without settings of its own, from the fallback chain (the simulator
// in the demo and the tests). Routers are cached and rebuilt only when the stored settings
// change (looked at again at most every refresh_ms, and at once when this process stored them:
// Refresh), so circuit breakers and provider tokens
// (APNs JWTs must not be re-minted more often than every 20 minutes) survive.
//
// Thread-safety: RouterFor from any thread. The store, client and timer queue outlive it; a
// returned router stays valid as long as the caller holds it.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/timer_queue.h"
#include "net/http_client.h"
#include "providers/router.h"
#include "store/store.h"

namespace herald {

struct DirectoryOptions {
  // Provider configurations (JSON objects, failover order) for tenants without settings for a
  // channel; empty = such a channel has no provider.
  std::function<std::vector<std::string>(Channel)> fallback;
  providers::RouterOptions router;
  int refresh_ms = 30'000;
  // Builds a chain from a settings document; empty = providers::MakeProviderChain. A seam for
  // benchmarks that measure the pipeline without any network.
  std::function<Result<std::vector<std::unique_ptr<providers::Provider>>>(std::string_view)>
      make_chain;
};

class ProviderDirectory {
 public:
  ProviderDirectory(Store* store, net::HttpClient* client, TimerQueue* timers,
                    DirectoryOptions options);

  // kNotFound "no_provider" when the channel has neither settings nor a fallback; kInvalid
  // "invalid_provider_config" when the stored settings cannot be built.
  Result<std::shared_ptr<providers::ProviderRouter>> RouterFor(const std::string& tenant_id,
                                                               Channel channel);
  // The tenant's settings for the channel changed (in this process): the next RouterFor reads
  // them again instead of waiting for refresh_ms. A router whose document did not change is
  // kept, breakers and tokens with it.
  void Refresh(const std::string& tenant_id, Channel channel);

 private:
  struct Entry {
    std::string config;  // the document the router was built from
    std::shared_ptr<providers::ProviderRouter> router;
    UnixMillis checked_at = 0;
  };
  Result<std::string> ConfigFor(const std::string& tenant_id, Channel channel);

  Store* store_;
  net::HttpClient* client_;
  TimerQueue* timers_;
  DirectoryOptions options_;
  std::mutex mu_;
  std::map<std::pair<std::string, Channel>, Entry> cache_;
};

}  // namespace herald

#include "pipeline/provider_directory.h"

#include "providers/chain.h"

namespace herald {

ProviderDirectory::ProviderDirectory(Store* store, net::HttpClient* client, TimerQueue* timers,
                                     DirectoryOptions options)
    : store_(store), client_(client), timers_(timers), options_(std::move(options)) {}

Result<std::string> ProviderDirectory::ConfigFor(const std::string& tenant_id, Channel channel) {
  Result<ProviderSettings> stored = store_->GetProviderSettings(tenant_id, channel);
  if (stored.ok()) return stored->config_json;
  if (stored.error().kind != ErrorKind::kNotFound) return stored.take_error();
  std::vector<std::string> fallback;
  if (options_.fallback) fallback = options_.fallback(channel);
  if (fallback.empty()) {
    return MakeError(ErrorKind::kNotFound, "no_provider",
                     "The tenant has no provider configured for the " +
                         std::string(ToString(channel)) + " channel.",
                     "channel");
  }
  std::string doc = "[";
  for (size_t i = 0; i < fallback.size(); ++i) {
    if (i > 0) doc.push_back(',');
    doc += fallback[i];
  }
  return doc + "]";
}

Result<std::shared_ptr<providers::ProviderRouter>> ProviderDirectory::RouterFor(
    const std::string& tenant_id, Channel channel) {
  const UnixMillis now = NowMillis();
  const auto key = std::make_pair(tenant_id, channel);
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && now - it->second.checked_at < options_.refresh_ms) {
      return it->second.router;
    }
  }
  Result<std::string> config = ConfigFor(tenant_id, channel);
  if (!config.ok()) return config.take_error();
  std::lock_guard lock(mu_);
  Entry& entry = cache_[key];
  entry.checked_at = now;
  if (entry.router && entry.config == *config) return entry.router;
  Result<std::vector<std::unique_ptr<providers::Provider>>> chain =
      options_.make_chain ? options_.make_chain(*config)
                          : providers::MakeProviderChain(*config, client_);
  if (!chain.ok()) {
    cache_.erase(key);
    return chain.take_error();
  }
  entry.config = std::move(*config);
  entry.router =
      std::make_shared<providers::ProviderRouter>(std::move(*chain), timers_, options_.router);
  return entry.router;
}

void ProviderDirectory::Refresh(const std::string& tenant_id, Channel channel) {
  std::lock_guard lock(mu_);
  auto it = cache_.find(std::make_pair(tenant_id, channel));
  if (it != cache_.end()) it->second.checked_at = 0;
}

}  // namespace herald

#include "sim/record.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <utility>

namespace herald::sim {
namespace {

constexpr std::array<std::string_view, kProviderCount> kNames = {"apns",     "fcm",    "smtp",
                                                                 "sendgrid", "twilio", "vonage"};

size_t Index(Provider p) { return static_cast<size_t>(p); }

// ASCII only, like std::tolower in the "C" locale the simulator runs in.
std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

std::string_view ProviderName(Provider p) { return kNames[Index(p)]; }

std::optional<Provider> ProviderFromName(std::string_view name) {
  for (Provider p : kAllProviders) {
    if (kNames[Index(p)] == name) return p;
  }
  return std::nullopt;
}

std::string NormalizeAddress(Provider p, std::string_view address) {
  switch (p) {
    case Provider::kApns:
    case Provider::kSmtp:
    case Provider::kSendgrid: return Lower(address);
    case Provider::kTwilio:
    case Provider::kVonage:
      if (!address.empty() && address.front() == '+') address.remove_prefix(1);
      return std::string(address);
    case Provider::kFcm: break;
  }
  return std::string(address);
}

MessageRecord::MessageRecord(size_t max_kept) : max_kept_(max_kept) {}

uint64_t MessageRecord::HashOf(std::string_view key) {
  return std::hash<std::string_view>{}(key);  // 64-bit on the platforms we build for
}

void MessageRecord::Accept(RecordedMessage message, std::string_view dedupe_key) {
  const size_t p = Index(message.provider);
  Counters& c = counters_[p];
  c.accepted.fetch_add(1, std::memory_order_relaxed);
  {
    const uint64_t h = HashOf(NormalizeAddress(message.provider, message.address));
    Shard& shard = shards_[h % kShards];
    std::lock_guard lock(shard.mu);
    if (shard.addresses[p].insert(static_cast<int64_t>(h))) {
      c.unique_addresses.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (!dedupe_key.empty()) {
    const uint64_t h = HashOf(dedupe_key);
    Shard& shard = shards_[h % kShards];
    std::lock_guard lock(shard.mu);
    if (!shard.delivery_ids[p].insert(static_cast<int64_t>(h))) {
      c.duplicates.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (max_kept_ == 0) return;
  std::lock_guard lock(log_mu_);
  if (log_.size() >= max_kept_) log_.pop_front();
  log_.push_back(std::move(message));
}

void MessageRecord::Refuse(Provider p, uint64_t n) {
  counters_[Index(p)].refused.fetch_add(n, std::memory_order_relaxed);
}

std::vector<RecordedMessage> MessageRecord::Query(std::optional<Provider> provider,
                                                  std::string_view address, size_t limit) const {
  std::vector<RecordedMessage> out;
  if (limit == 0) return out;
  std::lock_guard lock(log_mu_);
  for (auto it = log_.rbegin(); it != log_.rend() && out.size() < limit; ++it) {
    if (provider && it->provider != *provider) continue;
    if (!address.empty() &&
        NormalizeAddress(it->provider, it->address) != NormalizeAddress(it->provider, address)) {
      continue;
    }
    out.push_back(*it);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

ProviderStats MessageRecord::Stats(Provider p) const {
  const Counters& c = counters_[Index(p)];
  return ProviderStats{c.accepted.load(std::memory_order_relaxed),
                       c.refused.load(std::memory_order_relaxed),
                       c.unique_addresses.load(std::memory_order_relaxed),
                       c.duplicates.load(std::memory_order_relaxed)};
}

void MessageRecord::Clear() {
  for (Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    for (auto& set : shard.addresses) set = FlatKeySet{};
    for (auto& set : shard.delivery_ids) set = FlatKeySet{};
  }
  {
    std::lock_guard lock(log_mu_);
    log_.clear();
  }
  for (Counters& c : counters_) {
    c.accepted.store(0);
    c.refused.store(0);
    c.unique_addresses.store(0);
    c.duplicates.store(0);
  }
}

}  // namespace herald::sim

// What the simulator received: the accepted messages (newest last, bounded) and per-provider
// counters — accepted, refused, distinct addresses, duplicates (the same delivery id accepted
// again). Backs GET /sim/messages and GET /sim/stats.
//
// Thread-safety: every method may be called from any thread. Counters are atomics; the address
// and delivery-id sets are sharded behind short mutexes; the message log takes one short lock
// per append. Clear() racing with Accept() may leave either side's effect, never corruption.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/flat_key_set.h"

namespace herald::sim {

enum class Provider { kApns, kFcm, kSmtp, kSendgrid, kTwilio, kVonage };
inline constexpr size_t kProviderCount = 6;
inline constexpr std::array<Provider, kProviderCount> kAllProviders = {
    Provider::kApns,     Provider::kFcm,    Provider::kSmtp,
    Provider::kSendgrid, Provider::kTwilio, Provider::kVonage};

// "apns", "fcm", "smtp", "sendgrid", "twilio", "vonage".
std::string_view ProviderName(Provider p);
std::optional<Provider> ProviderFromName(std::string_view name);

// The form an address is compared in (duplicates, unique counts, invalid_addresses): e-mail
// addresses lower-cased, phone numbers without a leading '+', APNs tokens lower-cased.
std::string NormalizeAddress(Provider p, std::string_view address);

struct RecordedMessage {
  Provider provider = Provider::kApns;
  std::string address;      // device token, e-mail address or phone number, as sent
  std::string id;           // the message id the simulator answered with
  std::string delivery_id;  // what duplicates are counted on ("" when the client sent none)
  std::string title;
  std::string body;
  UnixMillis received_at = 0;
};

struct ProviderStats {
  uint64_t accepted = 0;
  uint64_t refused = 0;
  uint64_t unique_addresses = 0;
  uint64_t duplicates = 0;
};

class MessageRecord {
 public:
  // Keeps at most `max_kept` messages for Query (the oldest go first); counters count all.
  explicit MessageRecord(size_t max_kept);
  MessageRecord(const MessageRecord&) = delete;
  MessageRecord& operator=(const MessageRecord&) = delete;

  // Records one accepted message. `dedupe_key` (usually the delivery id) counts a duplicate
  // when it was accepted before for the same provider; "" never does.
  void Accept(RecordedMessage message, std::string_view dedupe_key);
  // Counts `n` refused messages (any answer other than acceptance).
  void Refuse(Provider p, uint64_t n = 1);

  // The newest `limit` messages matching the filters, oldest first. `address` compares
  // normalized; empty filters match everything.
  std::vector<RecordedMessage> Query(std::optional<Provider> provider, std::string_view address,
                                     size_t limit) const;
  ProviderStats Stats(Provider p) const;
  // Forgets every message and zeroes every counter.
  void Clear();

 private:
  static constexpr size_t kShards = 32;
  struct Shard {
    std::mutex mu;
    // 64-bit hashes, not the strings: a million-message run would otherwise spend a fifth of the
    // simulator's time and hundreds of MB on them. Two different keys share a hash with odds of
    // about n²/2⁶⁵ (2·10⁻⁷ for two million keys), which would count one duplicate too many.
    std::array<FlatKeySet, kProviderCount> addresses;
    std::array<FlatKeySet, kProviderCount> delivery_ids;
  };
  struct Counters {
    std::atomic<uint64_t> accepted{0};
    std::atomic<uint64_t> refused{0};
    std::atomic<uint64_t> unique_addresses{0};
    std::atomic<uint64_t> duplicates{0};
  };
  static uint64_t HashOf(std::string_view key);

  const size_t max_kept_;
  std::array<Shard, kShards> shards_;
  std::array<Counters, kProviderCount> counters_;
  mutable std::mutex log_mu_;
  std::deque<RecordedMessage> log_;
};

}  // namespace herald::sim

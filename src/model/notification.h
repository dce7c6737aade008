// Value types of the send pipeline: a notification, its deliveries (one per device reached), the
// events that record every state change of a delivery, and the small job the queue carries.
// Plain data; every component may include this header.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "model/model.h"

namespace herald {

// A delivery's stages (DESIGN §4.3): queued → dispatched → sent → delivered, or retrying,
// failed, suppressed, expired, cancelled.
enum class DeliveryStatus : uint8_t {
  kQueued,
  kDispatched,
  kSent,
  kDelivered,
  kRetrying,
  kFailed,
  kSuppressed,
  kExpired,
  kCancelled,
};
inline constexpr size_t kDeliveryStatusCount = 9;
inline constexpr DeliveryStatus kAllDeliveryStatuses[] = {
    DeliveryStatus::kQueued,     DeliveryStatus::kDispatched, DeliveryStatus::kSent,
    DeliveryStatus::kDelivered,  DeliveryStatus::kRetrying,   DeliveryStatus::kFailed,
    DeliveryStatus::kSuppressed, DeliveryStatus::kExpired,    DeliveryStatus::kCancelled};

std::string_view ToString(DeliveryStatus s);
std::optional<DeliveryStatus> ParseDeliveryStatus(std::string_view s);
// True once the dispatcher is done with the delivery: sent (a receipt may still move it to
// delivered or failed), delivered, failed, suppressed, expired, cancelled.
bool IsTerminal(DeliveryStatus s);

enum class NotificationStatus { kAccepted, kInProgress, kCompleted, kCancelled };
std::string_view ToString(NotificationStatus s);

// The text limit of DESIGN R5: title + body, UTF-8, at most this many bytes together.
inline constexpr size_t kMaxNotificationTextBytes = 1500;

struct Notification {
  std::string id;  // minted: "ntf_" + 20 base32 chars
  std::string tenant_id;
  std::string title;  // may be empty
  std::string body;
  std::vector<std::string> to_groups;  // sorted, unique
  std::vector<std::string> to_users;   // external ids, sorted, unique
  std::vector<Channel> channels;       // empty = every channel
  int priority = 10;                   // 10 = high (immediate), 5 = normal
  std::string idempotency_key;         // "" = none
  std::string request_hash;            // hex digest of the request, to tell a replay from a clash
  UnixMillis accepted_at = 0;
  UnixMillis deadline = 0;  // accepted_at + the tenant's delivery_deadline_minutes

  // Filled by reads:
  NotificationStatus status = NotificationStatus::kAccepted;
  bool fanout_done = false;
  int64_t deliveries = 0;                              // created so far
  std::array<int64_t, kDeliveryStatusCount> counts{};  // deliveries per current status
  UnixMillis completed_at = 0;                         // 0 until completed or cancelled
};

struct Delivery {
  std::string id;  // "dlv_" + the sealed row key (common/sealed_ids.h)
  std::string notification_id;
  std::string external_id;
  std::string device_id;
  Channel channel = Channel::kEmail;
  DeliveryStatus status = DeliveryStatus::kQueued;
  int attempts = 0;                 // provider attempts made
  std::string provider;             // the provider that took it (or last answered)
  std::string provider_message_id;  // when sent
  std::string reason;               // why it failed, was suppressed, ...
  UnixMillis deadline = 0;
  UnixMillis updated_at = 0;
};

// One state change of one delivery. Never holds PII: ids, stage, provider and reason codes.
struct DeliveryEvent {
  int64_t seq = 0;  // increasing, assigned by the store
  std::string delivery_id;
  std::string notification_id;
  std::string external_id;
  std::string device_id;
  Channel channel = Channel::kEmail;
  UnixMillis at = 0;
  DeliveryStatus stage = DeliveryStatus::kQueued;
  std::string provider;
  int attempt = 0;
  std::string reason;
};

// What the queue carries for one delivery: small and fixed-size (a million of them fit in a few
// tens of MB), no PII. Row keys are the store's; the queue only compares and groups them.
struct DeliveryJob {
  int64_t delivery = 0;      // the delivery's row key (its id is "dlv_" + this)
  int64_t notification = 0;  // the notification's row key
  int64_t tenant = 0;        // the tenant's row key: fairness and per-tenant limits
  UnixMillis deadline = 0;
  UnixMillis not_before = 0;  // not taken before this time (delayed retry); 0 = now
  Channel channel = Channel::kEmail;
  uint8_t priority = 10;
  uint16_t attempt = 0;  // provider attempts made so far
};

// "dlv_" + 22 characters that show nothing of the row key (nor of other tenants' volume).
std::string DeliveryIdOf(int64_t delivery_key);
std::optional<int64_t> DeliveryKeyOf(std::string_view delivery_id);  // inverse; nullopt if forged

}  // namespace herald

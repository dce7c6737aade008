#include "model/notification.h"

#include "common/sealed_ids.h"

namespace herald {
namespace {

constexpr char kDeliveryIdTag = 'd';

}  // namespace

std::string_view ToString(DeliveryStatus s) {
  switch (s) {
    case DeliveryStatus::kQueued: return "queued";
    case DeliveryStatus::kDispatched: return "dispatched";
    case DeliveryStatus::kSent: return "sent";
    case DeliveryStatus::kDelivered: return "delivered";
    case DeliveryStatus::kRetrying: return "retrying";
    case DeliveryStatus::kFailed: return "failed";
    case DeliveryStatus::kSuppressed: return "suppressed";
    case DeliveryStatus::kExpired: return "expired";
    case DeliveryStatus::kCancelled: return "cancelled";
  }
  return "queued";
}

std::optional<DeliveryStatus> ParseDeliveryStatus(std::string_view s) {
  for (DeliveryStatus d : kAllDeliveryStatuses) {
    if (ToString(d) == s) return d;
  }
  return std::nullopt;
}

bool IsTerminal(DeliveryStatus s) {
  return s != DeliveryStatus::kQueued && s != DeliveryStatus::kDispatched &&
         s != DeliveryStatus::kRetrying;
}

std::string_view ToString(NotificationStatus s) {
  switch (s) {
    case NotificationStatus::kAccepted: return "accepted";
    case NotificationStatus::kInProgress: return "in_progress";
    case NotificationStatus::kCompleted: return "completed";
    case NotificationStatus::kCancelled: return "cancelled";
  }
  return "accepted";
}

std::string DeliveryIdOf(int64_t delivery_key) {
  return "dlv_" + SealRowKey(kDeliveryIdTag, delivery_key);
}

std::optional<int64_t> DeliveryKeyOf(std::string_view delivery_id) {
  constexpr std::string_view kPrefix = "dlv_";
  if (delivery_id.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  return OpenRowKey(kDeliveryIdTag, delivery_id.substr(kPrefix.size()));
}

}  // namespace herald

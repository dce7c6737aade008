#include "model/notification.h"

#include <charconv>

namespace herald {

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

std::string DeliveryIdOf(int64_t delivery_key) { return "dlv_" + std::to_string(delivery_key); }

std::optional<int64_t> DeliveryKeyOf(std::string_view delivery_id) {
  constexpr std::string_view kPrefix = "dlv_";
  if (delivery_id.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  std::string_view digits = delivery_id.substr(kPrefix.size());
  if (digits.empty() || digits.size() > 18 || digits[0] == '0') return std::nullopt;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || end != digits.data() + digits.size() || v <= 0) return std::nullopt;
  return v;
}

}  // namespace herald

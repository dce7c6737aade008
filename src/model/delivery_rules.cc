#include "model/delivery_rules.h"

namespace herald {

std::string_view SuppressReason(const Recipient& r, UnixMillis now) {
  if (!r.user_exists) return "user_gone";
  if (r.consent_until <= now) return "consent_ended";
  if (r.consent_from > now) return "consent_not_started";
  if (!r.opt_in) return "opted_out";
  if (!r.device_exists) return "device_gone";
  if (r.device_disabled) return "device_disabled";
  return "";
}

bool MayRecord(DeliveryStatus from, DeliveryStatus to) {
  return !(from == DeliveryStatus::kCancelled &&
           (to == DeliveryStatus::kDispatched || to == DeliveryStatus::kRetrying));
}

ReceiptMove ReceiptMoveFor(DeliveryStatus current, DeliveryStatus stage) {
  if (current == DeliveryStatus::kSent) return ReceiptMove::kApply;
  return current == stage ? ReceiptMove::kDuplicate : ReceiptMove::kStale;
}

bool IsCancellable(DeliveryStatus s) {
  return s == DeliveryStatus::kQueued || s == DeliveryStatus::kRetrying;
}

}  // namespace herald

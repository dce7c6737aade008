// Herald's rules about deliveries, written once for every store backend (DESIGN §4.2, §4.3):
// who may be sent to at the moment of sending, and which recorded changes may move a delivery
// from one status to another. Backends ask these functions; they do not carry copies of them.
// Pure functions, thread-safe.
#pragma once

#include <string_view>

#include "common/clock.h"
#include "model/notification.h"

namespace herald {

// What is known of a delivery's recipient when it is about to be sent.
struct Recipient {
  bool user_exists = false;
  bool opt_in = false;
  UnixMillis consent_from = 0;
  UnixMillis consent_until = 0;
  bool device_exists = false;
  bool device_disabled = false;
};

// Why the delivery must not be sent at `now` (DESIGN §4.2: consent wins), or "" when it may:
// "user_gone", "consent_ended", "consent_not_started", "opted_out", "device_gone",
// "device_disabled", checked in that order.
std::string_view SuppressReason(const Recipient& recipient, UnixMillis now);

// Whether the pipeline may record a move of a delivery from `from` to `to`. A cancelled
// delivery is not dispatched or retried any more (an attempt already in flight still records
// how it ended); every other recorded change applies.
bool MayRecord(DeliveryStatus from, DeliveryStatus to);

// What a provider's delivery receipt for `stage` (delivered or failed) does to a delivery now at
// `current`: receipts move a delivery only out of `sent`, so a replay is a duplicate and a late
// or replayed receipt never moves a delivery backwards (stale).
enum class ReceiptMove { kApply, kDuplicate, kStale };
ReceiptMove ReceiptMoveFor(DeliveryStatus current, DeliveryStatus stage);

// The statuses a cancellation takes a delivery out of: those no provider was handed yet.
bool IsCancellable(DeliveryStatus s);

}  // namespace herald

#include "model/delivery_rules.h"

#include <gtest/gtest.h>

namespace herald {
namespace {

TEST(SuppressReasonTest, ConsentWinsInAFixedOrder) {
  const UnixMillis now = 1'000'000;
  Recipient ok{true, true, now - 1, now + 1, true, false};
  EXPECT_EQ(SuppressReason(ok, now), "");
  Recipient r = ok;
  r.user_exists = false;
  r.opt_in = false;
  EXPECT_EQ(SuppressReason(r, now), "user_gone") << "the first reason that holds";
  r = ok;
  r.consent_until = now;  // consent_until is exclusive
  EXPECT_EQ(SuppressReason(r, now), "consent_ended");
  r = ok;
  r.consent_from = now + 1;
  EXPECT_EQ(SuppressReason(r, now), "consent_not_started");
  r = ok;
  r.opt_in = false;
  EXPECT_EQ(SuppressReason(r, now), "opted_out");
  r = ok;
  r.device_exists = false;
  EXPECT_EQ(SuppressReason(r, now), "device_gone");
  r = ok;
  r.device_disabled = true;
  EXPECT_EQ(SuppressReason(r, now), "device_disabled");
}

TEST(DeliveryStateMachineTest, ACancelledDeliveryIsNeitherDispatchedNorRetried) {
  for (DeliveryStatus to : kAllDeliveryStatuses) {
    const bool expected = to != DeliveryStatus::kDispatched && to != DeliveryStatus::kRetrying;
    EXPECT_EQ(MayRecord(DeliveryStatus::kCancelled, to), expected) << ToString(to);
    EXPECT_TRUE(MayRecord(DeliveryStatus::kQueued, to)) << ToString(to);
  }
  EXPECT_TRUE(IsCancellable(DeliveryStatus::kQueued));
  EXPECT_TRUE(IsCancellable(DeliveryStatus::kRetrying));
  for (DeliveryStatus s : {DeliveryStatus::kDispatched, DeliveryStatus::kSent,
                           DeliveryStatus::kFailed, DeliveryStatus::kCancelled}) {
    EXPECT_FALSE(IsCancellable(s)) << ToString(s);
  }
}

TEST(DeliveryStateMachineTest, ReceiptsMoveOnlyOutOfSent) {
  EXPECT_EQ(ReceiptMoveFor(DeliveryStatus::kSent, DeliveryStatus::kDelivered), ReceiptMove::kApply);
  EXPECT_EQ(ReceiptMoveFor(DeliveryStatus::kSent, DeliveryStatus::kFailed), ReceiptMove::kApply);
  EXPECT_EQ(ReceiptMoveFor(DeliveryStatus::kDelivered, DeliveryStatus::kDelivered),
            ReceiptMove::kDuplicate);
  EXPECT_EQ(ReceiptMoveFor(DeliveryStatus::kFailed, DeliveryStatus::kDelivered),
            ReceiptMove::kStale);
  EXPECT_EQ(ReceiptMoveFor(DeliveryStatus::kDelivered, DeliveryStatus::kFailed),
            ReceiptMove::kStale);
  EXPECT_EQ(ReceiptMoveFor(DeliveryStatus::kQueued, DeliveryStatus::kDelivered),
            ReceiptMove::kStale);
}

}  // namespace
}  // namespace herald

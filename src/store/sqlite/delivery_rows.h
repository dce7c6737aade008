// SQL building blocks of the SQLite store's send pipeline, run on the writer's connection inside
// its transaction: inserting one fan-out page of deliveries with their queued events, appending
// events, cancelling. Each function only does SQL; the caller owns the transaction.
//
// Event sequence numbers are global and increasing (the user timeline pages on them). They are
// assigned on the writer thread from `EventSeq`, which starts after the largest stored one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "model/notification.h"
#include "store/sqlite/connection.h"
#include "store/store.h"

namespace herald::sqlite {

// The next event sequence number. Writer thread only.
class EventSeq {
 public:
  // The next `n` numbers (the first is returned); reads the stored maximum on first use.
  Result<int64_t> Take(Connection& conn, int64_t n);

 private:
  int64_t next_ = 0;  // 0 = not read yet
};

// What every delivery of one notification shares.
struct DeliveryInsert {
  int64_t notification_pk = 0;
  int64_t tenant_pk = 0;
  UnixMillis deadline = 0;
  std::string channels;  // " ios sms " or "" for all (see notification_store.cc)
  UnixMillis now = 0;
};

struct GroupPage {
  int64_t users = 0;      // members covered
  int64_t last_user = 0;  // the cursor after this page
  bool exhausted = false;
};

// Deliveries for the devices of up to `max_users` members of `group_pk` after `cursor`, skipping
// members of the groups in `earlier_groups` (a JSON array of group pks). Appends their jobs.
Result<GroupPage> InsertGroupPage(Connection& conn, const DeliveryInsert& insert, int64_t group_pk,
                                  const std::string& earlier_groups, int64_t cursor, int max_users,
                                  std::vector<DeliveryJob>& jobs);
// Deliveries for the devices of one user, unless a member of `groups` (JSON array of pks).
Status InsertUserDeliveries(Connection& conn, const DeliveryInsert& insert, int64_t user_pk,
                            const std::string& groups, std::vector<DeliveryJob>& jobs);
// The queued event of each new delivery: `jobs` are the deliveries this transaction just created
// for the notification (their row keys are the newest of the table).
Status AppendQueuedEvents(Connection& conn, EventSeq& seq, int64_t notification_pk,
                          const std::vector<DeliveryJob>& jobs, UnixMillis now);
// Applies one state change (row + event, and the dispatched event before it when
// update.dispatched_at is set); returns false when the change was refused because the delivery
// is gone or was cancelled before it was dispatched.
Result<bool> ApplyDeliveryUpdate(Connection& conn, EventSeq& seq, const DeliveryUpdate& update);
// Cancels the notification's queued and retrying deliveries; returns how many.
Result<int64_t> CancelOpenDeliveries(Connection& conn, EventSeq& seq, int64_t notification_pk,
                                     UnixMillis now);

}  // namespace herald::sqlite

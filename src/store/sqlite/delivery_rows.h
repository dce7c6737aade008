// SQL building blocks of the SQLite store's send pipeline, run on the writer's connection inside
// its transaction: inserting one fan-out page of deliveries with their queued events, appending
// events, cancelling. Each function only does SQL; the caller owns the transaction.
//
// Event sequence numbers are global and increasing (the user timeline pages on them). They are
// assigned on the writer thread from `EventSeq`, which starts after the largest stored one.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
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

// Changes to delivery_counts gathered over one write and applied at its end: one statement per
// notification and status touched instead of one per delivery. Writer thread only.
class CountDeltas {
 public:
  // `n` deliveries of the notification entered `status` at `at` (n < 0: left it; at = 0).
  void Add(int64_t notification_pk, int64_t status, int64_t n, UnixMillis at);
  // One delivery moved from status `from` to `to` at `at`.
  void Move(int64_t notification_pk, int64_t from, int64_t to, UnixMillis at) {
    Add(notification_pk, from, -1, 0);
    Add(notification_pk, to, 1, at);
  }
  // Writes the gathered changes and forgets them.
  Status Apply(Connection& conn);

 private:
  struct Delta {
    int64_t n = 0;
    UnixMillis at = 0;
  };
  std::map<std::pair<int64_t, int64_t>, Delta> deltas_;  // by (notification pk, status)
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
// The queued event and count of each new delivery: `jobs` are the deliveries this transaction
// just created for the notification (their row keys are the newest of the table).
Status RecordQueued(Connection& conn, EventSeq& seq, int64_t notification_pk,
                    const std::vector<DeliveryJob>& jobs, UnixMillis now);
// Applies one state change (row + event, and the dispatched event before it when
// update.dispatched_at is set), its count change going to `counts`; returns false when the
// change was refused because the delivery is gone or was cancelled before it was dispatched.
Result<bool> ApplyDeliveryUpdate(Connection& conn, EventSeq& seq, CountDeltas& counts,
                                 const DeliveryUpdate& update);
// Cancels the notification's queued and retrying deliveries; returns how many.
Result<int64_t> CancelOpenDeliveries(Connection& conn, EventSeq& seq, int64_t notification_pk,
                                     UnixMillis now);

}  // namespace herald::sqlite

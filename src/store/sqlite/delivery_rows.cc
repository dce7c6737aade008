#include "store/sqlite/delivery_rows.h"

#include <algorithm>
#include <limits>

#include "model/delivery_rules.h"

namespace herald::sqlite {
namespace {

constexpr int64_t kQueued = static_cast<int64_t>(DeliveryStatus::kQueued);

// Collects the RETURNING rows (pk, channel) of a delivery insert as jobs.
Status CollectJobs(Stmt& w, const DeliveryInsert& insert, std::vector<DeliveryJob>& jobs) {
  for (;;) {
    Result<bool> row = w.Next();
    if (!row.ok()) return row.take_error();
    if (!*row) return Status::Ok();
    DeliveryJob job;
    job.delivery = w.Int(0);
    job.notification = insert.notification_pk;
    job.tenant = insert.tenant_pk;
    job.deadline = insert.deadline;
    job.channel = ParseChannel(w.Text(1)).value_or(Channel::kEmail);
    jobs.push_back(job);
  }
}

}  // namespace

Result<int64_t> EventSeq::Take(Connection& conn, int64_t n) {
  if (next_ == 0) {
    Stmt q = conn.Prepare("SELECT COALESCE(MAX(seq), 0) FROM delivery_events");
    Result<bool> row = q.Next();
    if (!row.ok()) return row.take_error();
    next_ = q.Int(0) + 1;
  }
  const int64_t first = next_;
  next_ += n;
  return first;
}

Result<GroupPage> InsertGroupPage(Connection& conn, const DeliveryInsert& insert, int64_t group_pk,
                                  const std::string& earlier_groups, int64_t cursor, int max_users,
                                  std::vector<DeliveryJob>& jobs) {
  GroupPage page;
  {
    Stmt q = conn.Prepare(
        "SELECT user_pk FROM memberships WHERE group_pk = ?1 AND user_pk > ?2 "
        "ORDER BY user_pk LIMIT 1 OFFSET ?3");
    q.Bind(1, group_pk).Bind(2, cursor).Bind(3, int64_t{max_users - 1});
    Result<bool> row = q.Next();
    if (!row.ok()) return row.take_error();
    if (*row) {
      page.last_user = q.Int(0);
      page.users = max_users;
    } else {
      page.last_user = std::numeric_limits<int64_t>::max();
      page.exhausted = true;
    }
  }
  if (page.exhausted) {
    Stmt q = conn.Prepare("SELECT COUNT(*) FROM memberships WHERE group_pk = ?1 AND user_pk > ?2");
    q.Bind(1, group_pk).Bind(2, cursor);
    Result<bool> row = q.Next();
    if (!row.ok()) return row.take_error();
    page.users = q.Int(0);
  }
  Stmt w = conn.Prepare(
      "INSERT INTO deliveries (notification_pk, tenant_pk, user_pk, external_id, device_id, "
      "channel, status, deadline, updated_at) "
      "SELECT ?1, ?2, u.pk, u.external_id, d.id, d.channel, 0, ?3, ?4 FROM memberships m "
      "JOIN users u ON u.pk = m.user_pk JOIN devices d ON d.user_pk = u.pk "
      "WHERE m.group_pk = ?5 AND m.user_pk > ?6 AND m.user_pk <= ?7 AND u.consent_until > ?4 "
      "AND d.disabled = 0 AND (?8 = '' OR instr(?8, ' ' || d.channel || ' ') > 0) "
      "AND NOT EXISTS (SELECT 1 FROM memberships e WHERE e.user_pk = u.pk "
      "AND e.group_pk IN (SELECT value FROM json_each(?9))) "
      "ORDER BY u.pk, d.ord RETURNING pk, channel");
  w.Bind(1, insert.notification_pk).Bind(2, insert.tenant_pk).Bind(3, insert.deadline);
  w.Bind(4, insert.now).Bind(5, group_pk).Bind(6, cursor).Bind(7, page.last_user);
  w.Bind(8, insert.channels).Bind(9, earlier_groups);
  Status s = CollectJobs(w, insert, jobs);
  if (!s.ok()) return s.take_error();
  return page;
}

Status InsertUserDeliveries(Connection& conn, const DeliveryInsert& insert, int64_t user_pk,
                            const std::string& groups, std::vector<DeliveryJob>& jobs) {
  Stmt w = conn.Prepare(
      "INSERT INTO deliveries (notification_pk, tenant_pk, user_pk, external_id, device_id, "
      "channel, status, deadline, updated_at) "
      "SELECT ?1, ?2, u.pk, u.external_id, d.id, d.channel, 0, ?3, ?4 FROM users u "
      "JOIN devices d ON d.user_pk = u.pk "
      "WHERE u.pk = ?5 AND u.consent_until > ?4 AND d.disabled = 0 "
      "AND (?6 = '' OR instr(?6, ' ' || d.channel || ' ') > 0) "
      "AND NOT EXISTS (SELECT 1 FROM memberships e WHERE e.user_pk = u.pk "
      "AND e.group_pk IN (SELECT value FROM json_each(?7))) "
      "ORDER BY d.ord RETURNING pk, channel");
  w.Bind(1, insert.notification_pk).Bind(2, insert.tenant_pk).Bind(3, insert.deadline);
  w.Bind(4, insert.now).Bind(5, user_pk).Bind(6, insert.channels).Bind(7, groups);
  return CollectJobs(w, insert, jobs);
}

void CountDeltas::Add(int64_t notification_pk, int64_t status, int64_t n, UnixMillis at) {
  Delta& d = deltas_[{notification_pk, status}];
  d.n += n;
  d.at = std::max(d.at, at);
}

Status CountDeltas::Apply(Connection& conn) {
  for (const auto& [key, d] : deltas_) {
    if (d.n == 0 && d.at == 0) continue;
    Stmt w = conn.Prepare(
        "INSERT INTO delivery_counts (notification_pk, status, n, last_at) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT (notification_pk, status) DO UPDATE SET n = n + excluded.n, "
        "last_at = MAX(last_at, excluded.last_at)");
    w.Bind(1, key.first).Bind(2, key.second).Bind(3, d.n).Bind(4, d.at);
    Status s = w.Run();
    if (!s.ok()) return s;
  }
  deltas_.clear();
  return Status::Ok();
}

Status RecordQueued(Connection& conn, EventSeq& seq, int64_t notification_pk,
                    const std::vector<DeliveryJob>& jobs, UnixMillis now) {
  if (jobs.empty()) return Status::Ok();
  CountDeltas counts;
  counts.Add(notification_pk, kQueued, static_cast<int64_t>(jobs.size()), now);
  Status counted = counts.Apply(conn);
  if (!counted.ok()) return counted;
  int64_t first = jobs.front().delivery;
  int64_t last = first;
  for (const DeliveryJob& j : jobs) {
    first = std::min(first, j.delivery);
    last = std::max(last, j.delivery);
  }
  // One statement for the page: seq follows the row key, so it stays unique and increasing.
  Result<int64_t> base = seq.Take(conn, last - first + 1);
  if (!base.ok()) return base.take_error();
  Stmt w = conn.Prepare(
      "INSERT INTO delivery_events (delivery_pk, seq, at, stage, attempt, provider, reason) "
      "SELECT pk, ?1 + (pk - ?2), ?3, ?4, 0, '', '' FROM deliveries "
      "WHERE notification_pk = ?5 AND status = ?4 AND pk BETWEEN ?2 AND ?6");
  w.Bind(1, *base).Bind(2, first).Bind(3, now).Bind(4, kQueued).Bind(5, notification_pk);
  return w.Bind(6, last).Run();
}

Result<bool> ApplyDeliveryUpdate(Connection& conn, EventSeq& seq, CountDeltas& counts,
                                 const DeliveryUpdate& u) {
  const auto stage_code = static_cast<int64_t>(u.stage);
  {
    Stmt q = conn.Prepare("SELECT notification_pk, status FROM deliveries WHERE pk = ?1");
    q.Bind(1, u.delivery);
    Result<bool> row = q.Next();
    if (!row.ok()) return row.take_error();
    if (!*row) return false;
    const int64_t from = q.Int(1);
    if (!MayRecord(static_cast<DeliveryStatus>(from), u.stage)) return false;
    counts.Move(q.Int(0), from, stage_code, u.at);
  }
  {
    Stmt w = conn.Prepare(
        "UPDATE deliveries SET status = ?2, attempts = MAX(attempts, ?3), "
        "provider = CASE WHEN ?4 = '' THEN provider ELSE ?4 END, reason = ?5, "
        "provider_message_id = CASE WHEN ?6 = '' THEN provider_message_id ELSE ?6 END, "
        "updated_at = ?7 WHERE pk = ?1");
    w.Bind(1, u.delivery).Bind(2, stage_code).Bind(3, int64_t{u.attempt}).Bind(4, u.provider);
    w.Bind(5, u.reason).Bind(6, u.provider_message_id).Bind(7, u.at);
    Status s = w.Run();
    if (!s.ok()) return s.take_error();
  }
  Result<int64_t> n = seq.Take(conn, u.dispatched_at != 0 ? 2 : 1);
  if (!n.ok()) return n.take_error();
  int64_t next = *n;
  auto append = [&](int64_t stage, UnixMillis at, const std::string& provider,
                    const std::string& reason) {
    Stmt e = conn.Prepare(
        "INSERT INTO delivery_events (delivery_pk, seq, at, stage, attempt, provider, reason) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    e.Bind(1, u.delivery).Bind(2, next++).Bind(3, at).Bind(4, stage).Bind(5, int64_t{u.attempt});
    return e.Bind(6, provider).Bind(7, reason).Run();
  };
  static const std::string kNone;
  Status s = Status::Ok();
  if (u.dispatched_at != 0) {
    s = append(static_cast<int64_t>(DeliveryStatus::kDispatched), u.dispatched_at, kNone, kNone);
  }
  if (s.ok()) s = append(stage_code, u.at, u.provider, u.reason);
  if (!s.ok()) return s.take_error();
  if (u.disable_device) {
    Stmt d = conn.Prepare(
        "UPDATE devices SET disabled = 1 WHERE user_pk = (SELECT user_pk FROM deliveries WHERE "
        "pk = ?1) AND id = (SELECT device_id FROM deliveries WHERE pk = ?1)");
    s = d.Bind(1, u.delivery).Run();
    if (!s.ok()) return s.take_error();
  }
  return true;
}

Result<int64_t> CancelOpenDeliveries(Connection& conn, EventSeq& seq, int64_t notification_pk,
                                     UnixMillis now) {
  std::vector<int64_t> open;
  {
    Stmt q = conn.Prepare("SELECT pk, status FROM deliveries WHERE notification_pk = ?1");
    // (Reads every delivery of the notification: the index holds no status. A cancel is rare
    // and changes the open ones anyway.)
    q.Bind(1, notification_pk);
    for (;;) {
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) break;
      if (IsCancellable(static_cast<DeliveryStatus>(q.Int(1)))) open.push_back(q.Int(0));
    }
  }
  CountDeltas counts;
  for (int64_t pk : open) {
    DeliveryUpdate u;
    u.delivery = pk;
    u.stage = DeliveryStatus::kCancelled;
    u.at = now;
    u.reason = "cancelled_by_request";
    Result<bool> r = ApplyDeliveryUpdate(conn, seq, counts, u);
    if (!r.ok()) return r.take_error();
  }
  Status counted = counts.Apply(conn);
  if (!counted.ok()) return counted.take_error();
  return static_cast<int64_t>(open.size());
}

}  // namespace herald::sqlite

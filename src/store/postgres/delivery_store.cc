// PostgresStore methods for notifications and deliveries: create (with idempotency), read with
// counts, cancel, the fan-out, what the dispatcher reads and records, the API's listings,
// receipts and the queue's rebuild.
//
// Round trips are what a remote database costs, so the hot paths are set-based: a fan-out page
// inserts its deliveries, their queued events and the count in one statement, and a batch of
// delivery updates (of any size) takes at most six statements: lock and read the rows, then
// update them, move the counts, note receipt look-ups and disable devices, each from arrays,
// and COPY the events.
#include <algorithm>
#include <atomic>
#include <iterator>
#include <limits>
#include <map>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "crypto/crypto.h"
#include "model/delivery_rules.h"
#include "store/cursor.h"
#include "store/postgres/postgres_store_impl.h"
#include "store/row_text.h"
#include "store/sealed_user.h"

namespace herald::pg {
namespace {

constexpr char kDeliveryCursor = 'd';
constexpr char kEventCursor = 'e';

// Event numbers (DeliveryEvent::seq). Several writers in several processes commit in any order,
// so a number taken from a sequence at insert time could become visible after a higher one,
// and a reader that resumes after the highest number it saw would skip it. Instead an event's
// number is (its transaction's id << 20) + its place among the transaction's events, and
// ListEventsSince returns only numbers below (the oldest running transaction's id << 20): every
// transaction below that has ended, committed or not, and every later one gets a higher id, so
// what a reader has been shown is never followed by a lower number. A transaction numbers at
// most 2^20 events; a transaction that runs long holds the readers back until it ends.
constexpr int kEventSeqShift = 20;
// The number before a transaction's next event (an SQL expression): the transaction's base
// plus the events it numbered already, in earlier statements (Conn::tx_events, bound as `param`).
std::string EventSeqBaseSql(std::string_view param) {
  return "((pg_current_xact_id()::text::bigint << " + std::to_string(kEventSeqShift) + ") + " +
         std::string(param) + "::bigint)";
}

// An event from the ten columns at `first` of row `r`: seq, at, stage, attempt, provider, reason,
// delivery pk, notification id, device id, channel (the listings' column order).
DeliveryEvent EventFromRow(const Rows& rows, int r, int first) {
  DeliveryEvent e;
  e.seq = rows.Int(r, first);
  e.at = rows.Int(r, first + 1);
  e.stage = static_cast<DeliveryStatus>(rows.Int(r, first + 2));
  e.attempt = static_cast<int>(rows.Int(r, first + 3));
  e.provider = rows.Text(r, first + 4);
  e.reason = rows.Text(r, first + 5);
  e.delivery_id = DeliveryIdOf(rows.Int(r, first + 6));
  e.notification_id = rows.Text(r, first + 7);
  e.device_id = rows.Text(r, first + 8);
  e.channel = ParseChannel(rows.Text(r, first + 9)).value_or(Channel::kEmail);
  return e;
}

// The delivery_counts slot a writer of this process adds to (see schema.cc): the fan-out, each
// writer lane and the other writes (cancels, receipts) of a process never share a row, and
// processes mostly do not either. `offset` is one of the k*Slot constants.
constexpr int kOtherSlot = 1;
constexpr int kWriterSlot = 2;  // + the writer lane, below kSlotsPerProcess
constexpr int kSlotsPerProcess = 8;
std::string CountSlot(int offset) {
  static const int base = static_cast<int>(crypto::RandomKey()[0] % 16);
  return std::to_string(base * kSlotsPerProcess + offset);
}
// A fan-out page adds its queued deliveries to the slot of its part, above every process's
// slots: one part is paged by one caller at a time, so the parts of a notification fanned out
// at once never wait for one another's count row.
std::string FanoutCountSlot(int64_t part) { return std::to_string(16 * kSlotsPerProcess + part); }

// Applies state changes in order, as the SQLite store applies them one by one: each is checked
// against the delivery's status as the changes before it left it (model/delivery_rules.h), and
// the rows end as the last accepted change left them. Returns, per update, whether it applied.
Result<std::vector<bool>> ApplyUpdates(Conn& c, TenantPartitions& partitions,
                                       const std::vector<DeliveryUpdate>& updates, int slot) {
  std::vector<bool> applied(updates.size(), false);
  if (updates.empty()) return applied;
  // (row key, tenant), sorted by row key; tenant 0 where the caller did not know it.
  std::vector<std::pair<int64_t, int64_t>> keys;
  keys.reserve(updates.size());
  for (const DeliveryUpdate& u : updates) keys.emplace_back(u.delivery, u.tenant);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end(),
                         [](const auto& a, const auto& b) { return a.first == b.first; }),
             keys.end());
  const bool tenants_known =
      std::all_of(keys.begin(), keys.end(), [](const auto& k) { return k.second != 0; });
  std::vector<int64_t> key_pks, key_tenants;
  for (const auto& [pk, tenant] : keys) {
    key_pks.push_back(pk);
    key_tenants.push_back(tenant);
  }
  // The one partition every row is in (a batch is mostly one tenant's), named in the statements
  // (partitions.h); -1 when they are in several or the tenants are not known.
  int partition = -1;
  if (tenants_known) {
    for (const int64_t tenant : key_tenants) {
      Result<int> p = partitions.Of(c, tenant);
      if (!p.ok()) return p.take_error();
      if (partition != -1 && *p != partition) {
        partition = -1;
        break;
      }
      partition = *p;
    }
  }
  const std::string deliveries = PartitionTable("deliveries", partition);
  const std::string events_table = PartitionTable("delivery_events", partition);
  Params q;
  q.IntArray(key_pks);
  if (tenants_known) q.IntArray(key_tenants);
  // Locked in row-key order (the keys are sorted and each LATERAL probe locks its row), so two
  // writers never wait on each other in a circle. A probe per key, in the tenant's partition
  // when the callers said which (the dispatcher, cancels and receipts do), else in each: `pk =
  // ANY(array)` over the partitions was planned as a scan of every partition before the table
  // had statistics, which made each batch cost more as the table grew.
  PG_TRY(rows,
         c.Exec(std::string("SELECT d.pk, d.tenant_pk, d.notification_pk, d.status, "
                            "d.attempts, d.provider, d.provider_message_id, d.user_pk, "
                            "d.device_id, d.channel, " +
                            EventSeqBaseSql("0") + " FROM ") +
                    (tenants_known ? "unnest($1::bigint[], $2::bigint[]) "
                                     "WITH ORDINALITY AS j(k, tp, n) "
                                   : "unnest($1::bigint[]) WITH ORDINALITY AS j(k, n) ") +
                    "CROSS JOIN LATERAL (SELECT pk, tenant_pk, notification_pk, status, "
                    "attempts, provider, provider_message_id, user_pk, device_id, channel "
                    "FROM " +
                    deliveries + " WHERE pk = j.k " +
                    (tenants_known ? "AND tenant_pk = j.tp " : "") + "FOR UPDATE) d ORDER BY j.n",
                q));
  struct Row {
    int64_t tenant = 0, notification = 0, status = 0, attempts = 0, user = 0;
    std::string provider, message_id, device;
    bool has_message_id = false, has_receipts = false, new_message_id = false;
    UnixMillis at = 0;
    std::string reason;
    bool changed = false, disable = false;
  };
  std::unordered_map<int64_t, Row> state;
  state.reserve(static_cast<size_t>(rows.size()));
  // The number before this transaction's first event (each row carries it).
  const int64_t seq_base = rows.empty() ? 0 : rows.Int(0, 10);
  for (int r = 0; r < rows.size(); ++r) {
    Row row;
    row.tenant = rows.Int(r, 1);
    row.notification = rows.Int(r, 2);
    row.status = rows.Int(r, 3);
    row.attempts = rows.Int(r, 4);
    row.provider = rows.Text(r, 5);
    row.has_message_id = !rows.IsNull(r, 6);
    row.message_id = rows.Text(r, 6);
    row.user = rows.Int(r, 7);
    row.device = rows.Text(r, 8);
    const std::string channel = rows.Text(r, 9);
    row.has_receipts = channel == "email" || channel == "sms";
    state.emplace(rows.Int(r, 0), std::move(row));
  }
  // (notification, status) -> (delta, latest time)
  std::map<std::pair<int64_t, int64_t>, std::pair<int64_t, UnixMillis>> counts;
  // The events, numbered in order after those the transaction wrote before, as COPY input.
  std::string events;
  int64_t event_count = 0;
  auto event = [&](const Row& row, int64_t delivery, int64_t stage, UnixMillis at, int attempt,
                   const std::string& provider, const std::string& reason) {
    ++event_count;
    for (const int64_t v : {row.tenant, delivery, seq_base + c.tx_events + event_count, at, stage,
                            static_cast<int64_t>(attempt)}) {
      events += std::to_string(v);
      events += '\t';
    }
    AppendCopyText(events, provider);
    events += '\t';
    AppendCopyText(events, reason);
    events += '\n';
  };
  for (size_t i = 0; i < updates.size(); ++i) {
    const DeliveryUpdate& u = updates[i];
    auto it = state.find(u.delivery);
    if (it == state.end()) continue;
    Row& row = it->second;
    if (!MayRecord(static_cast<DeliveryStatus>(row.status), u.stage)) continue;
    const auto stage = static_cast<int64_t>(u.stage);
    auto& from = counts[{row.notification, row.status}];
    from.first -= 1;
    auto& to = counts[{row.notification, stage}];
    to.first += 1;
    to.second = std::max(to.second, u.at);
    row.status = stage;
    row.attempts = std::max<int64_t>(row.attempts, u.attempt);
    if (!u.provider.empty()) row.provider = u.provider;
    row.reason = u.reason;
    if (!u.provider_message_id.empty()) {
      row.new_message_id = row.new_message_id || row.message_id != u.provider_message_id;
      row.message_id = u.provider_message_id;
      row.has_message_id = true;
    }
    row.at = u.at;
    row.changed = true;
    row.disable = row.disable || u.disable_device;
    if (u.dispatched_at != 0) {
      event(row, u.delivery, static_cast<int64_t>(DeliveryStatus::kDispatched), u.dispatched_at,
            u.attempt, "", "");
    }
    event(row, u.delivery, stage, u.at, u.attempt, u.provider, u.reason);
    applied[i] = true;
  }
  std::vector<std::string> d_tenant, d_pk, d_status, d_attempts, d_provider, d_reason, d_msg, d_at;
  std::vector<std::string> off_tenant, off_user, off_device;
  // (tenant, provider, message id) -> delivery: one row each, or the INSERT's ON CONFLICT would
  // refuse the batch when a provider gave two deliveries the same id. The latest delivery wins,
  // here and against a row an earlier batch wrote, as in the SQLite store.
  std::map<std::tuple<int64_t, std::string, std::string>, int64_t> receipts;
  for (const auto& [pk, row] : state) {
    if (!row.changed) continue;
    if (row.new_message_id && row.has_receipts) {
      int64_t& to = receipts[{row.tenant, row.provider, row.message_id}];
      to = std::max(to, pk);
    }
    d_tenant.push_back(std::to_string(row.tenant));
    d_pk.push_back(std::to_string(pk));
    d_status.push_back(std::to_string(row.status));
    d_attempts.push_back(std::to_string(row.attempts));
    d_provider.push_back(row.provider);
    d_reason.push_back(row.reason);
    d_msg.push_back(row.has_message_id ? row.message_id : std::string());
    d_at.push_back(std::to_string(row.at));
    if (row.disable) {
      off_tenant.push_back(std::to_string(row.tenant));
      off_user.push_back(std::to_string(row.user));
      off_device.push_back(row.device);
    }
  }
  if (d_pk.empty()) return applied;
  Params w;
  w.TextArray(d_tenant).TextArray(d_pk).TextArray(d_status).TextArray(d_attempts);
  w.TextArray(d_provider).TextArray(d_reason).TextArray(d_msg).TextArray(d_at);
  Result<Rows> updated = c.Exec(
      "UPDATE " + deliveries +
          " d SET status = x.s::smallint, attempts = x.a::integer, provider = x.p, "
          "reason = x.r, provider_message_id = NULLIF(x.m, ''), updated_at = x.t::bigint "
          "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
          "$7::text[], $8::text[]) AS x(tp, k, s, a, p, r, m, t) "
          "WHERE d.tenant_pk = x.tp::bigint AND d.pk = x.k::bigint",
      w);
  if (!updated.ok()) return updated.take_error();
  std::vector<std::string> c_ntf, c_status, c_n, c_at;
  for (const auto& [key, delta] : counts) {
    if (delta.first == 0 && delta.second == 0) continue;
    c_ntf.push_back(std::to_string(key.first));
    c_status.push_back(std::to_string(key.second));
    c_n.push_back(std::to_string(delta.first));
    c_at.push_back(std::to_string(delta.second));
  }
  Params n;
  n.TextArray(c_ntf).TextArray(c_status).TextArray(c_n).TextArray(c_at);
  Result<Rows> counted = c.Exec(
      "INSERT INTO delivery_counts (notification_pk, status, slot, n, last_at) "
      "SELECT k::bigint, s::smallint, " +
          CountSlot(slot) +
          ", d::bigint, t::bigint "
          "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS x(k, s, d, t) "
          "ORDER BY 1, 2 ON CONFLICT (notification_pk, status, slot) DO UPDATE SET "
          "n = delivery_counts.n + excluded.n, "
          "last_at = GREATEST(delivery_counts.last_at, excluded.last_at)",
      n);
  if (!counted.ok()) return counted.take_error();
  if (!off_device.empty()) {
    Params o;
    o.TextArray(off_tenant).TextArray(off_user).TextArray(off_device);
    Result<Rows> off = c.Exec(
        "UPDATE devices v SET disabled = true FROM unnest($1::text[], $2::text[], $3::text[]) "
        "AS x(tp, u, i) WHERE v.tenant_pk = x.tp::bigint AND v.user_pk = x.u::bigint "
        "AND v.id = x.i",
        o);
    if (!off.ok()) return off.take_error();
  }
  if (!receipts.empty()) {  // how a receipt finds its delivery (RecordReceipt)
    std::vector<std::string> rc_tenant, rc_provider, rc_msg, rc_pk;
    for (const auto& [key, pk] : receipts) {
      rc_tenant.push_back(std::to_string(std::get<0>(key)));
      rc_provider.push_back(std::get<1>(key));
      rc_msg.push_back(std::get<2>(key));
      rc_pk.push_back(std::to_string(pk));
    }
    Params r;
    r.TextArray(rc_tenant).TextArray(rc_provider).TextArray(rc_msg).TextArray(rc_pk);
    Result<Rows> noted = c.Exec(
        "INSERT INTO delivery_receipts (tenant_pk, provider, message_id, delivery_pk) "
        "SELECT tp::bigint, p, m, k::bigint FROM unnest($1::text[], $2::text[], $3::text[], "
        "$4::text[]) AS x(tp, p, m, k) "
        "ON CONFLICT (tenant_pk, provider, message_id) DO UPDATE "
        "SET delivery_pk = GREATEST(delivery_receipts.delivery_pk, excluded.delivery_pk)",
        r);
    if (!noted.ok()) return noted.take_error();
  }
  if (c.tx_events + event_count >= (int64_t{1} << kEventSeqShift)) {
    return MakeError(ErrorKind::kInternal, "too_many_events",
                     "One transaction would number more than 2^20 delivery events.");
  }
  // COPY: the cheapest way in for rows the store has numbered itself (half the server's time of
  // an INSERT from arrays).
  Result<int64_t> copied = c.CopyIn("COPY " + events_table +
                                        " (tenant_pk, delivery_pk, seq, at, stage, attempt, "
                                        "provider, reason) FROM STDIN",
                                    events);
  if (!copied.ok()) return copied.take_error();
  c.tx_events += *copied;
  return applied;
}

// The insert of one fan-out page's deliveries, their queued events and count, as one
// statement: `source` is a SELECT of (user pk, external id, device id, channel, ord) for
// parameters $1.. as the caller binds them, after the five shared ones: $1 notification,
// $2 tenant, $3 deadline, $4 now, $5 channel list.
std::string InsertPageSql(const std::string& source, int64_t part) {
  return "WITH src AS (" + source +
         "), d AS (INSERT INTO deliveries (tenant_pk, notification_pk, user_pk, external_id, "
         "device_id, channel, status, deadline, updated_at) "
         "SELECT $2, $1, user_pk, external_id, device_id, channel, 0, $3, $4 FROM src "
         "ORDER BY user_pk, ord RETURNING pk, channel), "
         "q AS (SELECT " +
         EventSeqBaseSql("0") +
         " AS base), "
         "e AS (INSERT INTO delivery_events (tenant_pk, delivery_pk, seq, at, stage, attempt, "
         "provider, reason) SELECT $2, d.pk, q.base + row_number() OVER (ORDER BY d.pk), $4, 0, "
         "0, '', '' FROM d, q ORDER BY d.pk), "
         "c AS (INSERT INTO delivery_counts (notification_pk, status, slot, n, last_at) "
         "SELECT $1, 0, " +
         FanoutCountSlot(part) +
         ", COUNT(*), $4 FROM d HAVING COUNT(*) > 0 "
         "ON CONFLICT (notification_pk, status, slot) DO UPDATE SET "
         "n = delivery_counts.n + excluded.n, "
         "last_at = GREATEST(delivery_counts.last_at, excluded.last_at)) "
         "SELECT pk, channel FROM d ORDER BY pk";
}

// Runs a statement whose rows nobody reads.
Status ExecWrite(Conn& c, std::string_view sql, const Params& params) {
  Result<Rows> r = c.Exec(sql, params);
  return r.ok() ? Status::Ok() : Status(r.take_error());
}

// Before the first page of a large audience (its groups hold at least 2 x split.part_users
// members): part `part_no` of the notification, which covers every user key, is split into
// ranges of the tenant's user keys of about equal width (keys are dense, so about equal numbers
// of users), each a part of its own. Returns how many parts it added (0: not worth it).
Result<int64_t> SplitLargeAudience(Conn& c, const FanoutSplit& split, int64_t notification_pk,
                                   int64_t part_no, int64_t tenant_pk,
                                   const std::vector<int64_t>& groups) {
  Params m;
  m.Int(tenant_pk).IntArray(groups).Int(split.part_users * split.max_parts);
  PG_TRY(members, c.Exec("SELECT count(*) FROM (SELECT 1 FROM memberships WHERE tenant_pk = $1 "
                         "AND group_pk = ANY($2::bigint[]) LIMIT $3) m",
                         m));
  const int64_t parts = std::min<int64_t>(split.max_parts, members.Int(0, 0) / split.part_users);
  if (parts < 2) return 0;
  Params b;
  b.Int(tenant_pk);
  PG_TRY(bounds, c.Exec("SELECT min(pk), max(pk) FROM users WHERE tenant_pk = $1", b));
  const int64_t first = bounds.IsNull(0, 0) ? 0 : bounds.Int(0, 0) - 1;
  const int64_t span = bounds.IsNull(0, 1) ? 0 : bounds.Int(0, 1) - first;
  if (span < parts) return 0;
  // Part i covers (first + i * width, first + (i + 1) * width]; the first one from key 0 and
  // the last one to the end, so users added later are reached too.
  const int64_t width = span / parts;
  std::vector<int64_t> los, his;
  for (int64_t i = 1; i < parts; ++i) {
    los.push_back(first + width * i);
    his.push_back(i + 1 < parts ? first + width * (i + 1) : std::numeric_limits<int64_t>::max());
  }
  Params ins;
  ins.Int(notification_pk).IntArray(los).IntArray(his);
  Status s = ExecWrite(c,
                       "INSERT INTO fanout_parts (notification_pk, part, lo, hi, source, cursor, "
                       "split, paged_at) SELECT $1, o, lo, hi, 0, lo, false, 0 FROM "
                       "unnest($2::bigint[], $3::bigint[]) WITH ORDINALITY AS x(lo, hi, o)",
                       ins);
  Params w;
  w.Int(notification_pk).Int(part_no).Int(los.front());
  if (s.ok()) {
    s = ExecWrite(c,
                  "UPDATE fanout_parts SET hi = $3, split = false WHERE notification_pk = $1 "
                  "AND part = $2",
                  w);
  }
  Params t;
  t.Int(notification_pk).Int(parts - 1);
  if (s.ok()) {
    s = ExecWrite(c, "UPDATE notifications SET fanout_parts = fanout_parts + $2 WHERE pk = $1", t);
  }
  if (!s.ok()) return s.take_error();
  return parts - 1;
}

// A page's users (`u`: pk, external_id, consent_until, one row per user pk in `keys`, a
// SELECT of user_pk) joined to their devices of the notification's channels, minus members of
// the groups in $6 (bigint[]). Each join is a LATERAL look-up behind a fence (LIMIT, OFFSET 0):
// a plan the server caches for the statement then still probes the indexes row by row; left to
// choose, a generic plan hashed every user of the tenant for each page of 200 (400 ms a page).
// The exclusion sits under an OR so that it is a per-row check, run only when there are groups
// to exclude, and never an anti join over the memberships.
std::string PageSource(std::string_view keys) {
  return "SELECT u.pk AS user_pk, u.external_id, v.id AS device_id, v.channel, v.ord FROM (" +
         std::string(keys) +
         ") k CROSS JOIN LATERAL (SELECT pk, external_id, consent_until FROM users "
         "WHERE tenant_pk = $2 AND pk = k.user_pk LIMIT 1) u "
         "CROSS JOIN LATERAL (SELECT id, channel, ord, disabled FROM devices "
         "WHERE tenant_pk = $2 AND user_pk = u.pk OFFSET 0) v "
         "WHERE u.consent_until > $4 AND NOT v.disabled "
         "AND ($5 = '' OR position(' ' || v.channel || ' ' in $5) > 0) "
         "AND (cardinality($6::bigint[]) = 0 OR NOT EXISTS (SELECT 1 FROM memberships e "
         "WHERE e.tenant_pk = $2 AND e.user_pk = u.pk AND e.group_pk = ANY($6::bigint[])))";
}

}  // namespace

// ---- notifications ----

Result<CreatedNotification> PostgresStore::CreateNotification(Notification n) {
  return NoThrow([&]() -> Result<CreatedNotification> {
    Result<TenantRef> tenant = tenants_.Get(n.tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    if (n.id.empty()) n.id = crypto::RandomId("ntf_");
    const Bytes title = tenant->cipher->Seal(n.title, "ntf:title");
    const Bytes body = tenant->cipher->Seal(n.body, "ntf:body");
    std::string existing;
    Status s = Txn([&](Conn& c) -> Status {
      existing.clear();
      Params p;
      p.Text(n.id).Int(tenant->pk);
      if (n.idempotency_key.empty()) {
        p.Null();
      } else {
        p.Text(n.idempotency_key);
      }
      p.Text(n.request_hash).Blob(title).Blob(body).TextArray(n.to_groups).TextArray(n.to_users);
      p.Text(ChannelList(n.channels)).Int(n.priority).Int(n.accepted_at).Int(n.deadline);
      // With the first part of its fan-out (schema version 4), which covers every user key.
      PG_TRY(rows, c.Exec("WITH n AS (INSERT INTO notifications (id, tenant_pk, idempotency_key, "
                          "request_hash, title_sealed, body_sealed, to_groups, to_users, "
                          "channels, priority, accepted_at, deadline) "
                          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
                          "ON CONFLICT (tenant_pk, idempotency_key) DO NOTHING RETURNING pk), "
                          "f AS (INSERT INTO fanout_parts (notification_pk, part, lo, hi, source, "
                          "cursor, split, paged_at) SELECT pk, 0, 0, 9223372036854775807, 0, 0, "
                          "true, 0 FROM n) SELECT pk FROM n",
                          p));
      if (!rows.empty()) return Status::Ok();
      Params q;
      q.Int(tenant->pk).Text(n.idempotency_key);
      PG_TRY(first, c.Exec("SELECT id FROM notifications WHERE tenant_pk = $1 "
                           "AND idempotency_key = $2",
                           q));
      if (first.empty()) {  // the first one's transaction has not committed: ours conflicts
        return MakeError(ErrorKind::kUnavailable, "storage_busy",
                         "A request with this Idempotency-Key is being stored; retry shortly.");
      }
      existing = first.Text(0, 0);
      return Status::Ok();
    });
    if (!s.ok()) return s.take_error();
    if (!existing.empty()) {
      Result<Notification> first = GetNotification(n.tenant_id, existing);
      if (!first.ok()) return first.take_error();
      return CreatedNotification{std::move(*first), false};
    }
    return CreatedNotification{std::move(n), true};
  });
}

Result<Notification> PostgresStore::GetNotification(std::string_view tenant_id,
                                                    std::string_view notification_id) {
  return NoThrow([&]() -> Result<Notification> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    Params q;
    q.Int(tenant->pk).Text(notification_id);
    // The row and its counts in one statement (one snapshot): the counts as kind-1 rows.
    PG_TRY(rows,
           Read("WITH n AS (SELECT * FROM notifications WHERE tenant_pk = $1 AND id = $2) "
                "SELECT 0 AS kind, n.idempotency_key, n.request_hash, n.title_sealed, "
                "n.body_sealed, array_to_string(n.to_groups, chr(10)), "
                "array_to_string(n.to_users, chr(10)), n.channels, n.priority::bigint, "
                "n.accepted_at, n.deadline, n.fanout_done::integer::bigint, n.deliveries, "
                "n.cancelled_at FROM n "
                "UNION ALL SELECT 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, c.status::bigint, "
                "SUM(c.n)::bigint, MAX(c.last_at), 0, 0, NULL FROM n JOIN delivery_counts c "
                "ON c.notification_pk = n.pk GROUP BY c.status ORDER BY 1",
                q));
    if (rows.empty() || rows.Int(0, 0) != 0) return NotificationNotFound();
    Notification n;
    n.id = std::string(notification_id);
    n.tenant_id = std::string(tenant_id);
    if (!rows.IsNull(0, 1)) n.idempotency_key = rows.Text(0, 1);
    n.request_hash = rows.Text(0, 2);
    Result<std::string> title = tenant->cipher->Open(rows.Blob(0, 3), "ntf:title");
    Result<std::string> body = tenant->cipher->Open(rows.Blob(0, 4), "ntf:body");
    if (!title.ok() || !body.ok()) return DecryptFailed();
    n.title = std::move(*title);
    n.body = std::move(*body);
    const std::string groups = rows.Text(0, 5);
    const std::string users = rows.Text(0, 6);
    n.to_groups = Split(groups, '\n');
    n.to_users = Split(users, '\n');
    n.channels = ParseChannelList(rows.Text(0, 7));
    n.priority = static_cast<int>(rows.Int(0, 8));
    n.accepted_at = rows.Int(0, 9);
    n.deadline = rows.Int(0, 10);
    n.fanout_done = rows.Int(0, 11) != 0;
    n.deliveries = rows.Int(0, 12);
    const UnixMillis cancelled_at = rows.IsNull(0, 13) ? 0 : rows.Int(0, 13);
    UnixMillis last_update = 0;
    int64_t open = 0;
    for (int r = 1; r < rows.size(); ++r) {
      const int64_t status = rows.Int(r, 8);
      if (status < 0 || status >= static_cast<int64_t>(kDeliveryStatusCount)) continue;
      n.counts[static_cast<size_t>(status)] = rows.Int(r, 9);
      if (!IsTerminal(static_cast<DeliveryStatus>(status))) open += rows.Int(r, 9);
      last_update = std::max(last_update, rows.Int(r, 10));
    }
    DeriveNotificationStatus(n, cancelled_at, open, last_update);
    return n;
  });
}

Result<std::vector<std::string>> PostgresStore::ListUnfinishedFanouts() {
  return NoThrow([&]() -> Result<std::vector<std::string>> {
    PG_TRY(rows, Read("SELECT id FROM notifications WHERE NOT fanout_done ORDER BY pk", Params()));
    std::vector<std::string> out;
    out.reserve(static_cast<size_t>(rows.size()));
    for (int r = 0; r < rows.size(); ++r) out.push_back(rows.Text(r, 0));
    return out;
  });
}

Result<FanoutPage> PostgresStore::FanOutPage(std::string_view notification_id, int max_users) {
  if (notification_id.empty()) return NotificationNotFound();
  return FanOutPart(notification_id, max_users, {});
}

Result<FanoutPage> PostgresStore::FanOutNext(int max_users, const FanoutPublish& publish) {
  return FanOutPart({}, max_users, publish);
}

Result<FanoutPage> PostgresStore::FanOutPart(std::string_view notification_id, int max_users,
                                             const FanoutPublish& publish) {
  return NoThrow([&]() -> Result<FanoutPage> {
    max_users = std::max(1, max_users);
    FanoutPage page;
    bool idle = false;
    bool split_only = false;
    Status s = PipelineTxn([&](Conn& c) -> Status {
      page = FanoutPage{};
      idle = false;
      split_only = false;
      // The part whose turn it is, of any notification or of this one, that no other caller is
      // working on: its row stays locked until the page commits, and the next caller takes
      // another part (or this one, once the page is done, or when its caller died).
      Params q;
      std::string pick =
          "SELECT f.notification_pk, f.part, f.lo, f.hi, f.source, f.cursor, "
          "f.split::integer FROM fanout_parts f ";
      if (notification_id.empty()) {
        pick += "ORDER BY f.paged_at LIMIT 1 FOR UPDATE SKIP LOCKED";
      } else {
        q.Text(notification_id);
        pick +=
            "JOIN notifications n ON n.pk = f.notification_pk WHERE n.id = $1 "
            "ORDER BY f.paged_at LIMIT 1 FOR UPDATE OF f SKIP LOCKED";
      }
      PG_TRY(part, c.Exec(pick, q));
      if (part.empty()) {
        if (notification_id.empty()) {
          idle = true;
          return Status::Ok();
        }
        // No part left (the fan-out is over), or every part is being worked on right now.
        PG_TRY(known,
               c.Exec("SELECT id, fanout_done::integer FROM notifications WHERE id = $1", q));
        if (known.empty()) return NotificationNotFound();
        page.notification_id = known.Text(0, 0);
        page.done = known.Int(0, 1) != 0;
        return Status::Ok();
      }
      const int64_t pk = part.Int(0, 0);
      const int64_t part_no = part.Int(0, 1);
      const int64_t lo = part.Int(0, 2);
      const int64_t hi = part.Int(0, 3);
      int64_t source = part.Int(0, 4);
      int64_t cursor = std::max(part.Int(0, 5), lo);
      const bool may_split = part.Int(0, 6) != 0;
      Params nq;
      nq.Int(pk);
      PG_TRY(row, c.Exec("SELECT id, tenant_pk, array_to_string(to_groups, chr(10)), to_users, "
                         "channels, priority, deadline, (cancelled_at IS NOT NULL)::integer, "
                         "cardinality(to_groups) FROM notifications WHERE pk = $1",
                         nq));
      if (row.empty()) return NotificationNotFound();
      page.notification_id = row.Text(0, 0);
      const int64_t tenant_pk = row.Int(0, 1);
      const int64_t group_count = row.Int(0, 8);
      const std::vector<std::string> groups =
          group_count == 0 ? std::vector<std::string>() : Split(row.Text(0, 2), '\n');
      const std::string users = row.Text(0, 3);
      const std::string channels = row.Text(0, 4);
      const int64_t priority = row.Int(0, 5);
      const UnixMillis deadline = row.Int(0, 6);
      const bool cancelled = row.Int(0, 7) != 0;
      const UnixMillis now = Now();
      const auto n_groups = static_cast<int64_t>(groups.size());
      // Row keys of the notification's groups that exist, in the notification's order.
      std::vector<int64_t> group_pks(groups.size(), 0);
      if (!groups.empty()) {
        Params g;
        g.Int(tenant_pk).TextArray(groups);
        PG_TRY(found, c.Exec("SELECT group_key, pk FROM tenant_groups WHERE tenant_pk = $1 "
                             "AND group_key = ANY($2::text[])",
                             g));
        for (int r = 0; r < found.size(); ++r) {
          for (size_t i = 0; i < groups.size(); ++i) {
            if (groups[i] == found.Text(r, 0)) group_pks[i] = found.Int(r, 1);
          }
        }
      }
      std::vector<int64_t> all_groups;
      for (int64_t g : group_pks) {
        if (g != 0) all_groups.push_back(g);
      }
      if (may_split && !cancelled && !all_groups.empty()) {
        // The split commits alone, so that the new parts are open to other callers at once;
        // the first page follows in a transaction of its own.
        Result<int64_t> added = SplitLargeAudience(c, split_, pk, part_no, tenant_pk, all_groups);
        if (!added.ok()) return added.take_error();
        if (*added > 0) {
          split_only = true;
          return Status::Ok();
        }
      }
      // The page's events are the transaction's first (InsertPageSql numbers them from its
      // base): nothing before them in this transaction numbers events.
      if (c.tx_events != 0) {
        return MakeError(ErrorKind::kInternal, "event_seq_order",
                         "A fan-out page must be its transaction's first events.");
      }
      auto take = [&](Rows& inserted) {
        c.tx_events += inserted.size();
        for (int r = 0; r < inserted.size(); ++r) {
          DeliveryJob job;
          job.delivery = inserted.Int(r, 0);
          job.notification = pk;
          job.tenant = tenant_pk;
          job.deadline = deadline;
          job.channel = ParseChannel(inserted.Text(r, 1)).value_or(Channel::kEmail);
          job.priority = static_cast<uint8_t>(priority);
          page.jobs.push_back(job);
        }
      };
      if (cancelled) {  // nothing more to reach
        source = n_groups + 1;
      } else if (source < n_groups) {
        const int64_t group_pk = group_pks[static_cast<size_t>(source)];
        if (group_pk == 0) {  // deleted since: nobody to reach through it
          ++source;
          cursor = lo;
        } else {
          // One page of one group: members in user pk order after the cursor (within the
          // part), minus those of the groups before it (they were reached through those).
          std::vector<int64_t> earlier;
          for (int64_t i = 0; i < source; ++i) {
            if (group_pks[static_cast<size_t>(i)] != 0) {
              earlier.push_back(group_pks[static_cast<size_t>(i)]);
            }
          }
          Params b;
          b.Int(tenant_pk).Int(group_pk).Int(cursor).Int(max_users).Int(hi);
          PG_TRY(bound, c.Exec("SELECT MAX(user_pk), COUNT(*) FROM (SELECT user_pk FROM "
                               "memberships WHERE tenant_pk = $1 AND group_pk = $2 AND "
                               "user_pk > $3 AND user_pk <= $5 ORDER BY user_pk LIMIT $4) m",
                               b));
          const int64_t covered = bound.Int(0, 1);
          const int64_t last_user = bound.IsNull(0, 0) ? cursor : bound.Int(0, 0);
          page.users = covered;
          if (covered > 0) {
            Params p;
            p.Int(pk).Int(tenant_pk).Int(deadline).Int(now).Text(channels).IntArray(earlier);
            p.Int(group_pk).Int(cursor).Int(last_user);
            PG_TRY(inserted,
                   c.Exec(InsertPageSql(
                              PageSource("SELECT user_pk FROM memberships WHERE tenant_pk = $2 AND "
                                         "group_pk = $7 AND user_pk > $8 AND user_pk <= $9"),
                              part_no),
                          p));
            take(inserted);
          }
          if (covered < max_users) {
            ++source;
            cursor = lo;
          } else {
            cursor = last_user;
          }
        }
      } else if (source == n_groups) {
        // The named users (in the part), in pk order, except members of the notification's
        // groups.
        Params u;
        u.Int(tenant_pk).Text(users).Int(now).Int(cursor).Int(max_users).Int(hi);
        PG_TRY(named, c.Exec("SELECT pk FROM users WHERE tenant_pk = $1 AND external_id = "
                             "ANY($2::text[]) AND consent_until > $3 AND pk > $4 AND pk <= $6 "
                             "ORDER BY pk LIMIT $5",
                             u));
        std::vector<int64_t> pks;
        pks.reserve(static_cast<size_t>(named.size()));
        for (int r = 0; r < named.size(); ++r) pks.push_back(named.Int(r, 0));
        page.users = static_cast<int64_t>(pks.size());
        if (!pks.empty()) {
          Params p;
          p.Int(pk).Int(tenant_pk).Int(deadline).Int(now).Text(channels).IntArray(all_groups);
          p.IntArray(pks);
          PG_TRY(
              inserted,
              c.Exec(
                  InsertPageSql(
                      PageSource("SELECT DISTINCT user_pk FROM unnest($7::bigint[]) AS x(user_pk)"),
                      part_no),
                  p));
          take(inserted);
        }
        if (pks.size() < static_cast<size_t>(max_users)) {
          ++source;
          cursor = lo;
        } else {
          cursor = pks.back();
        }
      }
      const bool part_done = source > n_groups;
      Params w;
      w.Int(pk).Int(part_no);
      if (part_done) {
        Status gone =
            ExecWrite(c, "DELETE FROM fanout_parts WHERE notification_pk = $1 AND part = $2", w);
        if (!gone.ok()) return gone;
      } else {
        w.Int(source).Int(cursor).Int(now);
        Status moved = ExecWrite(c,
                                 "UPDATE fanout_parts SET source = $3, cursor = $4, split = "
                                 "false, paged_at = $5 WHERE notification_pk = $1 AND part = $2",
                                 w);
        if (!moved.ok()) return moved;
      }
      if (publish && !page.jobs.empty()) {
        if (Status published = publish(page.jobs); !published.ok()) return published;
      }
      // The notification's row last: parts fanned out at once wait for one another only here.
      if (!page.jobs.empty() || part_done) {
        Params t;
        t.Int(pk).Int(static_cast<int64_t>(page.jobs.size())).Int(part_done ? -1 : 0);
        PG_TRY(progress, c.Exec("UPDATE notifications SET deliveries = deliveries + $2, "
                                "fanout_parts = fanout_parts + $3, fanout_done = "
                                "(fanout_parts + $3 <= 0) WHERE pk = $1 RETURNING "
                                "fanout_done::integer",
                                t));
        page.done = !progress.empty() && progress.Int(0, 0) != 0;
      }
      return Status::Ok();
    });
    if (!s.ok()) return s.take_error();
    if (idle) {
      return MakeError(ErrorKind::kNotFound, "no_fanout_work", "Nothing is left to fan out.");
    }
    if (split_only) return FanOutPart(notification_id, max_users, publish);  // split: no more
    return page;
  });
}

Result<int64_t> PostgresStore::CancelNotification(std::string_view tenant_id,
                                                  std::string_view notification_id) {
  return NoThrow([&]() -> Result<int64_t> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    // In transactions of at most kChunk deliveries: one transaction numbers at most 2^20 events
    // (EventSeqBaseSql), and a huge one would hold its locks for long. Each marks the
    // notification cancelled (again: the first mark stays), so the fan-out stops at the first.
    constexpr int64_t kChunk = 100'000;
    int64_t cancelled = 0;
    int64_t after = 0;
    for (bool more = true; more;) {
      int64_t n = 0;
      int64_t last = after;
      Status s = Txn([&](Conn& c) -> Status {
        n = 0;
        last = after;
        more = false;
        const UnixMillis now = Now();
        Params m;
        m.Int(tenant->pk).Text(notification_id).Int(now);
        PG_TRY(marked, c.Exec("UPDATE notifications SET cancelled_at = COALESCE(cancelled_at, "
                              "$3) WHERE tenant_pk = $1 AND id = $2 RETURNING pk",
                              m));
        if (marked.empty()) return NotificationNotFound();
        Params q;
        q.Int(tenant->pk).Int(marked.Int(0, 0)).Int(after).Int(kChunk);
        PG_TRY(open, c.Exec("SELECT pk, status FROM deliveries WHERE tenant_pk = $1 AND "
                            "notification_pk = $2 AND status IN (0, 4) AND pk > $3 "
                            "ORDER BY pk LIMIT $4",
                            q));
        std::vector<DeliveryUpdate> updates;
        for (int r = 0; r < open.size(); ++r) {
          if (!IsCancellable(static_cast<DeliveryStatus>(open.Int(r, 1)))) continue;
          DeliveryUpdate u;
          u.delivery = open.Int(r, 0);
          u.tenant = tenant->pk;
          u.stage = DeliveryStatus::kCancelled;
          u.at = now;
          u.reason = "cancelled_by_request";
          updates.push_back(std::move(u));
        }
        Result<std::vector<bool>> applied = ApplyUpdates(c, partitions_, updates, kOtherSlot);
        if (!applied.ok()) return applied.take_error();
        n = static_cast<int64_t>(std::count(applied->begin(), applied->end(), true));
        more = open.size() == kChunk;
        if (!open.empty()) last = open.Int(open.size() - 1, 0);
        return Status::Ok();
      });
      if (!s.ok()) return s.take_error();
      cancelled += n;
      after = last;
    }
    return cancelled;
  });
}

// ---- deliveries ----

Result<std::vector<DeliveryJob>> PostgresStore::ListUnfinishedDeliveries(int64_t after_delivery,
                                                                         int limit) {
  return NoThrow([&]() -> Result<std::vector<DeliveryJob>> {
    Params q;
    q.Int(after_delivery).Int(std::max(1, limit));
    // The open deliveries of the notifications that have some (their counts say so): no index
    // holds the status, which keeps a status change a HOT update (schema.cc, version 3).
    PG_TRY(rows, Read("WITH o AS (SELECT notification_pk FROM delivery_counts "
                      "WHERE status IN (0, 1, 4) GROUP BY 1 HAVING sum(n) > 0) "
                      "SELECT d.pk, d.notification_pk, d.tenant_pk, d.deadline, d.channel, "
                      "d.attempts, n.priority FROM o JOIN notifications n ON n.pk = "
                      "o.notification_pk CROSS JOIN LATERAL (SELECT pk, notification_pk, "
                      "tenant_pk, deadline, channel, attempts FROM deliveries "
                      "WHERE tenant_pk = n.tenant_pk AND notification_pk = n.pk AND pk > $1 "
                      "AND status IN (0, 1, 4) ORDER BY pk LIMIT $2) d ORDER BY d.pk LIMIT $2",
                      q));
    std::vector<DeliveryJob> out;
    out.reserve(static_cast<size_t>(rows.size()));
    for (int r = 0; r < rows.size(); ++r) {
      DeliveryJob job;
      job.delivery = rows.Int(r, 0);
      job.notification = rows.Int(r, 1);
      job.tenant = rows.Int(r, 2);
      job.deadline = rows.Int(r, 3);
      job.channel = ParseChannel(rows.Text(r, 4)).value_or(Channel::kEmail);
      job.attempt = static_cast<uint16_t>(rows.Int(r, 5));
      job.priority = static_cast<uint8_t>(rows.Int(r, 6));
      out.push_back(job);
    }
    return out;
  });
}

Result<std::shared_ptr<const PostgresStore::NotificationText>> PostgresStore::Text(
    Conn& c, int64_t notification_pk, const TenantRef& tenant) {
  {
    std::lock_guard lock(texts_mu_);
    auto it = texts_.find(notification_pk);
    if (it != texts_.end()) return it->second;
  }
  Params q;
  q.Int(notification_pk);
  PG_TRY(rows, c.Exec("SELECT id, title_sealed, body_sealed, accepted_at FROM notifications "
                      "WHERE pk = $1",
                      q));
  if (rows.empty()) return std::shared_ptr<const NotificationText>();
  Result<std::string> title = tenant.cipher->Open(rows.Blob(0, 1), "ntf:title");
  Result<std::string> body = tenant.cipher->Open(rows.Blob(0, 2), "ntf:body");
  if (!title.ok() || !body.ok()) return DecryptFailed();
  auto text = std::make_shared<const NotificationText>(
      NotificationText{rows.Text(0, 0), std::move(*title), std::move(*body), rows.Int(0, 3)});
  constexpr size_t kMaxTexts = 1024;
  std::lock_guard lock(texts_mu_);
  if (texts_.size() >= kMaxTexts) texts_.clear();
  texts_[notification_pk] = text;
  return text;
}

Result<std::vector<DispatchTarget>> PostgresStore::LoadDispatchTargets(
    const std::vector<DeliveryJob>& jobs) {
  return NoThrow([&]() -> Result<std::vector<DispatchTarget>> {
    const UnixMillis now = Now();
    std::vector<DispatchTarget> out;
    if (jobs.empty()) return out;
    std::vector<int64_t> tenants, keys;
    for (const DeliveryJob& job : jobs) {
      tenants.push_back(job.tenant);
      keys.push_back(job.delivery);
    }
    Result<Pool::Lease> conn = pool_->Acquire();
    if (!conn.ok()) return conn.take_error();
    // The partition every job is in, named in the statement (partitions.h), or -1.
    int partition = -1;
    for (const int64_t tenant : tenants) {
      Result<int> p = partitions_.Of(**conn, tenant);
      if (!p.ok()) return p.take_error();
      if (partition != -1 && *p != partition) {
        partition = -1;
        break;
      }
      partition = *p;
    }
    Params q;
    q.IntArray(tenants).IntArray(keys);
    // LATERAL look-ups: one index probe per job and table, whatever plan the server caches for
    // the prepared statement (a hash join over every delivery was once its choice).
    PG_TRY(rows,
           (*conn)->Exec(
               "SELECT d.status, d.external_id, d.device_id, d.channel, t.id, "
               "d.notification_pk, (u.pk IS NOT NULL)::integer, "
               "COALESCE(u.opt_in, false)::integer, COALESCE(u.consent_from, 0), "
               "COALESCE(u.consent_until, 0), (v.id IS NOT NULL)::integer, "
               "COALESCE(v.disabled, false)::integer, v.address_sealed, d.pk "
               "FROM (SELECT DISTINCT tp, k FROM unnest($1::bigint[], $2::bigint[]) "
               "AS j(tp, k)) j "
               "CROSS JOIN LATERAL (SELECT * FROM " +
                   PartitionTable("deliveries", partition) +
                   " WHERE tenant_pk = j.tp "
                   "AND pk = j.k LIMIT 1) d "
                   "JOIN tenants t ON t.pk = d.tenant_pk "
                   "LEFT JOIN LATERAL (SELECT pk, opt_in, consent_from, consent_until "
                   "FROM " +
                   PartitionTable("users", partition) +
                   " WHERE tenant_pk = d.tenant_pk AND pk = d.user_pk "
                   "AND external_id = d.external_id LIMIT 1) u ON true "
                   "LEFT JOIN LATERAL (SELECT id, disabled, address_sealed FROM " +
                   PartitionTable("devices", partition) +
                   " WHERE tenant_pk = d.tenant_pk AND user_pk = d.user_pk AND id = d.device_id "
                   "LIMIT 1) v ON true ORDER BY d.pk",
               q));
    out.reserve(static_cast<size_t>(rows.size()));
    for (int r = 0; r < rows.size(); ++r) {
      DispatchTarget t;
      t.delivery = rows.Int(r, 13);
      t.status = static_cast<DeliveryStatus>(rows.Int(r, 0));
      t.external_id = rows.Text(r, 1);
      t.device_id = rows.Text(r, 2);
      t.channel = ParseChannel(rows.Text(r, 3)).value_or(Channel::kEmail);
      t.tenant_id = rows.Text(r, 4);
      t.suppress_reason =
          SuppressReason(Recipient{rows.Int(r, 6) != 0, rows.Int(r, 7) != 0, rows.Int(r, 8),
                                   rows.Int(r, 9), rows.Int(r, 10) != 0, rows.Int(r, 11) != 0},
                         now);
      Result<TenantRef> tenant = tenants_.Get(t.tenant_id);
      if (!tenant.ok()) return tenant.take_error();
      if (t.suppress_reason.empty()) {
        Result<std::string> address =
            OpenUserPii(*tenant, rows.Int(r, 9), rows.Blob(r, 12), AddressContext(t.channel));
        if (!address.ok()) return address.take_error();
        t.address = std::move(*address);
      }
      Result<std::shared_ptr<const NotificationText>> text = Text(**conn, rows.Int(r, 5), *tenant);
      if (!text.ok()) return text.take_error();
      if (*text == nullptr) continue;
      t.notification_id = (*text)->id;
      t.title = (*text)->title;
      t.body = (*text)->body;
      t.accepted_at = (*text)->accepted_at;
      out.push_back(std::move(t));
    }
    return out;
  });
}

// The updates of one writer transaction of a lane: what callers added until the writer began it.
struct PostgresStore::UpdateBatch {
  std::vector<DeliveryUpdate> updates;
  std::vector<std::function<void(bool committed)>> durable;
};

// Updates go to the lane of their delivery (so one delivery's updates stay in order), and each
// lane merges what arrives while its writer is busy into one ApplyUpdates: a transaction of
// five statements whatever the number of callers, where one transaction per caller made the
// writer's connection the broadcast's bottleneck.
void PostgresStore::RecordDeliveryUpdates(std::vector<DeliveryUpdate> updates,
                                          std::function<void(bool committed)> durable) {
  if (updates.empty()) {
    if (durable) durable(true);
    return;
  }
  const size_t lanes = lanes_.size();
  std::vector<std::vector<DeliveryUpdate>> parts(lanes);
  if (lanes == 1) {
    parts[0] = std::move(updates);
  } else {
    for (DeliveryUpdate& u : updates) {
      parts[static_cast<size_t>(u.delivery) % lanes].push_back(std::move(u));
    }
  }
  std::function<void(bool committed)> part_done;
  if (durable) {  // committed when every part was
    const auto touched =
        std::count_if(parts.begin(), parts.end(), [](const auto& part) { return !part.empty(); });
    auto left = std::make_shared<std::atomic<int64_t>>(touched);
    auto all = std::make_shared<std::atomic<bool>>(true);
    part_done = [left, all, durable = std::move(durable)](bool committed) {
      if (!committed) all->store(false);
      if (left->fetch_sub(1) == 1) durable(all->load());
    };
  }
  for (size_t i = 0; i < lanes; ++i) {
    if (parts[i].empty()) continue;
    UpdateLane& lane = *lanes_[i];
    std::shared_ptr<UpdateBatch> batch;
    {
      std::lock_guard lock(lane.mu);
      if (lane.open == nullptr) {
        lane.open = std::make_shared<UpdateBatch>();
        batch = lane.open;  // a new batch: posted below
      }
      auto& into = lane.open->updates;
      into.insert(into.end(), std::make_move_iterator(parts[i].begin()),
                  std::make_move_iterator(parts[i].end()));
      if (part_done) lane.open->durable.push_back(part_done);
    }
    if (batch == nullptr) continue;  // joins the batch a writer transaction has yet to begin
    const int slot = kWriterSlot + static_cast<int>(i);
    lane.writer->Post(
        [this, &lane, batch, slot](Conn& c) -> Status {
          {  // closed to new updates from here on (a retry of this work finds it closed)
            std::lock_guard lock(lane.mu);
            if (lane.open == batch) lane.open = nullptr;
          }
          Result<std::vector<bool>> applied = ApplyUpdates(c, partitions_, batch->updates, slot);
          return applied.ok() ? Status::Ok() : Status(applied.take_error());
        },
        [&lane, batch](const Status& st) {
          {  // closed here too: the writer may give up (the database gone for 30 s) without
             // running the work, and a batch left open would take every later update
            std::lock_guard lock(lane.mu);
            if (lane.open == batch) lane.open = nullptr;
          }
          for (const auto& done : batch->durable) done(st.ok());
        });
  }
}

Result<int> PostgresStore::PartitionOf(int64_t tenant_pk) {
  if (std::optional<int> known = partitions_.Known(tenant_pk)) return *known;
  Result<Pool::Lease> conn = pool_->Acquire();
  if (!conn.ok()) return conn.take_error();
  return partitions_.Of(**conn, tenant_pk);
}

Result<Page<Delivery>> PostgresStore::ListDeliveries(std::string_view tenant_id,
                                                     std::string_view notification_id,
                                                     std::optional<DeliveryStatus> status,
                                                     const PageRequest& page) {
  return NoThrow([&]() -> Result<Page<Delivery>> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    Result<int64_t> after = DecodeIdCursor(kDeliveryCursor, page.cursor);
    if (!after.ok()) return after.take_error();
    const int limit = ClampLimit(page.limit);
    Result<int> partition = PartitionOf(tenant->pk);
    if (!partition.ok()) return partition.take_error();
    Params q;
    q.Int(tenant->pk).Text(notification_id).Int(*after).Int(limit + 1);
    q.Int(status ? static_cast<int64_t>(*status) : -1);
    // The notification's row comes first (kind 0), so an unknown id is told from no deliveries.
    // The deliveries are read in the order of their notification index, in the tenant's
    // partition, with no condition on the tenant (the notification is the tenant's): with one,
    // the planner once combined the notification index with the tenant's whole external-id
    // index and sorted what matched (50 ms a page of 1,000).
    PG_TRY(rows,
           Read("WITH n AS (SELECT pk FROM notifications WHERE tenant_pk = $1 AND id = $2) "
                "SELECT * FROM (SELECT 0 AS kind, 0::bigint AS pk, '' AS a, '' AS b, '' AS c, "
                "0::bigint AS s, 0::bigint AS t, '' AS p, NULL::text AS m, '' AS r, "
                "0::bigint AS dl, 0::bigint AS up FROM n "
                "UNION ALL (SELECT 1, d.pk, d.external_id, d.device_id, d.channel, d.status, "
                "d.attempts, d.provider, d.provider_message_id, d.reason, d.deadline, "
                "d.updated_at FROM " +
                    PartitionTable("deliveries", *partition) +
                    " d WHERE d.notification_pk = (SELECT pk FROM n) AND d.pk > $3 "
                    "AND ($5 < 0 OR d.status = $5) "
                    "ORDER BY d.notification_pk, d.pk LIMIT $4)) x ORDER BY kind, pk",
                q));
    if (rows.empty() || rows.Int(0, 0) != 0) return NotificationNotFound();
    Page<Delivery> out;
    for (int r = 1; r < rows.size(); ++r) {
      if (static_cast<int>(out.items.size()) == limit) {
        out.next_cursor =
            EncodeIdCursor(kDeliveryCursor, DeliveryKeyOf(out.items.back().id).value_or(0));
        break;
      }
      Delivery d;
      d.id = DeliveryIdOf(rows.Int(r, 1));
      d.notification_id = std::string(notification_id);
      d.external_id = rows.Text(r, 2);
      d.device_id = rows.Text(r, 3);
      d.channel = ParseChannel(rows.Text(r, 4)).value_or(Channel::kEmail);
      d.status = static_cast<DeliveryStatus>(rows.Int(r, 5));
      d.attempts = static_cast<int>(rows.Int(r, 6));
      d.provider = rows.Text(r, 7);
      if (!rows.IsNull(r, 8)) d.provider_message_id = rows.Text(r, 8);
      d.reason = rows.Text(r, 9);
      d.deadline = rows.Int(r, 10);
      d.updated_at = rows.Int(r, 11);
      out.items.push_back(std::move(d));
    }
    return out;
  });
}

Result<Page<DeliveryEvent>> PostgresStore::ListUserEvents(std::string_view tenant_id,
                                                          std::string_view external_id,
                                                          const PageRequest& page) {
  return NoThrow([&]() -> Result<Page<DeliveryEvent>> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    Result<int64_t> before = DecodeIdCursor(kEventCursor, page.cursor);
    if (!before.ok()) return before.take_error();
    const int limit = ClampLimit(page.limit);
    Params q;
    q.Int(tenant->pk).Text(external_id).Int(*before).Int(limit + 1).Int(Now());
    PG_TRY(rows,
           Read("WITH u AS (SELECT pk FROM users WHERE tenant_pk = $1 AND external_id = $2 "
                "AND consent_until > $5) "
                "SELECT * FROM (SELECT 0 AS kind, 0::bigint AS seq, 0::bigint AS at, 0 AS st, "
                "0 AS att, '' AS p, '' AS r, 0::bigint AS d, '' AS n, '' AS dev, '' AS ch FROM u "
                "UNION ALL (SELECT 1, e.seq, e.at, e.stage, e.attempt, e.provider, e.reason, "
                "d.pk, n.id, d.device_id, d.channel FROM u, deliveries d "
                "JOIN delivery_events e ON e.tenant_pk = $1 AND e.delivery_pk = d.pk "
                "JOIN notifications n ON n.pk = d.notification_pk "
                "WHERE d.tenant_pk = $1 AND d.external_id = $2 AND ($3 = 0 OR e.seq < $3) "
                "ORDER BY e.seq DESC LIMIT $4)) x ORDER BY kind, seq DESC",
                q));
    if (rows.empty() || rows.Int(0, 0) != 0) return UserNotFound();
    Page<DeliveryEvent> out;
    for (int r = 1; r < rows.size(); ++r) {
      if (static_cast<int>(out.items.size()) == limit) {
        out.next_cursor = EncodeIdCursor(kEventCursor, out.items.back().seq);
        break;
      }
      DeliveryEvent e = EventFromRow(rows, r, 1);
      e.external_id = std::string(external_id);
      out.items.push_back(std::move(e));
    }
    return out;
  });
}

Result<std::vector<DeliveryEvent>> PostgresStore::ListEventsSince(std::string_view tenant_id,
                                                                  int64_t after_seq, int limit) {
  return NoThrow([&]() -> Result<std::vector<DeliveryEvent>> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    Params q;
    q.Int(tenant->pk).Int(after_seq).Int(ClampLimit(limit));
    PG_TRY(rows, Read("SELECT e.seq, e.at, e.stage, e.attempt, e.provider, e.reason, d.pk, n.id, "
                      "d.device_id, d.channel, d.external_id FROM delivery_events e "
                      "CROSS JOIN LATERAL (SELECT pk, notification_pk, external_id, device_id, "
                      "channel FROM deliveries WHERE tenant_pk = $1 AND pk = e.delivery_pk "
                      "LIMIT 1) d "
                      "CROSS JOIN LATERAL (SELECT id FROM notifications "
                      "WHERE pk = d.notification_pk LIMIT 1) n "
                      "WHERE e.tenant_pk = $1 AND e.seq > $2 AND e.seq < "
                      "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << " +
                          std::to_string(kEventSeqShift) + ") ORDER BY e.seq LIMIT $3",
                      q));
    std::vector<DeliveryEvent> out;
    out.reserve(static_cast<size_t>(rows.size()));
    for (int r = 0; r < rows.size(); ++r) {
      DeliveryEvent e = EventFromRow(rows, r, 0);
      e.external_id = rows.Text(r, 10);
      out.push_back(std::move(e));
    }
    return out;
  });
}

Result<ReceiptOutcome> PostgresStore::RecordReceipt(std::string_view tenant_id,
                                                    std::string_view provider,
                                                    std::string_view provider_message_id,
                                                    DeliveryStatus stage, std::string_view reason) {
  return NoThrow([&]() -> Result<ReceiptOutcome> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    ReceiptOutcome outcome = ReceiptOutcome::kApplied;
    Status written = Txn([&](Conn& c) -> Status {
      Params q;
      q.Int(tenant->pk).Text(provider).Text(provider_message_id);
      PG_TRY(row, c.Exec("SELECT d.pk, d.status FROM delivery_receipts r JOIN deliveries d "
                         "ON d.tenant_pk = r.tenant_pk AND d.pk = r.delivery_pk "
                         "WHERE r.tenant_pk = $1 AND r.provider = $2 AND r.message_id = $3 "
                         "AND d.provider = $2 AND d.provider_message_id = $3 "
                         "AND d.channel IN ('email', 'sms') FOR UPDATE OF d",
                         q));
      if (row.empty()) {
        return MakeError(ErrorKind::kNotFound, "delivery_not_found",
                         "No sent delivery has this provider message id.", "message_id");
      }
      switch (ReceiptMoveFor(static_cast<DeliveryStatus>(row.Int(0, 1)), stage)) {
        case ReceiptMove::kApply: break;
        case ReceiptMove::kDuplicate: outcome = ReceiptOutcome::kDuplicate; return Status::Ok();
        case ReceiptMove::kStale: outcome = ReceiptOutcome::kStale; return Status::Ok();
      }
      outcome = ReceiptOutcome::kApplied;
      DeliveryUpdate u;
      u.delivery = row.Int(0, 0);
      u.tenant = tenant->pk;
      u.stage = stage;
      u.at = Now();
      u.provider = std::string(provider);
      u.reason = std::string(reason);
      Result<std::vector<bool>> applied = ApplyUpdates(c, partitions_, {u}, kOtherSlot);
      return applied.ok() ? Status::Ok() : Status(applied.take_error());
    });
    if (!written.ok()) return written.take_error();
    return outcome;
  });
}

}  // namespace herald::pg

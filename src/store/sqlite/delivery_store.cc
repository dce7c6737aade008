// SqliteStore methods for deliveries: what the dispatcher reads at the moment of sending, the
// state changes it records, the listings of the API, receipts, and the queue's rebuild.
#include <algorithm>
#include <map>
#include <utility>

#include "model/delivery_rules.h"
#include "store/cursor.h"
#include "store/sqlite/sqlite_store_impl.h"
#include "store/sqlite/user_rows.h"

namespace herald::sqlite {
namespace {

constexpr char kDeliveryCursor = 'd';
constexpr char kEventCursor = 'e';

Error NotificationNotFound() {
  return MakeError(ErrorKind::kNotFound, "notification_not_found",
                   "No notification with this id exists for this tenant.", "id");
}

}  // namespace

Result<std::vector<DeliveryJob>> SqliteStore::ListUnfinishedDeliveries(int64_t after_delivery,
                                                                       int limit) {
  return NoThrow([&]() -> Result<std::vector<DeliveryJob>> {
    ReadPool::Lease conn = readers_->Acquire();
    Stmt q = conn->Prepare(
        "SELECT d.pk, d.notification_pk, d.tenant_pk, d.deadline, d.channel, d.attempts, "
        "n.priority FROM deliveries d JOIN notifications n ON n.pk = d.notification_pk "
        "WHERE d.pk > ?1 AND d.status IN (0, 1, 4) ORDER BY d.pk LIMIT ?2");
    q.Bind(1, after_delivery).Bind(2, int64_t{std::max(1, limit)});
    std::vector<DeliveryJob> out;
    for (;;) {
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) return out;
      DeliveryJob job;
      job.delivery = q.Int(0);
      job.notification = q.Int(1);
      job.tenant = q.Int(2);
      job.deadline = q.Int(3);
      job.channel = ParseChannel(q.Text(4)).value_or(Channel::kEmail);
      job.attempt = static_cast<uint16_t>(q.Int(5));
      job.priority = static_cast<uint8_t>(q.Int(6));
      out.push_back(job);
    }
  });
}

std::shared_ptr<const SqliteStore::NotificationText> SqliteStore::CachedText(
    int64_t notification_pk) {
  std::lock_guard lock(texts_mu_);
  auto it = texts_.find(notification_pk);
  return it == texts_.end() ? nullptr : it->second;
}

void SqliteStore::CacheText(int64_t notification_pk, std::shared_ptr<const NotificationText> text) {
  constexpr size_t kMaxTexts = 1024;  // notifications being dispatched at once, plenty
  std::lock_guard lock(texts_mu_);
  if (texts_.size() >= kMaxTexts) texts_.clear();
  texts_[notification_pk] = std::move(text);
}

Result<std::vector<DispatchTarget>> SqliteStore::LoadDispatchTargets(
    const std::vector<DeliveryJob>& jobs) {
  return NoThrow([&]() -> Result<std::vector<DispatchTarget>> {
    const UnixMillis now = Now();
    ReadPool::Lease conn = readers_->Acquire();
    ReadTxn txn(*conn);
    if (!txn.status().ok()) return txn.status().error();
    std::map<int64_t, std::shared_ptr<const NotificationText>> texts;  // by notification pk
    std::vector<DispatchTarget> out;
    out.reserve(jobs.size());
    std::vector<int64_t> keys;
    keys.reserve(jobs.size());
    for (const DeliveryJob& job : jobs) keys.push_back(job.delivery);
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    if (keys.empty()) return out;
    // Jobs taken together are mostly neighbours in row-key order (a fan-out's pages): one range
    // scan reads them when the range is not much wider than the jobs, else one look-up each.
    const auto span = static_cast<size_t>(keys.back() - keys.front()) + 1;
    const bool by_range = span <= 2 * keys.size() + 16;
    constexpr std::string_view kSelect =
        "SELECT d.status, d.external_id, d.device_id, d.channel, t.id, d.notification_pk, "
        "u.pk IS NOT NULL, u.opt_in, u.consent_from, u.consent_until, "
        "v.id IS NOT NULL, v.disabled, v.address_sealed, d.pk "
        "FROM deliveries d JOIN tenants t ON t.pk = d.tenant_pk "
        "LEFT JOIN users u ON u.pk = d.user_pk AND u.tenant_pk = d.tenant_pk "
        "AND u.external_id = d.external_id "
        "LEFT JOIN devices v ON v.user_pk = d.user_pk AND v.id = d.device_id ";
    static const std::string kByRange = std::string(kSelect) + "WHERE d.pk BETWEEN ?1 AND ?2";
    static const std::string kByKey = std::string(kSelect) + "WHERE d.pk = ?1";
    // One row of the select below, for a job of this call: its target, in `out`.
    auto take = [&](Stmt& q) -> Status {
      DispatchTarget t;
      t.delivery = q.Int(13);
      t.status = static_cast<DeliveryStatus>(q.Int(0));
      t.external_id = q.Text(1);
      t.device_id = q.Text(2);
      t.channel = ParseChannel(q.Text(3)).value_or(Channel::kEmail);
      t.tenant_id = q.Text(4);
      const int64_t notification_pk = q.Int(5);
      t.suppress_reason = SuppressReason(Recipient{q.Int(6) != 0, q.Int(7) != 0, q.Int(8), q.Int(9),
                                                   q.Int(10) != 0, q.Int(11) != 0},
                                         now);
      Result<TenantRef> tenant = tenants_.Get(t.tenant_id);
      if (!tenant.ok()) return tenant.error();
      if (t.suppress_reason.empty()) {
        std::string context = "addr:";
        context.append(ToString(t.channel));
        Result<std::string> address = tenant->cipher->Open(q.Blob(12), context);
        if (!address.ok()) return Status(DecryptFailed());
        t.address = std::move(*address);
      }
      auto it = texts.find(notification_pk);
      if (it == texts.end()) {
        std::shared_ptr<const NotificationText> text = CachedText(notification_pk);
        if (!text) {
          Stmt n = conn->Prepare(
              "SELECT id, title_sealed, body_sealed, accepted_at FROM notifications WHERE pk = ?1");
          n.Bind(1, notification_pk);
          Result<bool> nrow = n.Next();
          if (!nrow.ok()) return nrow.error();
          if (!*nrow) return Status::Ok();
          Result<std::string> title = tenant->cipher->Open(n.Blob(1), "ntf:title");
          Result<std::string> body = tenant->cipher->Open(n.Blob(2), "ntf:body");
          if (!title.ok() || !body.ok()) return Status(DecryptFailed());
          text = std::make_shared<const NotificationText>(
              NotificationText{n.Text(0), std::move(*title), std::move(*body), n.Int(3)});
          CacheText(notification_pk, text);
        }
        it = texts.emplace(notification_pk, std::move(text)).first;
      }
      t.notification_id = it->second->id;
      t.title = it->second->title;
      t.body = it->second->body;
      t.accepted_at = it->second->accepted_at;
      out.push_back(std::move(t));
      return Status::Ok();
    };
    if (by_range) {
      Stmt q = conn->Prepare(kByRange);
      q.Bind(1, keys.front()).Bind(2, keys.back());
      for (;;) {
        Result<bool> row = q.Next();
        if (!row.ok()) return row.take_error();
        if (!*row) break;
        if (!std::binary_search(keys.begin(), keys.end(), q.Int(13))) continue;
        Status s = take(q);
        if (!s.ok()) return s.error();
      }
    } else {
      for (int64_t key : keys) {
        Stmt q = conn->Prepare(kByKey);
        q.Bind(1, key);
        Result<bool> row = q.Next();
        if (!row.ok()) return row.take_error();
        if (!*row) continue;
        Status s = take(q);
        if (!s.ok()) return s.error();
      }
    }
    return out;
  });
}

void SqliteStore::RecordDeliveryUpdates(std::vector<DeliveryUpdate> updates,
                                        std::function<void(bool committed)> durable) {
  if (updates.empty()) {
    if (durable) durable(true);
    return;
  }
  std::function<void(const Status&)> done;
  if (durable) {
    done = [durable = std::move(durable)](const Status& st) { durable(st.ok()); };
  }
  writer_->Post(
      [this, updates = std::move(updates)](Connection& c) -> Status {
        CountDeltas counts;
        for (const DeliveryUpdate& u : updates) {
          Result<bool> r = ApplyDeliveryUpdate(c, event_seq_, counts, u);
          if (!r.ok()) return r.take_error();
        }
        return counts.Apply(c);
      },
      std::move(done));
}

Result<Page<Delivery>> SqliteStore::ListDeliveries(std::string_view tenant_id,
                                                   std::string_view notification_id,
                                                   std::optional<DeliveryStatus> status,
                                                   const PageRequest& page) {
  return NoThrow([&]() -> Result<Page<Delivery>> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    Result<int64_t> after = DecodeIdCursor(kDeliveryCursor, page.cursor);
    if (!after.ok()) return after.take_error();
    const int limit = ClampLimit(page.limit);
    ReadPool::Lease conn = readers_->Acquire();
    ReadTxn txn(*conn);
    if (!txn.status().ok()) return txn.status().error();
    int64_t pk = 0;
    {
      Stmt q = conn->Prepare("SELECT pk FROM notifications WHERE tenant_pk = ?1 AND id = ?2");
      q.Bind(1, tenant->pk).Bind(2, notification_id);
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) return NotificationNotFound();
      pk = q.Int(0);
    }
    // Queued and sent deliveries are most of a notification's: its deliveries are read in order
    // and filtered. Any other status has an index of its own (the uncommon-status one, which
    // SQLite uses only when the query states its condition).
    static const std::string kSelect =
        "SELECT pk, external_id, device_id, channel, status, attempts, provider, "
        "provider_message_id, reason, deadline, updated_at FROM deliveries "
        "WHERE notification_pk = ?1 AND pk > ?2 ";
    static const std::string kAll = kSelect + "ORDER BY pk LIMIT ?3";
    static const std::string kCommon = kSelect + "AND status = ?4 ORDER BY pk LIMIT ?3";
    static const std::string kUncommon =
        kSelect + "AND status = ?4 AND status NOT IN (0, 2) ORDER BY pk LIMIT ?3";
    const bool common =
        status && (*status == DeliveryStatus::kQueued || *status == DeliveryStatus::kSent);
    Stmt q = conn->Prepare(!status ? kAll : common ? kCommon : kUncommon);
    q.Bind(1, pk).Bind(2, *after).Bind(3, int64_t{limit + 1});
    if (status) q.Bind(4, static_cast<int64_t>(*status));
    Page<Delivery> out;
    for (;;) {
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) break;
      if (static_cast<int>(out.items.size()) == limit) {
        out.next_cursor =
            EncodeIdCursor(kDeliveryCursor, DeliveryKeyOf(out.items.back().id).value_or(0));
        break;
      }
      Delivery d;
      d.id = DeliveryIdOf(q.Int(0));
      d.notification_id = std::string(notification_id);
      d.external_id = q.Text(1);
      d.device_id = q.Text(2);
      d.channel = ParseChannel(q.Text(3)).value_or(Channel::kEmail);
      d.status = static_cast<DeliveryStatus>(q.Int(4));
      d.attempts = static_cast<int>(q.Int(5));
      d.provider = q.Text(6);
      if (!q.IsNull(7)) d.provider_message_id = q.Text(7);
      d.reason = q.Text(8);
      d.deadline = q.Int(9);
      d.updated_at = q.Int(10);
      out.items.push_back(std::move(d));
    }
    return out;
  });
}

namespace {

// An event from the first ten columns of the listings' rows: seq, at, stage, attempt, provider,
// reason, delivery pk, notification id, device id, channel.
DeliveryEvent EventFromRow(const Stmt& q) {
  DeliveryEvent e;
  e.seq = q.Int(0);
  e.at = q.Int(1);
  e.stage = static_cast<DeliveryStatus>(q.Int(2));
  e.attempt = static_cast<int>(q.Int(3));
  e.provider = q.Text(4);
  e.reason = q.Text(5);
  e.delivery_id = DeliveryIdOf(q.Int(6));
  e.notification_id = q.Text(7);
  e.device_id = q.Text(8);
  e.channel = ParseChannel(q.Text(9)).value_or(Channel::kEmail);
  return e;
}

}  // namespace

Result<std::vector<DeliveryEvent>> SqliteStore::ListEventsSince(std::string_view tenant_id,
                                                                int64_t after_seq, int limit) {
  return NoThrow([&]() -> Result<std::vector<DeliveryEvent>> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    ReadPool::Lease conn = readers_->Acquire();
    ReadTxn txn(*conn);
    if (!txn.status().ok()) return txn.status().error();
    Stmt q = conn->Prepare(
        "SELECT e.seq, e.at, e.stage, e.attempt, e.provider, e.reason, d.pk, n.id, d.device_id, "
        "d.channel, d.external_id FROM delivery_events e "
        "JOIN deliveries d ON d.pk = e.delivery_pk "
        "JOIN notifications n ON n.pk = d.notification_pk "
        "WHERE e.seq > ?2 AND d.tenant_pk = ?1 ORDER BY e.seq LIMIT ?3");
    q.Bind(1, tenant->pk).Bind(2, after_seq).Bind(3, int64_t{ClampLimit(limit)});
    std::vector<DeliveryEvent> out;
    for (;;) {
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) break;
      DeliveryEvent e = EventFromRow(q);
      e.external_id = q.Text(10);
      out.push_back(std::move(e));
    }
    return out;
  });
}

Result<Page<DeliveryEvent>> SqliteStore::ListUserEvents(std::string_view tenant_id,
                                                        std::string_view external_id,
                                                        const PageRequest& page) {
  return NoThrow([&]() -> Result<Page<DeliveryEvent>> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    Result<int64_t> before = DecodeIdCursor(kEventCursor, page.cursor);
    if (!before.ok()) return before.take_error();
    const int limit = ClampLimit(page.limit);
    ReadPool::Lease conn = readers_->Acquire();
    ReadTxn txn(*conn);
    if (!txn.status().ok()) return txn.status().error();
    Result<int64_t> user = FindVisibleUser(*conn, tenant->pk, external_id, Now());
    if (!user.ok()) return user.take_error();
    Stmt q = conn->Prepare(
        "SELECT e.seq, e.at, e.stage, e.attempt, e.provider, e.reason, d.pk, n.id, d.device_id, "
        "d.channel FROM deliveries d JOIN delivery_events e ON e.delivery_pk = d.pk "
        "JOIN notifications n ON n.pk = d.notification_pk "
        "WHERE d.tenant_pk = ?1 AND d.external_id = ?2 AND (?3 = 0 OR e.seq < ?3) "
        "ORDER BY e.seq DESC LIMIT ?4");
    q.Bind(1, tenant->pk).Bind(2, external_id).Bind(3, *before).Bind(4, int64_t{limit + 1});
    Page<DeliveryEvent> out;
    for (;;) {
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) break;
      if (static_cast<int>(out.items.size()) == limit) {
        out.next_cursor = EncodeIdCursor(kEventCursor, out.items.back().seq);
        break;
      }
      DeliveryEvent e = EventFromRow(q);
      e.external_id = std::string(external_id);
      out.items.push_back(std::move(e));
    }
    return out;
  });
}

Result<ReceiptOutcome> SqliteStore::RecordReceipt(std::string_view tenant_id,
                                                  std::string_view provider,
                                                  std::string_view provider_message_id,
                                                  DeliveryStatus stage, std::string_view reason) {
  return NoThrow([&]() -> Result<ReceiptOutcome> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    const std::string p(provider);
    const std::string r(reason);
    ReceiptOutcome outcome = ReceiptOutcome::kApplied;
    Status written = writer_->Run([&](Connection& c) -> Status {
      int64_t pk = 0;
      {
        Stmt q = c.Prepare(
            "SELECT pk, status FROM deliveries WHERE provider = ?1 AND provider_message_id = ?2 "
            "AND provider_message_id IS NOT NULL AND channel IN ('email', 'sms') "
            "AND tenant_pk = ?3 ORDER BY pk DESC LIMIT 1");  // the latest, as in PostgreSQL
        q.Bind(1, provider).Bind(2, provider_message_id).Bind(3, tenant->pk);
        Result<bool> row = q.Next();
        if (!row.ok()) return row.take_error();
        if (!*row) {
          return MakeError(ErrorKind::kNotFound, "delivery_not_found",
                           "No sent delivery has this provider message id.", "message_id");
        }
        pk = q.Int(0);
        switch (ReceiptMoveFor(static_cast<DeliveryStatus>(q.Int(1)), stage)) {
          case ReceiptMove::kApply: break;
          case ReceiptMove::kDuplicate: outcome = ReceiptOutcome::kDuplicate; return Status::Ok();
          case ReceiptMove::kStale: outcome = ReceiptOutcome::kStale; return Status::Ok();
        }
      }
      outcome = ReceiptOutcome::kApplied;
      DeliveryUpdate u;
      u.delivery = pk;
      u.stage = stage;
      u.at = Now();
      u.provider = p;
      u.reason = r;
      CountDeltas counts;
      Result<bool> applied = ApplyDeliveryUpdate(c, event_seq_, counts, u);
      if (!applied.ok()) return applied.take_error();
      return counts.Apply(c);
    });
    if (!written.ok()) return written.take_error();
    return outcome;
  });
}

}  // namespace herald::sqlite

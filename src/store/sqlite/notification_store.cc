// SqliteStore methods for notifications: create (with idempotency), read with counts, cancel,
// and the fan-out that turns a notification's audience into deliveries, page by page.
#include <algorithm>
#include <limits>
#include <set>
#include <utility>

#include "crypto/crypto.h"
#include "store/row_text.h"
#include "store/sqlite/delivery_rows.h"
#include "store/sqlite/sqlite_store_impl.h"
#include "store/sqlite/user_rows.h"

namespace herald::sqlite {
namespace {

Error NotificationNotFound() {
  return MakeError(ErrorKind::kNotFound, "notification_not_found",
                   "No notification with this id exists for this tenant.", "id");
}

// The notification row as the fan-out needs it.
struct FanoutRow {
  int64_t pk = 0;
  int64_t tenant_pk = 0;
  std::vector<std::string> groups;
  std::vector<std::string> users;
  std::string channels;
  int64_t priority = 10;
  UnixMillis deadline = 0;
  int64_t source = 0;
  int64_t cursor = 0;
  bool done = false;
  bool cancelled = false;
};

Result<std::optional<FanoutRow>> ReadFanoutRow(Connection& c, std::string_view id) {
  Stmt q = c.Prepare(
      "SELECT pk, tenant_pk, to_groups, to_users, channels, priority, deadline, fanout_source, "
      "fanout_cursor, fanout_done, cancelled_at IS NOT NULL FROM notifications WHERE id = ?1");
  q.Bind(1, id);
  Result<bool> row = q.Next();
  if (!row.ok()) return row.take_error();
  if (!*row) return std::optional<FanoutRow>();
  FanoutRow r;
  r.pk = q.Int(0);
  r.tenant_pk = q.Int(1);
  r.groups = Split(q.Text(2), '\n');
  r.users = Split(q.Text(3), '\n');
  r.channels = q.Text(4);
  r.priority = q.Int(5);
  r.deadline = q.Int(6);
  r.source = q.Int(7);
  r.cursor = q.Int(8);
  r.done = q.Int(9) != 0;
  r.cancelled = q.Int(10) != 0;
  return std::optional<FanoutRow>(std::move(r));
}

// "[1,2,3]": a JSON array for json_each.
std::string PkArray(const std::vector<int64_t>& pks) {
  std::string out = "[";
  for (size_t i = 0; i < pks.size(); ++i) {
    if (i > 0) out.push_back(',');
    out += std::to_string(pks[i]);
  }
  return out + "]";
}

}  // namespace

Result<CreatedNotification> SqliteStore::CreateNotification(Notification n) {
  return NoThrow([&]() -> Result<CreatedNotification> {
    Result<TenantRef> tenant = tenants_.Get(n.tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    if (n.id.empty()) n.id = crypto::RandomId("ntf_");
    const Bytes title = tenant->cipher->Seal(n.title, "ntf:title");
    const Bytes body = tenant->cipher->Seal(n.body, "ntf:body");
    const std::string groups = Join(n.to_groups, '\n');
    const std::string users = Join(n.to_users, '\n');
    const std::string channels = ChannelList(n.channels);
    std::string existing;
    Status s = writer_->Run([&](Connection& c) -> Status {
      if (!n.idempotency_key.empty()) {
        Stmt q =
            c.Prepare("SELECT id FROM notifications WHERE tenant_pk = ?1 AND idempotency_key = ?2");
        q.Bind(1, tenant->pk).Bind(2, n.idempotency_key);
        Result<bool> row = q.Next();
        if (!row.ok()) return row.take_error();
        if (*row) {
          existing = q.Text(0);
          return Status::Ok();
        }
      }
      Stmt w = c.Prepare(
          "INSERT INTO notifications (id, tenant_pk, idempotency_key, request_hash, title_sealed, "
          "body_sealed, to_groups, to_users, channels, priority, accepted_at, deadline) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
      w.Bind(1, n.id).Bind(2, tenant->pk);
      if (n.idempotency_key.empty()) {
        w.BindNull(3);
      } else {
        w.Bind(3, n.idempotency_key);
      }
      w.Bind(4, n.request_hash).BindBlob(5, title).BindBlob(6, body).Bind(7, groups);
      w.Bind(8, users).Bind(9, channels).Bind(10, int64_t{n.priority});
      w.Bind(11, n.accepted_at).Bind(12, n.deadline);
      return w.Run();
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

Result<Notification> SqliteStore::GetNotification(std::string_view tenant_id,
                                                  std::string_view notification_id) {
  return NoThrow([&]() -> Result<Notification> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    ReadPool::Lease conn = readers_->Acquire();
    ReadTxn txn(*conn);
    if (!txn.status().ok()) return txn.status().error();
    Notification n;
    int64_t pk = 0;
    UnixMillis cancelled_at = 0;
    {
      Stmt q = conn->Prepare(
          "SELECT pk, idempotency_key, request_hash, title_sealed, body_sealed, to_groups, "
          "to_users, channels, priority, accepted_at, deadline, fanout_done, deliveries, "
          "cancelled_at FROM notifications WHERE tenant_pk = ?1 AND id = ?2");
      q.Bind(1, tenant->pk).Bind(2, notification_id);
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) return NotificationNotFound();
      pk = q.Int(0);
      n.id = std::string(notification_id);
      n.tenant_id = std::string(tenant_id);
      if (!q.IsNull(1)) n.idempotency_key = q.Text(1);
      n.request_hash = q.Text(2);
      Result<std::string> title = tenant->cipher->Open(q.Blob(3), "ntf:title");
      Result<std::string> body = tenant->cipher->Open(q.Blob(4), "ntf:body");
      if (!title.ok() || !body.ok()) return DecryptFailed();
      n.title = std::move(*title);
      n.body = std::move(*body);
      std::string groups = q.Text(5);
      std::string users = q.Text(6);
      n.to_groups = Split(groups, '\n');
      n.to_users = Split(users, '\n');
      n.channels = ParseChannelList(q.Text(7));
      n.priority = static_cast<int>(q.Int(8));
      n.accepted_at = q.Int(9);
      n.deadline = q.Int(10);
      n.fanout_done = q.Int(11) != 0;
      n.deliveries = q.Int(12);
      cancelled_at = q.IsNull(13) ? 0 : q.Int(13);
    }
    UnixMillis last_update = 0;
    int64_t open = 0;
    {
      Stmt q = conn->Prepare(
          "SELECT status, n, last_at FROM delivery_counts WHERE notification_pk = ?1");
      q.Bind(1, pk);
      for (;;) {
        Result<bool> row = q.Next();
        if (!row.ok()) return row.take_error();
        if (!*row) break;
        const int64_t status = q.Int(0);
        if (status < 0 || status >= static_cast<int64_t>(kDeliveryStatusCount)) continue;
        n.counts[static_cast<size_t>(status)] = q.Int(1);
        if (!IsTerminal(static_cast<DeliveryStatus>(status))) open += q.Int(1);
        last_update = std::max(last_update, q.Int(2));
      }
    }
    DeriveNotificationStatus(n, cancelled_at, open, last_update);
    return n;
  });
}

Result<std::vector<std::string>> SqliteStore::ListUnfinishedFanouts() {
  return NoThrow([&]() -> Result<std::vector<std::string>> {
    ReadPool::Lease conn = readers_->Acquire();
    Stmt q = conn->Prepare("SELECT id FROM notifications WHERE fanout_done = 0 ORDER BY pk");
    std::vector<std::string> out;
    for (;;) {
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) return out;
      out.push_back(q.Text(0));
    }
  });
}

Result<FanoutPage> SqliteStore::FanOutPage(std::string_view notification_id, int max_users) {
  return FanOutPageOf(notification_id, max_users, {});
}

Result<FanoutPage> SqliteStore::FanOutNext(int max_users, const FanoutPublish& publish) {
  return NoThrow([&]() -> Result<FanoutPage> {
    // The unfinished fan-outs take turns, a page each, in row-key order (one process: one
    // part per notification).
    // The reader (and its snapshot) is let go before the page is written: a read held open
    // across writes keeps the checkpointer from recycling the WAL.
    std::string id;
    {
      ReadPool::Lease conn = readers_->Acquire();
      for (int pass = 0; pass < 2 && id.empty(); ++pass) {
        Stmt q = conn->Prepare(
            "SELECT pk, id FROM notifications WHERE fanout_done = 0 AND pk > ?1 ORDER BY pk "
            "LIMIT 1");
        q.Bind(1, pass == 0 ? fanout_turn_.load() : int64_t{0});
        Result<bool> row = q.Next();
        if (!row.ok()) return row.take_error();
        if (!*row) continue;
        fanout_turn_.store(q.Int(0));
        id = q.Text(1);
      }
    }
    if (id.empty()) {
      return MakeError(ErrorKind::kNotFound, "no_fanout_work", "Nothing is left to fan out.");
    }
    return FanOutPageOf(id, max_users, publish);
  });
}

Result<FanoutPage> SqliteStore::FanOutPageOf(std::string_view notification_id, int max_users,
                                             const FanoutPublish& publish) {
  return NoThrow([&]() -> Result<FanoutPage> {
    max_users = std::max(1, max_users);
    FanoutPage page;
    Status s = writer_->Run([&](Connection& c) -> Status {
      page = FanoutPage{};
      page.notification_id = std::string(notification_id);
      Result<std::optional<FanoutRow>> read = ReadFanoutRow(c, notification_id);
      if (!read.ok()) return read.take_error();
      if (!*read) return NotificationNotFound();
      FanoutRow& n = **read;
      if (n.done) {
        page.done = true;
        return Status::Ok();
      }
      const UnixMillis now = Now();
      DeliveryInsert insert{n.pk, n.tenant_pk, n.deadline, n.channels, now};
      if (n.cancelled) {
        n.source = static_cast<int64_t>(n.groups.size()) + 1;
      } else if (n.source < static_cast<int64_t>(n.groups.size())) {
        // One page of one group: members in user pk order after the cursor, minus those of the
        // groups before it (they were reached through those).
        std::vector<int64_t> earlier;
        for (int64_t i = 0; i < n.source; ++i) {
          Result<int64_t> g = FindGroup(c, n.tenant_pk, n.groups[static_cast<size_t>(i)]);
          if (g.ok()) earlier.push_back(*g);
        }
        Result<int64_t> group = FindGroup(c, n.tenant_pk, n.groups[static_cast<size_t>(n.source)]);
        if (!group.ok()) {  // deleted since: nobody to reach through it
          ++n.source;
          n.cursor = 0;
        } else {
          Result<GroupPage> gp =
              InsertGroupPage(c, insert, *group, PkArray(earlier), n.cursor, max_users, page.jobs);
          if (!gp.ok()) return gp.take_error();
          page.users = gp->users;
          if (gp->exhausted) {
            ++n.source;
            n.cursor = 0;
          } else {
            n.cursor = gp->last_user;
          }
        }
      } else if (n.source == static_cast<int64_t>(n.groups.size())) {
        // The named users, in pk order, except members of the notification's groups.
        std::vector<int64_t> groups;
        for (const std::string& key : n.groups) {
          Result<int64_t> g = FindGroup(c, n.tenant_pk, key);
          if (g.ok()) groups.push_back(*g);
        }
        std::vector<int64_t> pks;
        for (const std::string& id : n.users) {
          Result<int64_t> u = FindVisibleUser(c, n.tenant_pk, id, now);
          if (u.ok() && *u > n.cursor) pks.push_back(*u);
        }
        std::sort(pks.begin(), pks.end());
        if (pks.size() > static_cast<size_t>(max_users)) pks.resize(static_cast<size_t>(max_users));
        for (int64_t user_pk : pks) {
          Status u = InsertUserDeliveries(c, insert, user_pk, PkArray(groups), page.jobs);
          if (!u.ok()) return u;
        }
        page.users = static_cast<int64_t>(pks.size());
        if (pks.size() < static_cast<size_t>(max_users) || pks.empty()) {
          ++n.source;
          n.cursor = 0;
        } else {
          n.cursor = pks.back();
        }
      }
      for (DeliveryJob& job : page.jobs) job.priority = static_cast<uint8_t>(n.priority);
      Status e = RecordQueued(c, event_seq_, n.pk, page.jobs, now);
      if (!e.ok()) return e;
      page.done = n.source > static_cast<int64_t>(n.groups.size());
      if (publish && !page.jobs.empty()) {
        if (Status published = publish(page.jobs); !published.ok()) return published;
      }
      Stmt w = c.Prepare(
          "UPDATE notifications SET fanout_source = ?2, fanout_cursor = ?3, fanout_done = ?4, "
          "deliveries = deliveries + ?5 WHERE pk = ?1");
      w.Bind(1, n.pk).Bind(2, n.source).Bind(3, n.cursor).Bind(4, int64_t{page.done ? 1 : 0});
      return w.Bind(5, static_cast<int64_t>(page.jobs.size())).Run();
    });
    if (!s.ok()) return s.take_error();
    return page;
  });
}

Result<int64_t> SqliteStore::CancelNotification(std::string_view tenant_id,
                                                std::string_view notification_id) {
  return NoThrow([&]() -> Result<int64_t> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    int64_t cancelled = 0;
    Status s = writer_->Run([&](Connection& c) -> Status {
      const UnixMillis now = Now();
      int64_t pk = 0;
      {
        Stmt q = c.Prepare("SELECT pk FROM notifications WHERE tenant_pk = ?1 AND id = ?2");
        q.Bind(1, tenant->pk).Bind(2, notification_id);
        Result<bool> row = q.Next();
        if (!row.ok()) return row.take_error();
        if (!*row) return NotificationNotFound();
        pk = q.Int(0);
      }
      Stmt mark = c.Prepare(
          "UPDATE notifications SET cancelled_at = COALESCE(cancelled_at, ?2) WHERE pk = ?1");
      Status m = mark.Bind(1, pk).Bind(2, now).Run();
      if (!m.ok()) return m;
      Result<int64_t> n = CancelOpenDeliveries(c, event_seq_, pk, now);
      if (!n.ok()) return n.take_error();
      cancelled = *n;
      return Status::Ok();
    });
    if (!s.ok()) return s.take_error();
    return cancelled;
  });
}

}  // namespace herald::sqlite

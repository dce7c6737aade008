// SqliteStore methods for groups and memberships.
#include <utility>

#include "store/cursor.h"
#include "store/sqlite/sqlite_store_impl.h"
#include "store/sqlite/user_rows.h"

namespace herald::sqlite {
namespace {

constexpr char kMemberCursor = 'm';

// Live members only: a user whose consent ended is gone for every read.
Result<int64_t> CountLiveMembers(Connection& conn, int64_t group_pk, UnixMillis now) {
  Stmt q = conn.Prepare(
      "SELECT COUNT(*) FROM memberships m JOIN users u ON u.pk = m.user_pk "
      "WHERE m.group_pk = ?1 AND u.consent_until > ?2");
  q.Bind(1, group_pk).Bind(2, now);
  Result<bool> row = q.Next();
  if (!row.ok()) return row.take_error();
  return q.Int(0);
}

}  // namespace

int64_t SqliteStore::CountMembers(int64_t group_pk, UnixMillis now) {
  ReadPool::Lease conn = readers_->Acquire();
  Result<int64_t> n = CountLiveMembers(*conn, group_pk, now);
  return n.ok() ? *n : 0;
}

Result<Group> SqliteStore::PutGroup(const Group& group) {
  return NoThrow([&]() -> Result<Group> {
    Result<TenantRef> tenant = tenants_.Get(group.tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    UnixMillis now = Now();
    Group stored = group;
    int64_t group_pk = 0;
    Status s = writer_->Run([&](Connection& c) -> Status {
      Stmt w = c.Prepare(
          "INSERT INTO tenant_groups (tenant_pk, group_key, name, created_at) "
          "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (tenant_pk, group_key) DO UPDATE SET "
          "name = excluded.name RETURNING pk, created_at");
      w.Bind(1, tenant->pk).Bind(2, group.key).Bind(3, group.name).Bind(4, now);
      Result<bool> row = w.Next();
      if (!row.ok()) return row.take_error();
      group_pk = w.Int(0);
      stored.created_at = w.Int(1);
      return w.Run();
    });
    if (!s.ok()) return s.take_error();
    // Counted after the write, on a reader: a rename must not hold the writer for a big group.
    stored.member_count = CountMembers(group_pk, now);
    return stored;
  });
}

Result<Group> SqliteStore::GetGroup(std::string_view tenant_id, std::string_view key) {
  return NoThrow([&]() -> Result<Group> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    UnixMillis now = Now();
    ReadPool::Lease conn = readers_->Acquire();
    ReadTxn txn(*conn);
    if (!txn.status().ok()) return txn.status().error();
    Group out;
    int64_t group_pk = 0;
    {
      Stmt q = conn->Prepare(
          "SELECT pk, name, created_at FROM tenant_groups WHERE tenant_pk = ?1 AND group_key = ?2");
      q.Bind(1, tenant->pk).Bind(2, key);
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) return GroupNotFound();
      group_pk = q.Int(0);
      out = Group{std::string(tenant_id), std::string(key), q.Text(1), 0, q.Int(2)};
    }
    Result<int64_t> count = CountLiveMembers(*conn, group_pk, now);
    if (!count.ok()) return count.take_error();
    out.member_count = *count;
    return out;
  });
}

Result<std::vector<std::string>> SqliteStore::MissingGroups(std::string_view tenant_id,
                                                            const std::vector<std::string>& keys) {
  return NoThrow([&]() -> Result<std::vector<std::string>> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    ReadPool::Lease conn = readers_->Acquire();
    std::vector<std::string> missing;
    for (const std::string& key : keys) {
      Result<int64_t> group = FindGroup(*conn, tenant->pk, key);
      if (group.ok()) continue;
      if (group.error().kind != ErrorKind::kNotFound) return group.take_error();
      missing.push_back(key);
    }
    return missing;
  });
}

Status SqliteStore::DeleteGroup(std::string_view tenant_id, std::string_view key) {
  return NoThrow([&]() -> Status {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    UnixMillis now = Now();
    return writer_->Run([&](Connection& c) -> Status {
      Result<int64_t> group_pk = FindGroup(c, tenant->pk, key);
      if (!group_pk.ok()) return group_pk.take_error();
      // The members' group lists change: their versions move on.
      Stmt touch = c.Prepare(
          "UPDATE users SET version = version + 1, updated_at = ?2 "
          "WHERE pk IN (SELECT user_pk FROM memberships WHERE group_pk = ?1)");
      Status s = touch.Bind(1, *group_pk).Bind(2, now).Run();
      if (!s.ok()) return s;
      Stmt del = c.Prepare("DELETE FROM tenant_groups WHERE pk = ?1");  // cascades memberships
      return del.Bind(1, *group_pk).Run();
    });
  });
}

Status SqliteStore::AddMember(std::string_view tenant_id, std::string_view group_key,
                              std::string_view external_id) {
  return NoThrow([&]() -> Status {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    UnixMillis now = Now();
    return writer_->Run([&](Connection& c) -> Status {
      Result<int64_t> group_pk = FindGroup(c, tenant->pk, group_key);
      if (!group_pk.ok()) return group_pk.take_error();
      Result<int64_t> user_pk = FindVisibleUser(c, tenant->pk, external_id, now);
      if (!user_pk.ok()) return user_pk.take_error();
      Status s = InsertMembership(c, *group_pk, *user_pk);
      if (!s.ok() || c.Changes() == 0) return s;
      return TouchUser(c, *user_pk, now);
    });
  });
}

Status SqliteStore::RemoveMember(std::string_view tenant_id, std::string_view group_key,
                                 std::string_view external_id) {
  return NoThrow([&]() -> Status {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    UnixMillis now = Now();
    return writer_->Run([&](Connection& c) -> Status {
      Result<int64_t> group_pk = FindGroup(c, tenant->pk, group_key);
      if (!group_pk.ok()) return group_pk.take_error();
      Result<int64_t> user_pk = FindVisibleUser(c, tenant->pk, external_id, now);
      if (!user_pk.ok()) return user_pk.take_error();
      Stmt del = c.Prepare("DELETE FROM memberships WHERE group_pk = ?1 AND user_pk = ?2");
      Status s = del.Bind(1, *group_pk).Bind(2, *user_pk).Run();
      if (!s.ok() || c.Changes() == 0) return s;  // not a member: nothing to do
      return TouchUser(c, *user_pk, now);
    });
  });
}

Result<std::vector<std::string>> SqliteStore::AddMembers(std::string_view tenant_id,
                                                         std::string_view group_key,
                                                         const std::vector<std::string>& ids) {
  return NoThrow([&]() -> Result<std::vector<std::string>> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    UnixMillis now = Now();
    std::vector<std::string> missing;
    Status s = writer_->Run([&](Connection& c) -> Status {
      missing.clear();
      Result<int64_t> group_pk = FindGroup(c, tenant->pk, group_key);
      if (!group_pk.ok()) return group_pk.take_error();
      for (const std::string& id : ids) {
        Result<int64_t> user_pk = FindVisibleUser(c, tenant->pk, id, now);
        if (!user_pk.ok()) {
          if (user_pk.error().kind != ErrorKind::kNotFound) return user_pk.take_error();
          missing.push_back(id);
          continue;
        }
        Status w = InsertMembership(c, *group_pk, *user_pk);
        if (w.ok() && c.Changes() > 0) w = TouchUser(c, *user_pk, now);
        if (!w.ok()) return w;
      }
      return Status::Ok();
    });
    if (!s.ok()) return s.take_error();
    return missing;
  });
}

Result<Page<std::string>> SqliteStore::ListMembers(std::string_view tenant_id,
                                                   std::string_view group_key,
                                                   const PageRequest& page) {
  return NoThrow([&]() -> Result<Page<std::string>> {
    Result<std::string> after = DecodeCursor(kMemberCursor, page.cursor);
    if (!after.ok()) return after.take_error();
    int limit = ClampLimit(page.limit);
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    UnixMillis now = Now();
    ReadPool::Lease conn = readers_->Acquire();
    ReadTxn txn(*conn);
    if (!txn.status().ok()) return txn.status().error();
    Result<int64_t> group_pk = FindGroup(*conn, tenant->pk, group_key);
    if (!group_pk.ok()) return group_pk.take_error();
    Stmt q = conn->Prepare(
        "SELECT u.external_id FROM memberships m JOIN users u ON u.pk = m.user_pk "
        "WHERE m.group_pk = ?1 AND u.consent_until > ?2 AND u.external_id > ?3 "
        "ORDER BY u.external_id LIMIT ?4");
    q.Bind(1, *group_pk).Bind(2, now).Bind(3, *after).Bind(4, limit + 1);
    Page<std::string> out;
    for (;;) {
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) break;
      if (static_cast<int>(out.items.size()) == limit) {
        out.next_cursor = EncodeCursor(kMemberCursor, out.items.back());
        break;
      }
      out.items.push_back(q.Text(0));
    }
    return out;
  });
}

}  // namespace herald::sqlite

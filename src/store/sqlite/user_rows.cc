#include "store/sqlite/user_rows.h"

#include <algorithm>
#include <utility>

namespace herald::sqlite {
namespace {

Result<int64_t> FindOrCreateGroup(Connection& conn, int64_t tenant_pk, const std::string& key,
                                  UnixMillis now, GroupPks& groups) {
  auto it = groups.find(key);
  if (it != groups.end()) return it->second;
  {
    Stmt q = conn.Prepare("SELECT pk FROM tenant_groups WHERE tenant_pk = ?1 AND group_key = ?2");
    q.Bind(1, tenant_pk).Bind(2, key);
    Result<bool> row = q.Next();
    if (!row.ok()) return row.take_error();
    if (*row) return groups[key] = q.Int(0);
  }
  Stmt w = conn.Prepare(
      "INSERT INTO tenant_groups (tenant_pk, group_key, name, created_at) VALUES (?1, ?2, '', ?3)");
  Status s = w.Bind(1, tenant_pk).Bind(2, key).Bind(3, now).Run();
  if (!s.ok()) return s.take_error();
  return groups[key] = conn.LastInsertRowid();
}

// Inserts the user row, version 1. With if_absent, an existing row is left alone and the
// result is false.
Result<bool> InsertUser(Connection& conn, int64_t tenant_pk, const SealedUser& user, UnixMillis now,
                        bool if_absent) {
  Stmt w = if_absent ? conn.Prepare(
                           "INSERT INTO users (tenant_pk, external_id, name_sealed, opt_in, "
                           "consent_from, consent_until, version, created_at, updated_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7) "
                           "ON CONFLICT (tenant_pk, external_id) DO NOTHING")
                     : conn.Prepare(
                           "INSERT INTO users (tenant_pk, external_id, name_sealed, opt_in, "
                           "consent_from, consent_until, version, created_at, updated_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7)");
  Status s = w.Bind(1, tenant_pk)
                 .Bind(2, user.external_id)
                 .BindBlob(3, user.name_sealed)
                 .Bind(4, int64_t{user.opt_in})
                 .Bind(5, user.consent_from)
                 .Bind(6, user.consent_until)
                 .Bind(7, now)
                 .Run();
  if (!s.ok()) return s.take_error();
  return conn.Changes() > 0;
}

// Replaces the user's devices, keeping the rows (ids) of channel+address pairs that stay.
Status ReplaceDevices(Connection& conn, int64_t user_pk, const SealedUser& user, UnixMillis now,
                      std::vector<StoredDevice>& stored) {
  struct Old {
    std::string id;
    std::string channel;
    Bytes bidx;
    int64_t ord;
    bool disabled;
    UnixMillis created_at;
  };
  std::vector<Old> old;
  {
    Stmt q = conn.Prepare(
        "SELECT id, channel, address_bidx, ord, disabled, created_at FROM devices "
        "WHERE user_pk = ?1 ORDER BY ord");
    q.Bind(1, user_pk);
    for (;;) {
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) break;
      old.push_back(Old{q.Text(0), q.Text(1), q.Blob(2), q.Int(3), q.Int(4) != 0, q.Int(5)});
    }
  }
  int64_t next_ord = old.empty() ? 0 : old.back().ord + 1;
  std::vector<bool> input_kept(user.devices.size(), false);
  for (const Old& o : old) {
    bool kept = false;
    for (size_t i = 0; i < user.devices.size(); ++i) {
      const SealedDevice& d = user.devices[i];
      if (!input_kept[i] && ToString(d.channel) == o.channel && d.address_bidx == o.bidx) {
        input_kept[i] = kept = true;
        stored.push_back(StoredDevice{i, o.id, o.disabled, o.created_at});
        break;
      }
    }
    if (kept) continue;
    Stmt del = conn.Prepare(
        "DELETE FROM devices WHERE user_pk = ?1 AND channel = ?2 AND address_bidx = ?3");
    Status s = del.Bind(1, user_pk).Bind(2, o.channel).BindBlob(3, o.bidx).Run();
    if (!s.ok()) return s;
  }
  for (size_t i = 0; i < user.devices.size(); ++i) {
    if (input_kept[i]) continue;
    const SealedDevice& d = user.devices[i];
    Status s = InsertDevice(conn, user_pk, d, next_ord++, now);
    if (!s.ok()) return s;
    stored.push_back(StoredDevice{i, d.id, d.disabled, now});
  }
  return Status::Ok();
}

Status ReplaceMemberships(Connection& conn, int64_t tenant_pk, int64_t user_pk,
                          const SealedUser& user, UnixMillis now, GroupPks& groups, bool fresh) {
  std::vector<int64_t> wanted;
  wanted.reserve(user.groups.size());
  for (const std::string& key : user.groups) {
    Result<int64_t> pk = FindOrCreateGroup(conn, tenant_pk, key, now, groups);
    if (!pk.ok()) return pk.take_error();
    wanted.push_back(*pk);
  }
  if (!fresh) {
    std::vector<int64_t> current;
    {
      Stmt q = conn.Prepare("SELECT group_pk FROM memberships WHERE user_pk = ?1");
      q.Bind(1, user_pk);
      for (;;) {
        Result<bool> row = q.Next();
        if (!row.ok()) return row.take_error();
        if (!*row) break;
        current.push_back(q.Int(0));
      }
    }
    for (int64_t group_pk : current) {
      if (std::find(wanted.begin(), wanted.end(), group_pk) != wanted.end()) continue;
      Stmt del = conn.Prepare("DELETE FROM memberships WHERE group_pk = ?1 AND user_pk = ?2");
      Status s = del.Bind(1, group_pk).Bind(2, user_pk).Run();
      if (!s.ok()) return s;
    }
  }
  for (int64_t group_pk : wanted) {
    Status s = InsertMembership(conn, group_pk, user_pk);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace

Error UserNotFound() { return MakeError(ErrorKind::kNotFound, "user_not_found", "No such user."); }

Error GroupNotFound() {
  return MakeError(ErrorKind::kNotFound, "group_not_found", "No such group.");
}

Result<WrittenUser> WriteUser(Connection& conn, int64_t tenant_pk, const SealedUser& user,
                              std::optional<int64_t> expected_version, UnixMillis now,
                              GroupPks& groups) {
  WrittenUser out;
  int64_t user_pk = 0;
  // Fast path for a new user (every line of a first import): one insert, no lookup before it.
  bool inserted = false;
  if (!expected_version || *expected_version == 0) {
    Result<bool> r = InsertUser(conn, tenant_pk, user, now, /*if_absent=*/true);
    if (!r.ok()) return r.take_error();
    inserted = *r;
  }
  if (!inserted) {
    bool exists = false;
    int64_t version = 0;
    UnixMillis created_at = 0;
    {
      Stmt q = conn.Prepare(
          "SELECT pk, version, consent_until, created_at FROM users "
          "WHERE tenant_pk = ?1 AND external_id = ?2");
      q.Bind(1, tenant_pk).Bind(2, user.external_id);
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (*row) {
        user_pk = q.Int(0);
        exists = q.Int(2) > now;  // consent ended: gone, erased below
        version = exists ? q.Int(1) : 0;
        created_at = q.Int(3);
      }
    }
    if (expected_version && *expected_version != version) {
      return MakeError(ErrorKind::kConflict, "version_conflict",
                       "The user was changed since version " + std::to_string(*expected_version) +
                           " (now " + std::to_string(version) + "); read it again and retry.",
                       "version");
    }
    if (!exists) {
      if (user_pk != 0) {
        Stmt del = conn.Prepare("DELETE FROM users WHERE pk = ?1");
        Status s = del.Bind(1, user_pk).Run();
        if (!s.ok()) return s.take_error();
      }
      Result<bool> r = InsertUser(conn, tenant_pk, user, now, /*if_absent=*/false);
      if (!r.ok()) return r.take_error();
      inserted = true;
    } else {
      Stmt w = conn.Prepare(
          "UPDATE users SET name_sealed = ?2, opt_in = ?3, consent_from = ?4, "
          "consent_until = ?5, version = version + 1, updated_at = ?6 WHERE pk = ?1");
      Status s = w.Bind(1, user_pk)
                     .BindBlob(2, user.name_sealed)
                     .Bind(3, int64_t{user.opt_in})
                     .Bind(4, user.consent_from)
                     .Bind(5, user.consent_until)
                     .Bind(6, now)
                     .Run();
      if (!s.ok()) return s.take_error();
      out.version = version + 1;
      out.created_at = created_at;
      s = ReplaceDevices(conn, user_pk, user, now, out.devices);
      if (!s.ok()) return s.take_error();
    }
  }
  if (inserted) {
    user_pk = conn.LastInsertRowid();
    out.created = true;
    out.version = 1;
    out.created_at = now;
    out.devices.reserve(user.devices.size());
    for (size_t i = 0; i < user.devices.size(); ++i) {
      const SealedDevice& d = user.devices[i];
      Status s = InsertDevice(conn, user_pk, d, static_cast<int64_t>(i), now);
      if (!s.ok()) return s.take_error();
      out.devices.push_back(StoredDevice{i, d.id, d.disabled, now});
    }
  }
  Status s = ReplaceMemberships(conn, tenant_pk, user_pk, user, now, groups, out.created);
  if (!s.ok()) return s.take_error();
  return out;
}

Result<bool> WriteUserLines(Connection& c, int64_t tenant_pk,
                            const std::vector<std::optional<SealedUser>>& sealed, UnixMillis now,
                            std::vector<ImportLineResult>& results, bool savepoints) {
  Status s = c.Prepare("SAVEPOINT lines").Run();
  if (!s.ok()) return s.take_error();
  GroupPks groups;
  bool complete = true;
  for (size_t i = 0; i < sealed.size(); ++i) {
    if (!sealed[i]) continue;
    if (savepoints) {
      s = c.Prepare("SAVEPOINT line").Run();
      if (!s.ok()) return s.take_error();
    }
    Result<WrittenUser> w = WriteUser(c, tenant_pk, *sealed[i], std::nullopt, now, groups);
    if (w.ok()) {
      if (savepoints) {
        s = c.Prepare("RELEASE line").Run();
        if (!s.ok()) return s.take_error();
      }
      results[i] = ImportLineResult{true, w->created, {}};
      continue;
    }
    if (c.InAutocommit()) return w.take_error();  // the transaction is lost
    if (!savepoints) {
      complete = false;
      break;
    }
    s = c.Prepare("ROLLBACK TO line").Run();
    if (s.ok()) s = c.Prepare("RELEASE line").Run();
    if (!s.ok()) return s.take_error();
    groups.clear();  // groups created inside the savepoint are gone
    results[i] = ImportLineResult{false, false, w.take_error()};
  }
  if (!complete) {
    s = c.Prepare("ROLLBACK TO lines").Run();
    if (!s.ok()) return s.take_error();
  }
  s = c.Prepare("RELEASE lines").Run();
  if (!s.ok()) return s.take_error();
  return complete;
}

Result<int64_t> FindVisibleUser(Connection& conn, int64_t tenant_pk, std::string_view external_id,
                                UnixMillis now) {
  Stmt q = conn.Prepare(
      "SELECT pk FROM users WHERE tenant_pk = ?1 AND external_id = ?2 AND consent_until > ?3");
  q.Bind(1, tenant_pk).Bind(2, external_id).Bind(3, now);
  Result<bool> row = q.Next();
  if (!row.ok()) return row.take_error();
  if (!*row) return UserNotFound();
  return q.Int(0);
}

Result<int64_t> FindGroup(Connection& conn, int64_t tenant_pk, std::string_view key) {
  Stmt q = conn.Prepare("SELECT pk FROM tenant_groups WHERE tenant_pk = ?1 AND group_key = ?2");
  q.Bind(1, tenant_pk).Bind(2, key);
  Result<bool> row = q.Next();
  if (!row.ok()) return row.take_error();
  if (!*row) return GroupNotFound();
  return q.Int(0);
}

Status InsertDevice(Connection& conn, int64_t user_pk, const SealedDevice& d, int64_t ord,
                    UnixMillis now) {
  Stmt w = conn.Prepare(
      "INSERT INTO devices (user_pk, channel, address_bidx, id, address_sealed, ord, disabled, "
      "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  return w.Bind(1, user_pk)
      .Bind(2, ToString(d.channel))
      .BindBlob(3, d.address_bidx)
      .Bind(4, d.id)
      .BindBlob(5, d.address_sealed)
      .Bind(6, ord)
      .Bind(7, int64_t{d.disabled})
      .Bind(8, now)
      .Run();
}

Status InsertMembership(Connection& conn, int64_t group_pk, int64_t user_pk) {
  Stmt w = conn.Prepare("INSERT OR IGNORE INTO memberships (group_pk, user_pk) VALUES (?1, ?2)");
  return w.Bind(1, group_pk).Bind(2, user_pk).Run();
}

Status TouchUser(Connection& conn, int64_t user_pk, UnixMillis now) {
  Stmt w = conn.Prepare("UPDATE users SET version = version + 1, updated_at = ?2 WHERE pk = ?1");
  return w.Bind(1, user_pk).Bind(2, now).Run();
}

Result<User> ReadUser(Connection& conn, const TenantRef& tenant, std::string_view tenant_id,
                      std::string_view external_id, UnixMillis now) {
  User user;
  int64_t user_pk = 0;
  {
    Stmt q = conn.Prepare(
        "SELECT pk, name_sealed, opt_in, consent_from, consent_until, version, created_at, "
        "updated_at FROM users WHERE tenant_pk = ?1 AND external_id = ?2 AND consent_until > ?3");
    q.Bind(1, tenant.pk).Bind(2, external_id).Bind(3, now);
    Result<bool> row = q.Next();
    if (!row.ok()) return row.take_error();
    if (!*row) return UserNotFound();
    user_pk = q.Int(0);
    Result<std::string> name = tenant.cipher->Open(q.Blob(1), kNameContext);
    if (!name.ok()) return DecryptFailed();
    user.tenant_id = std::string(tenant_id);
    user.external_id = std::string(external_id);
    user.name = std::move(*name);
    user.opt_in = q.Int(2) != 0;
    user.consent_from = q.Int(3);
    user.consent_until = q.Int(4);
    user.version = q.Int(5);
    user.created_at = q.Int(6);
    user.updated_at = q.Int(7);
  }
  {
    Stmt q = conn.Prepare(
        "SELECT id, channel, address_sealed, disabled, created_at FROM devices "
        "WHERE user_pk = ?1 ORDER BY ord");
    q.Bind(1, user_pk);
    for (;;) {
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) break;
      std::optional<Channel> channel = ParseChannel(q.Text(1));
      if (!channel) return DecryptFailed();
      Result<std::string> address = tenant.cipher->Open(q.Blob(2), AddressContext(*channel));
      if (!address.ok()) return DecryptFailed();
      user.devices.push_back(
          Device{q.Text(0), *channel, std::move(*address), q.Int(3) != 0, q.Int(4)});
    }
  }
  {
    Stmt q = conn.Prepare(
        "SELECT g.group_key FROM memberships m JOIN tenant_groups g ON g.pk = m.group_pk "
        "WHERE m.user_pk = ?1 ORDER BY g.group_key");
    q.Bind(1, user_pk);
    for (;;) {
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) break;
      user.groups.push_back(q.Text(0));
    }
  }
  return user;
}

}  // namespace herald::sqlite

#include "store/sqlite/user_rows.h"

#include <algorithm>
#include <utility>

namespace herald::sqlite {
namespace {

constexpr std::string_view kNameContext = "name";

Error Invalid(std::string code, std::string message, std::string field) {
  return MakeError(ErrorKind::kInvalid, std::move(code), std::move(message), std::move(field));
}

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

// Replaces the user's devices, keeping the rows (ids) of channel+address pairs that stay.
Status ReplaceDevices(Connection& conn, int64_t user_pk, const SealedUser& user, UnixMillis now,
                      std::vector<StoredDevice>& stored) {
  struct Old {
    int64_t pk;
    std::string id;
    std::string channel;
    Bytes bidx;
    bool disabled;
    UnixMillis created_at;
  };
  std::vector<Old> old;
  {
    Stmt q = conn.Prepare(
        "SELECT pk, id, channel, address_bidx, disabled, created_at FROM devices "
        "WHERE user_pk = ?1 ORDER BY pk");
    q.Bind(1, user_pk);
    for (;;) {
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) break;
      old.push_back(Old{q.Int(0), q.Text(1), q.Text(2), q.Blob(3), q.Int(4) != 0, q.Int(5)});
    }
  }
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
    Stmt del = conn.Prepare("DELETE FROM devices WHERE pk = ?1");
    Status s = del.Bind(1, o.pk).Run();
    if (!s.ok()) return s;
  }
  for (size_t i = 0; i < user.devices.size(); ++i) {
    if (input_kept[i]) continue;
    const SealedDevice& d = user.devices[i];
    Status s = InsertDevice(conn, user_pk, d, now);
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

Error UserNotFound() {
  return MakeError(ErrorKind::kNotFound, "user_not_found", "No such user.");
}

Error GroupNotFound() {
  return MakeError(ErrorKind::kNotFound, "group_not_found", "No such group.");
}

std::string AddressContext(Channel channel) {
  std::string context = "addr:";
  context.append(ToString(channel));
  return context;
}

SealedDevice SealDevice(const Device& device, const crypto::PiiCipher& cipher) {
  std::string context = AddressContext(device.channel);
  SealedDevice d;
  d.id = crypto::RandomId("dev_");
  d.channel = device.channel;
  d.address_sealed = cipher.Seal(device.address, context);
  d.address_bidx = cipher.BlindIndex(device.address, context);
  d.disabled = device.disabled;
  return d;
}

Result<SealedUser> SealUser(const User& user, const crypto::PiiCipher& cipher, UnixMillis now) {
  if (user.devices.size() > kMaxDevices) {
    return Invalid("too_many_devices",
                   "A user has at most 16 devices; this one lists " +
                       std::to_string(user.devices.size()) + ".",
                   "devices");
  }
  if (user.consent_until <= user.consent_from) {
    return Invalid("invalid_consent_window", "consent_until must be after consent_from.",
                   "consent_until");
  }
  if (user.consent_until <= now) {
    return Invalid("consent_expired",
                   "consent_until is in the past; a user without consent cannot be stored "
                   "(delete the user instead).",
                   "consent_until");
  }
  SealedUser s;
  s.external_id = user.external_id;
  s.name_sealed = cipher.Seal(user.name, kNameContext);
  s.opt_in = user.opt_in;
  s.consent_from = user.consent_from;
  s.consent_until = user.consent_until;
  s.devices.reserve(user.devices.size());
  for (size_t i = 0; i < user.devices.size(); ++i) {
    SealedDevice d = SealDevice(user.devices[i], cipher);
    for (const SealedDevice& prev : s.devices) {
      if (prev.channel == d.channel && prev.address_bidx == d.address_bidx) {
        return Invalid("duplicate_device", "The user lists this device twice.",
                       "devices[" + std::to_string(i) + "].address");
      }
    }
    s.devices.push_back(std::move(d));
  }
  s.groups = user.groups;
  std::sort(s.groups.begin(), s.groups.end());
  s.groups.erase(std::unique(s.groups.begin(), s.groups.end()), s.groups.end());
  return s;
}

Result<WrittenUser> WriteUser(Connection& conn, int64_t tenant_pk, const SealedUser& user,
                              std::optional<int64_t> expected_version, UnixMillis now,
                              GroupPks& groups) {
  int64_t user_pk = 0;
  WrittenUser out;
  bool exists = false;
  {
    Stmt q = conn.Prepare(
        "SELECT pk, version, consent_until, created_at FROM users "
        "WHERE tenant_pk = ?1 AND external_id = ?2");
    q.Bind(1, tenant_pk).Bind(2, user.external_id);
    Result<bool> row = q.Next();
    if (!row.ok()) return row.take_error();
    if (*row) {
      exists = true;
      user_pk = q.Int(0);
      out.version = q.Int(1);
      if (q.Int(2) <= now) exists = false;  // consent ended: gone, erased below
      out.created_at = q.Int(3);
    }
  }
  if (!exists && user_pk != 0) {
    Stmt del = conn.Prepare("DELETE FROM users WHERE pk = ?1");
    Status s = del.Bind(1, user_pk).Run();
    if (!s.ok()) return s.take_error();
  }
  int64_t stored_version = exists ? out.version : 0;
  if (expected_version && *expected_version != stored_version) {
    return MakeError(ErrorKind::kConflict, "version_conflict",
                     "The user was changed since version " + std::to_string(*expected_version) +
                         " (now " + std::to_string(stored_version) + "); read it again and retry.",
                     "version");
  }
  if (!exists) {
    Stmt w = conn.Prepare(
        "INSERT INTO users (tenant_pk, external_id, name_sealed, opt_in, consent_from, "
        "consent_until, version, created_at, updated_at) "
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
    user_pk = conn.LastInsertRowid();
    out.created = true;
    out.version = 1;
    out.created_at = now;
    out.devices.reserve(user.devices.size());
    for (size_t i = 0; i < user.devices.size(); ++i) {
      const SealedDevice& d = user.devices[i];
      s = InsertDevice(conn, user_pk, d, now);
      if (!s.ok()) return s.take_error();
      out.devices.push_back(StoredDevice{i, d.id, d.disabled, now});
    }
  } else {
    Stmt w = conn.Prepare(
        "UPDATE users SET name_sealed = ?2, opt_in = ?3, consent_from = ?4, consent_until = ?5, "
        "version = version + 1, updated_at = ?6 WHERE pk = ?1");
    Status s = w.Bind(1, user_pk)
                   .BindBlob(2, user.name_sealed)
                   .Bind(3, int64_t{user.opt_in})
                   .Bind(4, user.consent_from)
                   .Bind(5, user.consent_until)
                   .Bind(6, now)
                   .Run();
    if (!s.ok()) return s.take_error();
    ++out.version;
    s = ReplaceDevices(conn, user_pk, user, now, out.devices);
    if (!s.ok()) return s.take_error();
  }
  Status s = ReplaceMemberships(conn, tenant_pk, user_pk, user, now, groups, out.created);
  if (!s.ok()) return s.take_error();
  return out;
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

Status InsertDevice(Connection& conn, int64_t user_pk, const SealedDevice& d, UnixMillis now) {
  Stmt w = conn.Prepare(
      "INSERT INTO devices (id, user_pk, channel, address_sealed, address_bidx, disabled, "
      "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  return w.Bind(1, d.id)
      .Bind(2, user_pk)
      .Bind(3, ToString(d.channel))
      .BindBlob(4, d.address_sealed)
      .BindBlob(5, d.address_bidx)
      .Bind(6, int64_t{d.disabled})
      .Bind(7, now)
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
        "WHERE user_pk = ?1 ORDER BY pk");
    q.Bind(1, user_pk);
    for (;;) {
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) break;
      std::optional<Channel> channel = ParseChannel(q.Text(1));
      if (!channel) return DecryptFailed();
      Result<std::string> address = tenant.cipher->Open(q.Blob(2), AddressContext(*channel));
      if (!address.ok()) return DecryptFailed();
      user.devices.push_back(Device{q.Text(0), *channel, std::move(*address), q.Int(3) != 0,
                                    q.Int(4)});
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

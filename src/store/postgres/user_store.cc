// PostgresStore methods for users, their devices, groups and memberships.
#include <algorithm>
#include <unordered_map>
#include <utility>

#include "store/cursor.h"
#include "store/postgres/postgres_store_impl.h"
#include "store/sealed_user.h"

namespace herald::pg {
namespace {

constexpr char kMemberCursor = 'm';

// Group key -> row key, remembered across the users of one transaction.
using GroupPks = std::unordered_map<std::string, int64_t>;

std::string Hex(const Bytes& b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(b.size() * 2);
  for (uint8_t c : b) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

struct StoredDevice {
  size_t input_index = 0;
  std::string id;
  bool disabled = false;
  UnixMillis created_at = 0;
};
struct WrittenUser {
  bool created = false;
  int64_t version = 0;
  UnixMillis created_at = 0;
  std::vector<StoredDevice> devices;
};

Result<int64_t> FindOrCreateGroup(Conn& c, int64_t tenant_pk, const std::string& key,
                                  UnixMillis now, GroupPks& groups) {
  auto it = groups.find(key);
  if (it != groups.end()) return it->second;
  // DO UPDATE (to itself) rather than DO NOTHING: it returns the row a concurrent writer just
  // committed too, which a separate SELECT in this statement's snapshot would not see.
  Params p;
  p.Int(tenant_pk).Text(key).Int(now);
  PG_TRY(rows, c.Exec("INSERT INTO tenant_groups (tenant_pk, group_key, name, created_at) "
                      "VALUES ($1, $2, '', $3) ON CONFLICT (tenant_pk, group_key) DO UPDATE "
                      "SET name = tenant_groups.name RETURNING pk",
                      p));
  return groups[key] = rows.Int(0, 0);
}

// Inserts the devices (their ord = first_ord, first_ord + 1, ... in `indexes` order).
Status InsertDevices(Conn& c, int64_t tenant_pk, int64_t user_pk, const SealedUser& user,
                     const std::vector<size_t>& indexes, int64_t first_ord, UnixMillis now) {
  if (indexes.empty()) return Status::Ok();
  std::string sql =
      "INSERT INTO devices (tenant_pk, user_pk, channel, address_bidx, id, address_sealed, ord, "
      "disabled, created_at) VALUES ";
  Params p;
  p.Int(tenant_pk).Int(user_pk).Int(now);
  int n = 3;
  for (size_t k = 0; k < indexes.size(); ++k) {
    const SealedDevice& d = user.devices[indexes[k]];
    p.Text(ToString(d.channel)).Blob(d.address_bidx).Text(d.id).Blob(d.address_sealed);
    p.Int(first_ord + static_cast<int64_t>(k)).Bool(d.disabled);
    if (k > 0) sql += ", ";
    sql += "($1, $2, $" + std::to_string(n + 1) + ", $" + std::to_string(n + 2) + ", $" +
           std::to_string(n + 3) + ", $" + std::to_string(n + 4) + ", $" + std::to_string(n + 5) +
           ", $" + std::to_string(n + 6) + "::integer::boolean, $3)";
    n += 6;
  }
  Result<Rows> r = c.Exec(sql, p);
  return r.ok() ? Status::Ok() : Status(r.take_error());
}

Status ReplaceDevices(Conn& c, int64_t tenant_pk, int64_t user_pk, const SealedUser& user,
                      UnixMillis now, std::vector<StoredDevice>& stored) {
  Params q;
  q.Int(tenant_pk).Int(user_pk);
  PG_TRY(old, c.Exec("SELECT id, channel, address_bidx, ord, disabled, created_at FROM devices "
                     "WHERE tenant_pk = $1 AND user_pk = $2 ORDER BY ord",
                     q));
  int64_t next_ord = old.empty() ? 0 : old.Int(old.size() - 1, 3) + 1;
  std::vector<bool> input_kept(user.devices.size(), false);
  std::vector<std::string> gone;
  for (int r = 0; r < old.size(); ++r) {
    const std::string channel = old.Text(r, 1);
    const Bytes bidx = old.Blob(r, 2);
    bool kept = false;
    for (size_t i = 0; i < user.devices.size(); ++i) {
      const SealedDevice& d = user.devices[i];
      if (!input_kept[i] && ToString(d.channel) == channel && d.address_bidx == bidx) {
        input_kept[i] = kept = true;
        stored.push_back(StoredDevice{i, old.Text(r, 0), old.Bool(r, 4), old.Int(r, 5)});
        break;
      }
    }
    if (!kept) gone.push_back(old.Text(r, 0));
  }
  if (!stored.empty()) {
    // Kept devices take the address as sealed now: for the user's consent minute, which this
    // write may have moved (crypto/erasure_keys.h).
    std::vector<std::string> ids;
    std::vector<std::string> sealed;
    for (const StoredDevice& k : stored) {
      ids.push_back(k.id);
      sealed.push_back(Hex(user.devices[k.input_index].address_sealed));
    }
    Params k;
    k.Int(tenant_pk).Int(user_pk).TextArray(ids).TextArray(sealed);
    Result<Rows> r = c.Exec(
        "UPDATE devices v SET address_sealed = decode(x.s, 'hex') "
        "FROM unnest($3::text[], $4::text[]) AS x(i, s) "
        "WHERE v.tenant_pk = $1 AND v.user_pk = $2 AND v.id = x.i",
        k);
    if (!r.ok()) return r.take_error();
  }
  if (!gone.empty()) {
    Params d;
    d.Int(tenant_pk).Int(user_pk).TextArray(gone);
    Result<Rows> r = c.Exec(
        "DELETE FROM devices WHERE tenant_pk = $1 AND user_pk = $2 AND id = ANY($3::text[])", d);
    if (!r.ok()) return r.take_error();
  }
  std::vector<size_t> fresh;
  for (size_t i = 0; i < user.devices.size(); ++i) {
    if (input_kept[i]) continue;
    fresh.push_back(i);
    stored.push_back(StoredDevice{i, user.devices[i].id, user.devices[i].disabled, now});
  }
  return InsertDevices(c, tenant_pk, user_pk, user, fresh, next_ord, now);
}

Status ReplaceMemberships(Conn& c, int64_t tenant_pk, int64_t user_pk, const SealedUser& user,
                          UnixMillis now, GroupPks& groups, bool fresh) {
  std::vector<int64_t> wanted;
  wanted.reserve(user.groups.size());
  for (const std::string& key : user.groups) {
    Result<int64_t> pk = FindOrCreateGroup(c, tenant_pk, key, now, groups);
    if (!pk.ok()) return pk.take_error();
    wanted.push_back(*pk);
  }
  if (!fresh) {
    Params d;
    d.Int(tenant_pk).Int(user_pk).IntArray(wanted);
    Result<Rows> r = c.Exec(
        "DELETE FROM memberships WHERE tenant_pk = $1 AND user_pk = $2 "
        "AND NOT (group_pk = ANY($3::bigint[]))",
        d);
    if (!r.ok()) return r.take_error();
  }
  if (wanted.empty()) return Status::Ok();
  Params w;
  w.Int(tenant_pk).Int(user_pk).IntArray(wanted);
  Result<Rows> r = c.Exec(
      "INSERT INTO memberships (tenant_pk, group_pk, user_pk) "
      "SELECT $1, g, $2 FROM unnest($3::bigint[]) AS g ON CONFLICT DO NOTHING",
      w);
  return r.ok() ? Status::Ok() : Status(r.take_error());
}

constexpr std::string_view kInsertUser =
    "INSERT INTO users (tenant_pk, external_id, name_sealed, opt_in, consent_from, "
    "consent_until, version, created_at, updated_at) "
    "VALUES ($1, $2, $3, $4::integer::boolean, $5, $6, 1, $7, $7) ";

void UserParams(Params& p, int64_t tenant_pk, const SealedUser& user, UnixMillis now) {
  p.Int(tenant_pk).Text(user.external_id).Blob(user.name_sealed).Bool(user.opt_in);
  p.Int(user.consent_from).Int(user.consent_until).Int(now);
}

Result<WrittenUser> WriteUser(Conn& c, int64_t tenant_pk, const SealedUser& user,
                              std::optional<int64_t> expected_version, UnixMillis now,
                              GroupPks& groups) {
  WrittenUser out;
  int64_t user_pk = 0;
  bool inserted = false;
  if (!expected_version || *expected_version == 0) {
    Params p;
    UserParams(p, tenant_pk, user, now);
    PG_TRY(rows, c.Exec(std::string(kInsertUser) +
                            "ON CONFLICT (tenant_pk, external_id) DO NOTHING RETURNING pk",
                        p));
    if (!rows.empty()) {
      inserted = true;
      user_pk = rows.Int(0, 0);
    }
  }
  if (!inserted) {
    Params q;
    q.Int(tenant_pk).Text(user.external_id);
    PG_TRY(row, c.Exec("SELECT pk, version, consent_until, created_at FROM users "
                       "WHERE tenant_pk = $1 AND external_id = $2 FOR UPDATE",
                       q));
    bool exists = false;
    int64_t version = 0;
    UnixMillis created_at = 0;
    if (!row.empty()) {
      user_pk = row.Int(0, 0);
      exists = row.Int(0, 2) > now;  // consent ended: gone, erased below
      version = exists ? row.Int(0, 1) : 0;
      created_at = row.Int(0, 3);
    }
    if (expected_version && *expected_version != version) {
      return MakeError(ErrorKind::kConflict, "version_conflict",
                       "The user was changed since version " + std::to_string(*expected_version) +
                           " (now " + std::to_string(version) + "); read it again and retry.",
                       "version");
    }
    if (!exists) {
      if (user_pk != 0) {
        Params d;
        d.Int(tenant_pk).Int(user_pk);
        Result<Rows> r = c.Exec(
            DeleteUsersSql("SELECT tenant_pk, pk FROM users WHERE tenant_pk = $1 AND pk = $2"), d);
        if (!r.ok()) return r.take_error();
      }
      Params p;
      UserParams(p, tenant_pk, user, now);
      PG_TRY(ins, c.Exec(std::string(kInsertUser) + "RETURNING pk", p));
      user_pk = ins.Int(0, 0);
      inserted = true;
    } else {
      Params w;
      w.Int(tenant_pk).Int(user_pk).Blob(user.name_sealed).Bool(user.opt_in);
      w.Int(user.consent_from).Int(user.consent_until).Int(now);
      Result<Rows> r = c.Exec(
          "UPDATE users SET name_sealed = $3, opt_in = $4::integer::boolean, consent_from = $5, "
          "consent_until = $6, version = version + 1, updated_at = $7 "
          "WHERE tenant_pk = $1 AND pk = $2",
          w);
      if (!r.ok()) return r.take_error();
      out.version = version + 1;
      out.created_at = created_at;
      Status s = ReplaceDevices(c, tenant_pk, user_pk, user, now, out.devices);
      if (!s.ok()) return s.take_error();
    }
  }
  if (inserted) {
    out.created = true;
    out.version = 1;
    out.created_at = now;
    std::vector<size_t> all(user.devices.size());
    for (size_t i = 0; i < all.size(); ++i) {
      all[i] = i;
      out.devices.push_back(StoredDevice{i, user.devices[i].id, user.devices[i].disabled, now});
    }
    Status s = InsertDevices(c, tenant_pk, user_pk, user, all, 0, now);
    if (!s.ok()) return s.take_error();
  }
  Status s = ReplaceMemberships(c, tenant_pk, user_pk, user, now, groups, out.created);
  if (!s.ok()) return s.take_error();
  return out;
}

User StoredUser(const User& input, const SealedUser& sealed, const WrittenUser& written,
                UnixMillis now) {
  User out;
  out.tenant_id = input.tenant_id;
  out.external_id = input.external_id;
  out.name = input.name;
  out.opt_in = input.opt_in;
  out.consent_from = input.consent_from;
  out.consent_until = input.consent_until;
  out.groups = sealed.groups;
  out.version = written.version;
  out.created_at = written.created_at;
  out.updated_at = now;
  for (const StoredDevice& d : written.devices) {
    const Device& in = input.devices[d.input_index];
    out.devices.push_back(Device{d.id, in.channel, in.address, d.disabled, d.created_at});
  }
  return out;
}

// The new users of an import batch in three statements (users, devices, memberships), whatever
// the batch's size; `fresh[i]` is set for the lines it created. Lines whose user exists are left
// for WriteUser.
Status InsertNewUsers(Conn& c, int64_t tenant_pk, const std::vector<std::optional<SealedUser>>& in,
                      UnixMillis now, GroupPks& groups, std::vector<bool>& fresh) {
  std::vector<std::string> ids, names, from, until, opt;
  std::vector<size_t> line_of;
  for (size_t i = 0; i < in.size(); ++i) {
    if (!in[i]) continue;
    ids.push_back(in[i]->external_id);
    names.push_back(Hex(in[i]->name_sealed));
    opt.emplace_back(in[i]->opt_in ? "t" : "f");
    from.push_back(std::to_string(in[i]->consent_from));
    until.push_back(std::to_string(in[i]->consent_until));
    line_of.push_back(i);
  }
  if (ids.empty()) return Status::Ok();
  Params p;
  p.Int(tenant_pk).Int(now).TextArray(ids).TextArray(names).TextArray(opt).TextArray(from);
  p.TextArray(until);
  PG_TRY(rows,
         c.Exec("INSERT INTO users (tenant_pk, external_id, name_sealed, opt_in, consent_from, "
                "consent_until, version, created_at, updated_at) "
                "SELECT $1, x, decode(n, 'hex'), o::boolean, f::bigint, u::bigint, 1, $2, $2 "
                "FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) "
                "AS t(x, n, o, f, u) ON CONFLICT (tenant_pk, external_id) DO NOTHING "
                "RETURNING external_id, pk",
                p));
  std::unordered_map<std::string, int64_t> created;
  created.reserve(static_cast<size_t>(rows.size()));
  for (int r = 0; r < rows.size(); ++r) created.emplace(rows.Text(r, 0), rows.Int(r, 1));
  std::vector<std::string> d_user, d_channel, d_bidx, d_id, d_sealed, d_ord, d_disabled;
  std::vector<std::string> m_user, m_group;
  for (size_t k = 0; k < ids.size(); ++k) {
    auto it = created.find(ids[k]);
    if (it == created.end()) continue;
    const size_t line = line_of[k];
    fresh[line] = true;
    const SealedUser& u = *in[line];
    const std::string user_pk = std::to_string(it->second);
    for (size_t d = 0; d < u.devices.size(); ++d) {
      d_user.push_back(user_pk);
      d_channel.emplace_back(ToString(u.devices[d].channel));
      d_bidx.push_back(Hex(u.devices[d].address_bidx));
      d_id.push_back(u.devices[d].id);
      d_sealed.push_back(Hex(u.devices[d].address_sealed));
      d_ord.push_back(std::to_string(d));
      d_disabled.emplace_back(u.devices[d].disabled ? "t" : "f");
    }
    for (const std::string& key : u.groups) {
      Result<int64_t> g = FindOrCreateGroup(c, tenant_pk, key, now, groups);
      if (!g.ok()) return g.take_error();
      m_user.push_back(user_pk);
      m_group.push_back(std::to_string(*g));
    }
  }
  if (!d_user.empty()) {
    Params d;
    d.Int(tenant_pk).Int(now).TextArray(d_user).TextArray(d_channel).TextArray(d_bidx);
    d.TextArray(d_id).TextArray(d_sealed).TextArray(d_ord).TextArray(d_disabled);
    Result<Rows> r = c.Exec(
        "INSERT INTO devices (tenant_pk, user_pk, channel, address_bidx, id, address_sealed, "
        "ord, disabled, created_at) "
        "SELECT $1, u::bigint, ch, decode(b, 'hex'), i, decode(s, 'hex'), o::integer, "
        "x::boolean, $2 FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], "
        "$7::text[], $8::text[], $9::text[]) AS t(u, ch, b, i, s, o, x)",
        d);
    if (!r.ok()) return r.take_error();
  }
  if (!m_user.empty()) {
    Params m;
    m.Int(tenant_pk).TextArray(m_user).TextArray(m_group);
    Result<Rows> r = c.Exec(
        "INSERT INTO memberships (tenant_pk, group_pk, user_pk) "
        "SELECT $1, g::bigint, u::bigint FROM unnest($2::text[], $3::text[]) AS t(u, g) "
        "ON CONFLICT DO NOTHING",
        m);
    if (!r.ok()) return r.take_error();
  }
  return Status::Ok();
}

Result<int64_t> FindVisibleUser(Conn& c, int64_t tenant_pk, std::string_view external_id,
                                UnixMillis now) {
  Params q;
  q.Int(tenant_pk).Text(external_id).Int(now);
  // Locked (shared) so that an erasure cannot delete the user under a child row being added.
  PG_TRY(rows, c.Exec("SELECT pk FROM users WHERE tenant_pk = $1 AND external_id = $2 "
                      "AND consent_until > $3 FOR SHARE",
                      q));
  if (rows.empty()) return UserNotFound();
  return rows.Int(0, 0);
}

Result<int64_t> FindGroup(Conn& c, int64_t tenant_pk, std::string_view key) {
  Params q;
  q.Int(tenant_pk).Text(key);
  PG_TRY(rows, c.Exec("SELECT pk FROM tenant_groups WHERE tenant_pk = $1 AND group_key = $2", q));
  if (rows.empty()) return GroupNotFound();
  return rows.Int(0, 0);
}

Status TouchUser(Conn& c, int64_t tenant_pk, int64_t user_pk, UnixMillis now) {
  Params w;
  w.Int(tenant_pk).Int(user_pk).Int(now);
  Result<Rows> r = c.Exec(
      "UPDATE users SET version = version + 1, updated_at = $3 WHERE tenant_pk = $1 AND pk = $2",
      w);
  return r.ok() ? Status::Ok() : Status(r.take_error());
}

// Adds the membership unless it exists; true when it was added.
Result<bool> InsertMembership(Conn& c, int64_t tenant_pk, int64_t group_pk, int64_t user_pk) {
  Params w;
  w.Int(tenant_pk).Int(group_pk).Int(user_pk);
  PG_TRY(r, c.Exec("INSERT INTO memberships (tenant_pk, group_pk, user_pk) VALUES ($1, $2, $3) "
                   "ON CONFLICT DO NOTHING",
                   w));
  return r.Affected() > 0;
}

Result<int64_t> CountLiveMembers(Conn& c, int64_t tenant_pk, int64_t group_pk, UnixMillis now) {
  Params q;
  q.Int(tenant_pk).Int(group_pk).Int(now);
  PG_TRY(rows, c.Exec("SELECT COUNT(*) FROM memberships m JOIN users u "
                      "ON u.tenant_pk = m.tenant_pk AND u.pk = m.user_pk "
                      "WHERE m.tenant_pk = $1 AND m.group_pk = $2 AND u.consent_until > $3",
                      q));
  return rows.Int(0, 0);
}

}  // namespace

std::string DeleteUsersSql(std::string_view victims) {
  return "WITH victims AS (" + std::string(victims) +
         "), dv AS (DELETE FROM devices d USING victims v WHERE d.tenant_pk = v.tenant_pk AND "
         "d.user_pk = v.pk), dm AS (DELETE FROM memberships m USING victims v WHERE "
         "m.tenant_pk = v.tenant_pk AND m.user_pk = v.pk) "
         "DELETE FROM users u USING victims v WHERE u.tenant_pk = v.tenant_pk AND u.pk = v.pk";
}

// ---- users ----

Result<PutUserOutcome> PostgresStore::PutUser(const User& user,
                                              std::optional<int64_t> expected_version) {
  return NoThrow([&]() -> Result<PutUserOutcome> {
    Result<TenantRef> tenant = tenants_.Get(user.tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    const UnixMillis now = Now();
    DeviceIds ids(user.devices.size());
    Result<std::shared_ptr<const crypto::PiiCipher>> seal =
        SealingCipher(*tenant, user.consent_until);
    if (!seal.ok()) return seal.take_error();
    Result<SealedUser> sealed = SealUser(user, **seal, *tenant->cipher, now, ids);
    if (!sealed.ok()) return sealed.take_error();
    WrittenUser written;
    Status s = Txn([&](Conn& c) -> Status {
      GroupPks groups;
      Result<WrittenUser> w = WriteUser(c, tenant->pk, *sealed, expected_version, now, groups);
      if (!w.ok()) return w.take_error();
      written = std::move(*w);
      return Status::Ok();
    });
    if (!s.ok()) return s.take_error();
    NotifyConsentExpiry(user.consent_until);
    return PutUserOutcome{StoredUser(user, *sealed, written, now), written.created};
  });
}

Result<std::vector<ImportLineResult>> PostgresStore::PutUsers(std::string_view tenant_id,
                                                              std::vector<User> users) {
  return NoThrow([&]() -> Result<std::vector<ImportLineResult>> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    const UnixMillis now = Now();
    std::vector<ImportLineResult> results(users.size());
    std::vector<std::optional<SealedUser>> sealed(users.size());
    size_t device_count = 0;
    for (const User& u : users) device_count += std::min(u.devices.size(), kMaxDevices);
    DeviceIds ids(device_count);
    for (size_t i = 0; i < users.size(); ++i) {
      if (!users[i].tenant_id.empty() && users[i].tenant_id != tenant_id) {
        results[i].error = MakeError(ErrorKind::kInvalid, "tenant_mismatch",
                                     "The user belongs to another tenant.", "tenant_id");
        continue;
      }
      Result<std::shared_ptr<const crypto::PiiCipher>> seal =
          SealingCipher(*tenant, users[i].consent_until);
      if (!seal.ok()) return seal.take_error();
      Result<SealedUser> s = SealUser(users[i], **seal, *tenant->cipher, now, ids);
      if (s.ok()) {
        sealed[i] = std::move(*s);
      } else {
        results[i].error = s.take_error();
      }
    }
    users.clear();
    // The batch insert takes each user's first line; a later line for the same user replaces
    // it, in line order, as on SQLite.
    std::vector<std::optional<SealedUser>> first_pass(sealed.size());
    std::vector<size_t> later;  // lines written one by one after the batch insert
    {
      std::unordered_map<std::string, bool> seen;
      for (size_t i = 0; i < sealed.size(); ++i) {
        if (!sealed[i]) continue;
        if (seen.emplace(sealed[i]->external_id, true).second) {
          first_pass[i] = sealed[i];
        } else {
          later.push_back(i);
        }
      }
    }
    std::vector<ImportLineResult> attempt;
    Status s = Txn([&](Conn& c) -> Status {
      attempt = results;
      GroupPks groups;
      std::vector<bool> fresh(sealed.size(), false);
      Status n = InsertNewUsers(c, tenant->pk, first_pass, now, groups, fresh);
      if (!n.ok()) return n;
      std::vector<size_t> rest;
      for (size_t i = 0; i < sealed.size(); ++i) {
        if (!first_pass[i]) continue;
        if (fresh[i]) {
          attempt[i] = ImportLineResult{true, true, {}};
        } else {
          rest.push_back(i);
        }
      }
      rest.insert(rest.end(), later.begin(), later.end());
      std::sort(rest.begin(), rest.end());
      for (size_t i : rest) {
        // Each existing user in a savepoint of its own: one that fails is rolled back alone.
        Status sp = c.Script("SAVEPOINT line");
        if (!sp.ok()) return sp;
        Result<WrittenUser> w = WriteUser(c, tenant->pk, *sealed[i], std::nullopt, now, groups);
        if (w.ok()) {
          sp = c.Script("RELEASE line");
          if (!sp.ok()) return sp;
          const bool created = w->created && !attempt[i].ok;
          attempt[i] = ImportLineResult{true, created, {}};
          continue;
        }
        if (!c.Healthy()) return w.take_error();
        sp = c.Script("ROLLBACK TO line");
        if (!sp.ok()) return sp;
        groups.clear();
        attempt[i] = ImportLineResult{false, false, w.take_error()};
      }
      return Status::Ok();
    });
    if (!s.ok()) return s.take_error();
    results = std::move(attempt);
    std::optional<UnixMillis> earliest;
    for (size_t i = 0; i < sealed.size(); ++i) {
      if (!results[i].ok) continue;
      const UnixMillis until = sealed[i]->consent_until;
      earliest = earliest ? std::min(*earliest, until) : until;
    }
    if (earliest) NotifyConsentExpiry(*earliest);
    return results;
  });
}

Result<User> PostgresStore::GetUser(std::string_view tenant_id, std::string_view external_id) {
  return NoThrow([&]() -> Result<User> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    const UnixMillis now = Now();
    // One statement: the user, each device and each group key, as rows of one result (kind 0,
    // 1, 2), so that the three are of one snapshot.
    Params q;
    q.Int(tenant->pk).Text(external_id).Int(now);
    PG_TRY(rows,
           Read("WITH u AS (SELECT pk, name_sealed, opt_in, consent_from, consent_until, version, "
                "created_at, updated_at FROM users WHERE tenant_pk = $1 AND external_id = $2 "
                "AND consent_until > $3) "
                "SELECT * FROM (SELECT 0 AS kind, NULL::text AS s, NULL::text AS ch, "
                "u.name_sealed AS b, u.opt_in::integer AS f, u.consent_from AS t1, "
                "u.consent_until AS o, u.version AS v, u.created_at AS t2, u.updated_at AS t3 "
                "FROM u "
                "UNION ALL SELECT 1, d.id, d.channel, d.address_sealed, d.disabled::integer, "
                "d.created_at, d.ord, 0, 0, 0 FROM u JOIN devices d "
                "ON d.tenant_pk = $1 AND d.user_pk = u.pk "
                "UNION ALL SELECT 2, g.group_key, NULL, NULL, 0, 0, 0, 0, 0, 0 FROM u "
                "JOIN memberships m ON m.tenant_pk = $1 AND m.user_pk = u.pk "
                "JOIN tenant_groups g ON g.tenant_pk = $1 AND g.pk = m.group_pk) x "
                "ORDER BY kind, o, s COLLATE \"C\"",
                q));
    if (rows.empty() || rows.Int(0, 0) != 0) return UserNotFound();
    User user;
    user.tenant_id = std::string(tenant_id);
    user.external_id = std::string(external_id);
    const UnixMillis consent_until = rows.Int(0, 6);
    Result<std::string> name = OpenUserPii(*tenant, consent_until, rows.Blob(0, 3), kNameContext);
    if (!name.ok()) return name.take_error();
    user.name = std::move(*name);
    user.opt_in = rows.Int(0, 4) != 0;
    user.consent_from = rows.Int(0, 5);
    user.consent_until = rows.Int(0, 6);
    user.version = rows.Int(0, 7);
    user.created_at = rows.Int(0, 8);
    user.updated_at = rows.Int(0, 9);
    for (int r = 1; r < rows.size(); ++r) {
      if (rows.Int(r, 0) == 1) {
        std::optional<Channel> channel = ParseChannel(rows.Text(r, 2));
        if (!channel) return DecryptFailed();
        Result<std::string> address =
            OpenUserPii(*tenant, consent_until, rows.Blob(r, 3), AddressContext(*channel));
        if (!address.ok()) return address.take_error();
        user.devices.push_back(Device{rows.Text(r, 1), *channel, std::move(*address),
                                      rows.Int(r, 4) != 0, rows.Int(r, 5)});
      } else {
        user.groups.push_back(rows.Text(r, 1));
      }
    }
    return user;
  });
}

Status PostgresStore::DeleteUser(std::string_view tenant_id, std::string_view external_id) {
  return NoThrow([&]() -> Status {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    const UnixMillis now = Now();
    return Txn([&](Conn& c) -> Status {
      Params w;
      w.Int(tenant->pk).Text(external_id).Int(now);
      PG_TRY(r, c.Exec(DeleteUsersSql("SELECT tenant_pk, pk FROM users WHERE tenant_pk = $1 AND "
                                      "external_id = $2 AND consent_until > $3 FOR UPDATE"),
                       w));
      return r.Affected() == 0 ? Status(UserNotFound()) : Status::Ok();
    });
  });
}

Result<Device> PostgresStore::AddDevice(std::string_view tenant_id, std::string_view external_id,
                                        Device device) {
  return NoThrow([&]() -> Result<Device> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    const UnixMillis now = Now();
    const std::string id = crypto::RandomId("dev_");
    SealedUser one;
    Status s = Txn([&](Conn& c) -> Status {
      Params q;
      q.Int(tenant->pk).Text(external_id).Int(now);
      PG_TRY(user, c.Exec("SELECT pk, consent_until FROM users WHERE tenant_pk = $1 "
                          "AND external_id = $2 AND consent_until > $3 FOR UPDATE",
                          q));
      if (user.empty()) return UserNotFound();
      const int64_t user_pk = user.Int(0, 0);
      // Sealed for the user's consent minute, which the lock keeps as it is.
      Result<std::shared_ptr<const crypto::PiiCipher>> seal = UserCipher(*tenant, user.Int(0, 1));
      if (!seal.ok()) return seal.take_error();
      one.devices = {SealDevice(device, **seal, *tenant->cipher, id)};
      const SealedDevice& sealed = one.devices.front();
      Params d;
      d.Int(tenant->pk).Int(user_pk).Text(ToString(sealed.channel)).Blob(sealed.address_bidx);
      PG_TRY(have, c.Exec("SELECT COUNT(*), COUNT(*) FILTER (WHERE channel = $3 AND "
                          "address_bidx = $4), COALESCE(MAX(ord) + 1, 0) FROM devices "
                          "WHERE tenant_pk = $1 AND user_pk = $2",
                          d));
      if (have.Int(0, 1) > 0) {
        return MakeError(ErrorKind::kConflict, "duplicate_device",
                         "The user already has this device.", "address");
      }
      if (have.Int(0, 0) >= static_cast<int64_t>(kMaxDevices)) {
        return MakeError(ErrorKind::kInvalid, "too_many_devices",
                         "A user has at most 16 devices; remove one first.", "devices");
      }
      Status w = InsertDevices(c, tenant->pk, user_pk, one, {0}, have.Int(0, 2), now);
      if (!w.ok()) return w;
      return TouchUser(c, tenant->pk, user_pk, now);
    });
    if (!s.ok()) return s.take_error();
    return Device{id, device.channel, std::move(device.address), device.disabled, now};
  });
}

Status PostgresStore::RemoveDevice(std::string_view tenant_id, std::string_view external_id,
                                   std::string_view device_id) {
  return NoThrow([&]() -> Status {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    const UnixMillis now = Now();
    return Txn([&](Conn& c) -> Status {
      Result<int64_t> user_pk = FindVisibleUser(c, tenant->pk, external_id, now);
      if (!user_pk.ok()) return user_pk.take_error();
      Params d;
      d.Int(tenant->pk).Int(*user_pk).Text(device_id);
      PG_TRY(r, c.Exec("DELETE FROM devices WHERE tenant_pk = $1 AND user_pk = $2 AND id = $3", d));
      if (r.Affected() == 0) {
        return MakeError(ErrorKind::kNotFound, "device_not_found", "The user has no such device.");
      }
      return TouchUser(c, tenant->pk, *user_pk, now);
    });
  });
}

// ---- groups ----

Result<Group> PostgresStore::PutGroup(const Group& group) {
  return NoThrow([&]() -> Result<Group> {
    Result<TenantRef> tenant = tenants_.Get(group.tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    const UnixMillis now = Now();
    Group stored = group;
    int64_t group_pk = 0;
    Status s = Txn([&](Conn& c) -> Status {
      Params w;
      w.Int(tenant->pk).Text(group.key).Text(group.name).Int(now);
      PG_TRY(r, c.Exec("INSERT INTO tenant_groups (tenant_pk, group_key, name, created_at) "
                       "VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_pk, group_key) DO UPDATE SET "
                       "name = excluded.name RETURNING pk, created_at",
                       w));
      group_pk = r.Int(0, 0);
      stored.created_at = r.Int(0, 1);
      return Status::Ok();
    });
    if (!s.ok()) return s.take_error();
    Result<Pool::Lease> conn = pool_->Acquire();
    if (!conn.ok()) return conn.take_error();
    Result<int64_t> n = CountLiveMembers(**conn, tenant->pk, group_pk, now);
    stored.member_count = n.ok() ? *n : 0;
    return stored;
  });
}

Result<Group> PostgresStore::GetGroup(std::string_view tenant_id, std::string_view key) {
  return NoThrow([&]() -> Result<Group> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    const UnixMillis now = Now();
    Params q;
    q.Int(tenant->pk).Text(key).Int(now);
    PG_TRY(rows, Read("SELECT g.name, g.created_at, (SELECT COUNT(*) FROM memberships m "
                      "JOIN users u ON u.tenant_pk = m.tenant_pk AND u.pk = m.user_pk "
                      "WHERE m.tenant_pk = $1 AND m.group_pk = g.pk AND u.consent_until > $3) "
                      "FROM tenant_groups g WHERE g.tenant_pk = $1 AND g.group_key = $2",
                      q));
    if (rows.empty()) return GroupNotFound();
    return Group{std::string(tenant_id), std::string(key), rows.Text(0, 0), rows.Int(0, 2),
                 rows.Int(0, 1)};
  });
}

Result<std::vector<std::string>> PostgresStore::MissingGroups(
    std::string_view tenant_id, const std::vector<std::string>& keys) {
  return NoThrow([&]() -> Result<std::vector<std::string>> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    if (keys.empty()) return std::vector<std::string>();
    Params q;
    q.Int(tenant->pk).TextArray(keys);
    PG_TRY(rows, Read("SELECT group_key FROM tenant_groups WHERE tenant_pk = $1 "
                      "AND group_key = ANY($2::text[])",
                      q));
    std::vector<std::string> found;
    found.reserve(static_cast<size_t>(rows.size()));
    for (int r = 0; r < rows.size(); ++r) found.push_back(rows.Text(r, 0));
    std::vector<std::string> missing;
    for (const std::string& key : keys) {
      if (std::find(found.begin(), found.end(), key) == found.end()) missing.push_back(key);
    }
    return missing;
  });
}

Status PostgresStore::DeleteGroup(std::string_view tenant_id, std::string_view key) {
  return NoThrow([&]() -> Status {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    const UnixMillis now = Now();
    return Txn([&](Conn& c) -> Status {
      Result<int64_t> group_pk = FindGroup(c, tenant->pk, key);
      if (!group_pk.ok()) return group_pk.take_error();
      // The members' group lists change: their versions move on.
      Params t;
      t.Int(tenant->pk).Int(*group_pk).Int(now);
      Result<Rows> touched = c.Exec(
          "UPDATE users SET version = version + 1, updated_at = $3 WHERE tenant_pk = $1 AND pk IN "
          "(SELECT user_pk FROM memberships WHERE tenant_pk = $1 AND group_pk = $2)",
          t);
      if (!touched.ok()) return touched.take_error();
      Params d;
      d.Int(tenant->pk).Int(*group_pk);
      Result<Rows> del = c.Exec(
          "WITH m AS (DELETE FROM memberships WHERE tenant_pk = $1 AND group_pk = $2) "
          "DELETE FROM tenant_groups WHERE tenant_pk = $1 AND pk = $2",
          d);
      return del.ok() ? Status::Ok() : Status(del.take_error());
    });
  });
}

Status PostgresStore::AddMember(std::string_view tenant_id, std::string_view group_key,
                                std::string_view external_id) {
  return NoThrow([&]() -> Status {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    const UnixMillis now = Now();
    return Txn([&](Conn& c) -> Status {
      Result<int64_t> group_pk = FindGroup(c, tenant->pk, group_key);
      if (!group_pk.ok()) return group_pk.take_error();
      Result<int64_t> user_pk = FindVisibleUser(c, tenant->pk, external_id, now);
      if (!user_pk.ok()) return user_pk.take_error();
      Result<bool> added = InsertMembership(c, tenant->pk, *group_pk, *user_pk);
      if (!added.ok()) return added.take_error();
      return *added ? TouchUser(c, tenant->pk, *user_pk, now) : Status::Ok();
    });
  });
}

Status PostgresStore::RemoveMember(std::string_view tenant_id, std::string_view group_key,
                                   std::string_view external_id) {
  return NoThrow([&]() -> Status {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    const UnixMillis now = Now();
    return Txn([&](Conn& c) -> Status {
      Result<int64_t> group_pk = FindGroup(c, tenant->pk, group_key);
      if (!group_pk.ok()) return group_pk.take_error();
      Result<int64_t> user_pk = FindVisibleUser(c, tenant->pk, external_id, now);
      if (!user_pk.ok()) return user_pk.take_error();
      Params d;
      d.Int(tenant->pk).Int(*group_pk).Int(*user_pk);
      PG_TRY(r, c.Exec("DELETE FROM memberships WHERE tenant_pk = $1 AND group_pk = $2 "
                       "AND user_pk = $3",
                       d));
      if (r.Affected() == 0) return Status::Ok();  // not a member: nothing to do
      return TouchUser(c, tenant->pk, *user_pk, now);
    });
  });
}

Result<std::vector<std::string>> PostgresStore::AddMembers(std::string_view tenant_id,
                                                           std::string_view group_key,
                                                           const std::vector<std::string>& ids) {
  return NoThrow([&]() -> Result<std::vector<std::string>> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    const UnixMillis now = Now();
    std::vector<std::string> missing;
    Status s = Txn([&](Conn& c) -> Status {
      missing.clear();
      Result<int64_t> group_pk = FindGroup(c, tenant->pk, group_key);
      if (!group_pk.ok()) return group_pk.take_error();
      // The live users among `ids`; members added in one statement, their versions moved on.
      Params q;
      q.Int(tenant->pk).TextArray(ids).Int(now).Int(*group_pk);
      PG_TRY(rows, c.Exec("WITH live AS (SELECT pk, external_id FROM users WHERE tenant_pk = $1 "
                          "AND external_id = ANY($2::text[]) AND consent_until > $3), "
                          "added AS (INSERT INTO memberships (tenant_pk, group_pk, user_pk) "
                          "SELECT $1, $4, pk FROM live ON CONFLICT DO NOTHING RETURNING user_pk), "
                          "touched AS (UPDATE users SET version = version + 1, updated_at = $3 "
                          "WHERE tenant_pk = $1 AND pk IN (SELECT user_pk FROM added)) "
                          "SELECT external_id FROM live",
                          q));
      std::vector<std::string> live;
      live.reserve(static_cast<size_t>(rows.size()));
      for (int r = 0; r < rows.size(); ++r) live.push_back(rows.Text(r, 0));
      for (const std::string& id : ids) {
        if (std::find(live.begin(), live.end(), id) == live.end()) missing.push_back(id);
      }
      return Status::Ok();
    });
    if (!s.ok()) return s.take_error();
    return missing;
  });
}

Result<Page<std::string>> PostgresStore::ListMembers(std::string_view tenant_id,
                                                     std::string_view group_key,
                                                     const PageRequest& page) {
  return NoThrow([&]() -> Result<Page<std::string>> {
    Result<std::string> after = DecodeCursor(kMemberCursor, page.cursor);
    if (!after.ok()) return after.take_error();
    const int limit = ClampLimit(page.limit);
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    const UnixMillis now = Now();
    Params q;
    q.Int(tenant->pk).Text(group_key).Int(now).Text(*after).Int(limit + 1);
    // The group's row comes first (kind 0), so an unknown group is told from an empty one.
    PG_TRY(rows, Read("SELECT * FROM (SELECT 0 AS kind, ''::text AS id FROM tenant_groups "
                      "WHERE tenant_pk = $1 AND group_key = $2 "
                      "UNION ALL (SELECT 1, u.external_id FROM tenant_groups g "
                      "JOIN memberships m ON m.tenant_pk = $1 AND m.group_pk = g.pk "
                      "JOIN users u ON u.tenant_pk = $1 AND u.pk = m.user_pk "
                      "WHERE g.tenant_pk = $1 AND g.group_key = $2 AND u.consent_until > $3 "
                      "AND u.external_id > $4 COLLATE \"C\" "
                      "ORDER BY u.external_id COLLATE \"C\" LIMIT $5)) x "
                      "ORDER BY kind, id COLLATE \"C\"",
                      q));
    if (rows.empty() || rows.Int(0, 0) != 0) return GroupNotFound();
    Page<std::string> out;
    for (int r = 1; r < rows.size(); ++r) {
      if (static_cast<int>(out.items.size()) == limit) {
        out.next_cursor = EncodeCursor(kMemberCursor, out.items.back());
        break;
      }
      out.items.push_back(rows.Text(r, 1));
    }
    return out;
  });
}

}  // namespace herald::pg

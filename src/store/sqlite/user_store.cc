// SqliteStore methods for users and their devices.
#include <algorithm>
#include <utility>

#include "store/sqlite/sqlite_store_impl.h"
#include "store/sqlite/user_rows.h"

namespace herald::sqlite {
namespace {

// The user as stored: the caller's plaintext with what the writer assigned.
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
  out.devices.reserve(written.devices.size());
  for (const StoredDevice& d : written.devices) {
    const Device& in = input.devices[d.input_index];
    out.devices.push_back(Device{d.id, in.channel, in.address, d.disabled, d.created_at});
  }
  return out;
}

}  // namespace

Result<PutUserOutcome> SqliteStore::PutUser(const User& user,
                                            std::optional<int64_t> expected_version) {
  return NoThrow([&]() -> Result<PutUserOutcome> {
    Result<TenantRef> tenant = tenants_.Get(user.tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    UnixMillis now = Now();
    DeviceIds ids(user.devices.size());
    Result<SealedUser> sealed = SealUser(user, *tenant->cipher, now, ids);
    if (!sealed.ok()) return sealed.take_error();
    WrittenUser written;
    Status s = writer_->Run([&](Connection& c) -> Status {
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

Result<std::vector<ImportLineResult>> SqliteStore::PutUsers(std::string_view tenant_id,
                                                            std::vector<User> users) {
  return NoThrow([&]() -> Result<std::vector<ImportLineResult>> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    UnixMillis now = Now();
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
      Result<SealedUser> s = SealUser(users[i], *tenant->cipher, now, ids);
      if (s.ok()) {
        sealed[i] = std::move(*s);
      } else {
        results[i].error = s.take_error();
      }
    }
    users.clear();  // the plaintext is not needed any more

    Status s = writer_->Run([&](Connection& c) -> Status {
      // Optimistic pass: no savepoint per user (two statements each, a third of the cost of a
      // new user). Should a user fail in it, the pass is rolled back and redone with one.
      Result<bool> done = WriteUserLines(c, tenant->pk, sealed, now, results, /*savepoints=*/false);
      if (!done.ok() || *done) return done.ok() ? Status::Ok() : Status(done.take_error());
      done = WriteUserLines(c, tenant->pk, sealed, now, results, /*savepoints=*/true);
      return done.ok() ? Status::Ok() : Status(done.take_error());
    });
    if (!s.ok()) return s.take_error();

    std::optional<UnixMillis> earliest;
    for (size_t i = 0; i < sealed.size(); ++i) {
      if (!results[i].ok) continue;
      UnixMillis until = sealed[i]->consent_until;
      earliest = earliest ? std::min(*earliest, until) : until;
    }
    if (earliest) NotifyConsentExpiry(*earliest);
    return results;
  });
}

Result<User> SqliteStore::GetUser(std::string_view tenant_id, std::string_view external_id) {
  return NoThrow([&]() -> Result<User> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    UnixMillis now = Now();
    ReadPool::Lease conn = readers_->Acquire();
    ReadTxn txn(*conn);
    if (!txn.status().ok()) return txn.status().error();
    return ReadUser(*conn, *tenant, tenant_id, external_id, now);
  });
}

Status SqliteStore::DeleteUser(std::string_view tenant_id, std::string_view external_id) {
  return NoThrow([&]() -> Status {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    UnixMillis now = Now();
    return writer_->Run([&](Connection& c) -> Status {
      Stmt w = c.Prepare(
          "DELETE FROM users WHERE tenant_pk = ?1 AND external_id = ?2 AND consent_until > ?3");
      Status s = w.Bind(1, tenant->pk).Bind(2, external_id).Bind(3, now).Run();
      if (!s.ok()) return s;
      return c.Changes() == 0 ? Status(UserNotFound()) : Status::Ok();
    });
  });
}

Result<Device> SqliteStore::AddDevice(std::string_view tenant_id, std::string_view external_id,
                                      Device device) {
  return NoThrow([&]() -> Result<Device> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    UnixMillis now = Now();
    SealedDevice sealed = SealDevice(device, *tenant->cipher, crypto::RandomId("dev_"));
    Status s = writer_->Run([&](Connection& c) -> Status {
      Result<int64_t> user_pk = FindVisibleUser(c, tenant->pk, external_id, now);
      if (!user_pk.ok()) return user_pk.take_error();
      int64_t ord = 0;
      {
        Stmt q = c.Prepare(
            "SELECT COUNT(*), COALESCE(SUM(channel = ?2 AND address_bidx = ?3), 0), "
            "COALESCE(MAX(ord) + 1, 0) FROM devices WHERE user_pk = ?1");
        q.Bind(1, *user_pk).Bind(2, ToString(sealed.channel)).BindBlob(3, sealed.address_bidx);
        Result<bool> row = q.Next();
        if (!row.ok()) return row.take_error();
        if (q.Int(1) > 0) {
          return MakeError(ErrorKind::kConflict, "duplicate_device",
                           "The user already has this device.", "address");
        }
        if (q.Int(0) >= static_cast<int64_t>(kMaxDevices)) {
          return MakeError(ErrorKind::kInvalid, "too_many_devices",
                           "A user has at most 16 devices; remove one first.", "devices");
        }
        ord = q.Int(2);
      }
      Status w = InsertDevice(c, *user_pk, sealed, ord, now);
      if (!w.ok()) return w;
      return TouchUser(c, *user_pk, now);
    });
    if (!s.ok()) return s.take_error();
    return Device{sealed.id, device.channel, std::move(device.address), device.disabled, now};
  });
}

Status SqliteStore::RemoveDevice(std::string_view tenant_id, std::string_view external_id,
                                 std::string_view device_id) {
  return NoThrow([&]() -> Status {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    UnixMillis now = Now();
    return writer_->Run([&](Connection& c) -> Status {
      Result<int64_t> user_pk = FindVisibleUser(c, tenant->pk, external_id, now);
      if (!user_pk.ok()) return user_pk.take_error();
      Stmt w = c.Prepare("DELETE FROM devices WHERE user_pk = ?1 AND id = ?2");
      Status s = w.Bind(1, *user_pk).Bind(2, device_id).Run();
      if (!s.ok()) return s;
      if (c.Changes() == 0) {
        return MakeError(ErrorKind::kNotFound, "device_not_found", "The user has no such device.");
      }
      return TouchUser(c, *user_pk, now);
    });
  });
}

}  // namespace herald::sqlite

// PostgresStore's erasure keys: which cipher seals a user's PII, and destroying the keys of the
// consent minutes that ended (crypto/erasure_keys.h).
//
// Why: a DELETE leaves the row's bytes in the table file until vacuum reclaims the space, and
// vacuum compacts a page without zeroing what it freed, so some of them stay until new rows
// overwrite them. Sealed with a key that no longer exists, those bytes are noise. A user's name
// and device addresses are sealed with the key of the minute its consent ends; the reaper erases
// the user at consent_until, and once no live user of a tenant has a consent ending before a
// minute, ShredExpiredKeys destroys that tenant's keys before it: the tenant's erasure_keys row
// is replaced by one from which the old keys cannot be computed, and VACUUM FULL rewrites the
// (small) table, so the old row is gone from its file at once (PostgreSQL truncates the old
// file when the rewrite commits). What remains in WAL, standbys and backups: docs/operations.md.
#include <algorithm>
#include <string>
#include <utility>

#include "store/postgres/postgres_store_impl.h"

namespace herald::pg {
namespace {

std::string_view AsText(const crypto::Bytes& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

crypto::Bytes SealKeys(const crypto::PiiCipher& tenant_cipher, const crypto::ErasureKeys& keys) {
  return tenant_cipher.Seal(AsText(keys.Serialize()), kErasureKeysContext);
}

// The inverse of SealKeys: DecryptFailed() when the row does not open or parse.
Result<crypto::ErasureKeys> OpenKeys(const crypto::PiiCipher& tenant_cipher,
                                     const crypto::Bytes& sealed) {
  Result<std::string> opened = tenant_cipher.Open(sealed, kErasureKeysContext);
  if (!opened.ok()) return DecryptFailed();
  Result<crypto::ErasureKeys> keys =
      crypto::ErasureKeys::Parse(crypto::Bytes(opened->begin(), opened->end()));
  if (!keys.ok()) return DecryptFailed();
  return keys;
}

}  // namespace

crypto::Bytes SealNewErasureKeys(const crypto::PiiCipher& tenant_cipher, UnixMillis now) {
  return SealKeys(tenant_cipher, crypto::ErasureKeys::Create(ErasureBucket(now)));
}

Result<crypto::ErasureKeys> PostgresStore::LoadErasureKeys(const TenantRef& tenant) {
  Params p;
  p.Int(tenant.pk);
  // A tenant created before schema version 2 has no row: its keys begin now.
  Params w;
  w.Int(tenant.pk).Int(static_cast<int64_t>(ErasureBucket(Now())));
  w.Blob(SealNewErasureKeys(*tenant.cipher, Now())).Int(Now());
  Bytes sealed;
  Status s = InTransaction(
      *keys_pool_,
      [&](Conn& c) -> Status {
        PG_TRY(rows, c.Exec("SELECT sealed FROM erasure_keys WHERE tenant_pk = $1", p));
        if (rows.empty()) {
          PG_TRY(made, c.Exec("INSERT INTO erasure_keys (tenant_pk, first_bucket, sealed, "
                              "updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_pk) "
                              "DO UPDATE SET tenant_pk = excluded.tenant_pk RETURNING sealed",
                              w));
          sealed = made.Blob(0, 0);
        } else {
          sealed = rows.Blob(0, 0);
        }
        return Status::Ok();
      },
      /*wait_for_standby=*/false);
  if (!s.ok()) return s.take_error();
  return OpenKeys(*tenant.cipher, sealed);
}

Result<std::shared_ptr<const crypto::PiiCipher>> PostgresStore::SealingCipher(
    const TenantRef& tenant, UnixMillis consent_until) {
  Result<std::shared_ptr<const crypto::PiiCipher>> cipher = UserCipher(tenant, consent_until);
  if (cipher.ok() || cipher.error().kind != ErrorKind::kInvalid) return cipher;
  return tenant.cipher;  // the consent has ended: SealUser refuses the user
}

Result<std::shared_ptr<const crypto::PiiCipher>> PostgresStore::UserCipher(
    const TenantRef& tenant, UnixMillis consent_until) {
  const uint64_t bucket = ErasureBucket(consent_until);
  const UnixMillis now = Now();
  auto from_entry = [&](ErasureEntry& entry) -> Result<std::shared_ptr<const crypto::PiiCipher>> {
    auto it = entry.ciphers.find(bucket);
    if (it != entry.ciphers.end()) return it->second;
    std::optional<crypto::Key> key = entry.keys.Derive(bucket);
    if (!key) {
      return MakeError(ErrorKind::kInvalid, "consent_expired",
                       "consent_until is in the past; a user without consent cannot be stored "
                       "(delete the user instead).",
                       "consent_until");
    }
    constexpr size_t kMaxCiphers = 4096;
    if (entry.ciphers.size() >= kMaxCiphers) entry.ciphers.clear();
    auto cipher = std::make_shared<const crypto::PiiCipher>(*key);
    entry.ciphers.emplace(bucket, cipher);
    return std::shared_ptr<const crypto::PiiCipher>(std::move(cipher));
  };
  {
    std::lock_guard lock(erasure_mu_);
    auto it = erasure_.find(tenant.pk);
    if (it != erasure_.end() && now - it->second.loaded < kErasureBucketMillis) {
      return from_entry(it->second);
    }
  }
  Result<crypto::ErasureKeys> keys = LoadErasureKeys(tenant);
  if (!keys.ok()) return keys.take_error();
  std::lock_guard lock(erasure_mu_);
  ErasureEntry& entry = erasure_[tenant.pk];
  if (entry.loaded == 0 || keys->first() >= entry.keys.first()) {
    entry.keys = std::move(*keys);
    std::erase_if(entry.ciphers, [&](const auto& c) { return c.first < entry.keys.first(); });
  }
  entry.loaded = now;
  return from_entry(entry);
}

Result<std::string> PostgresStore::OpenUserPii(const TenantRef& tenant, UnixMillis consent_until,
                                               const crypto::Bytes& sealed,
                                               std::string_view context) {
  Result<std::shared_ptr<const crypto::PiiCipher>> cipher = UserCipher(tenant, consent_until);
  if (cipher.ok()) {
    Result<std::string> opened = (*cipher)->Open(sealed, context);
    if (opened.ok()) return opened;
  } else if (cipher.error().kind != ErrorKind::kInvalid) {
    return cipher.take_error();  // the store is unavailable: not a decryption failure
  }
  Result<std::string> legacy = tenant.cipher->Open(sealed, context);
  if (legacy.ok()) return legacy;
  return DecryptFailed();
}

Result<int64_t> PostgresStore::ShredExpiredKeys(UnixMillis now) {
  return NoThrow([&]() -> Result<int64_t> {
    const auto due = static_cast<int64_t>(ErasureBucket(now));
    Params q;
    q.Int(due);
    // Per tenant, the first minute a live user's consent ends in: no key from it on may go.
    PG_TRY(rows, Read("SELECT e.tenant_pk, t.id, e.first_bucket, (SELECT MIN(u.consent_until) "
                      "FROM users u WHERE u.tenant_pk = e.tenant_pk) "
                      "FROM erasure_keys e JOIN tenants t ON t.pk = e.tenant_pk "
                      "WHERE e.first_bucket < $1 ORDER BY e.tenant_pk",
                      q));
    int64_t changed = 0;
    for (int r = 0; r < rows.size(); ++r) {
      int64_t target = due;
      if (!rows.IsNull(r, 3)) {
        target = std::min(target, static_cast<int64_t>(ErasureBucket(rows.Int(r, 3))));
      }
      if (target <= rows.Int(r, 2)) continue;
      Result<TenantRef> tenant = tenants_.Get(rows.Text(r, 1));
      if (!tenant.ok()) return tenant.take_error();
      bool moved = false;
      Status s = PipelineTxn([&](Conn& c) -> Status {
        moved = false;
        Params k;
        k.Int(tenant->pk);
        PG_TRY(row, c.Exec("SELECT sealed, first_bucket FROM erasure_keys WHERE tenant_pk = $1 "
                           "FOR UPDATE",
                           k));
        if (row.empty() || row.Int(0, 1) >= target) return Status::Ok();  // done by another
        Result<crypto::ErasureKeys> keys = OpenKeys(*tenant->cipher, row.Blob(0, 0));
        if (!keys.ok()) return keys.take_error();
        keys->DestroyBefore(static_cast<uint64_t>(target));
        Params w;
        w.Int(tenant->pk).Int(target).Blob(SealKeys(*tenant->cipher, *keys)).Int(now);
        PG_TRY(updated, c.Exec("UPDATE erasure_keys SET first_bucket = $2, sealed = $3, "
                               "updated_at = $4 WHERE tenant_pk = $1",
                               w));
        moved = updated.Affected() == 1;
        return Status::Ok();
      });
      if (!s.ok()) return s.take_error();
      if (moved) ++changed;
    }
    if (changed > 0) {
      // The old rows' bytes leave the table file now, not when vacuum gets to them.
      Result<Pool::Lease> conn = pool_->Acquire();
      if (!conn.ok()) return conn.take_error();
      Status s = (*conn)->Script("VACUUM (FULL) erasure_keys");
      if (!s.ok()) return s.take_error();
      std::lock_guard lock(erasure_mu_);
      erasure_.clear();  // read again on next use, without the destroyed keys
    }
    return changed;
  });
}

}  // namespace herald::pg

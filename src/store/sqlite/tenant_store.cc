// SqliteStore methods for tenants, their API keys and their provider settings.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "store/cursor.h"
#include "store/row_text.h"
#include "store/sqlite/sqlite_store_impl.h"

namespace herald::sqlite {
namespace {

constexpr char kTenantCursor = 't';

// Reads the columns of the tenant SELECTs below.
Tenant TenantFromRow(const Stmt& q) {
  return Tenant{q.Text(0), q.Text(1), static_cast<int>(q.Int(2)), static_cast<int>(q.Int(3)),
                q.Int(4),  q.Int(5),  DecodeRateLimits(q.Text(6))};
}

// Columns: k.id, t.id, k.name, k.scopes, k.hash, k.created_at, k.revoked_at.
ApiKeyRecord KeyFromRow(const Stmt& q) {
  ApiKeyRecord r;
  r.key.id = q.Text(0);
  r.key.tenant_id = q.Text(1);
  r.key.name = q.Text(2);
  r.key.scopes = SplitScopes(q.Text(3));
  r.hash = q.Blob(4);
  r.key.created_at = q.Int(5);
  if (!q.IsNull(6)) r.key.revoked_at = q.Int(6);
  return r;
}

Error KeyNotFound() { return MakeError(ErrorKind::kNotFound, "key_not_found", "No such API key."); }

// A unique-constraint failure of an insert, renamed for the caller.
Status RenameConflict(Status s, const char* code, const char* message) {
  if (!s.ok() && s.error().kind == ErrorKind::kConflict) {
    return MakeError(ErrorKind::kConflict, code, message);
  }
  return s;
}

}  // namespace

// ---- tenants ----

Result<Tenant> SqliteStore::CreateTenant(Tenant tenant) {
  return NoThrow([&]() -> Result<Tenant> {
    if (tenant.id.empty()) tenant.id = crypto::RandomId("ten_");
    tenant.created_at = tenant.updated_at = Now();
    crypto::Key data_key = crypto::RandomKey();
    crypto::Bytes wrapped = crypto::WrapDataKey(tenants_.master(), data_key, tenant.id);
    int64_t pk = 0;
    Status s = writer_->Run([&](Connection& c) -> Status {
      Stmt w = c.Prepare(
          "INSERT INTO tenants (id, name, delivery_deadline_minutes, default_consent_days, "
          "wrapped_key, created_at, updated_at, rate_limits) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)");
      Status r = w.Bind(1, tenant.id)
                     .Bind(2, tenant.name)
                     .Bind(3, tenant.delivery_deadline_minutes)
                     .Bind(4, tenant.default_consent_days)
                     .BindBlob(5, wrapped)
                     .Bind(6, tenant.created_at)
                     .Bind(7, EncodeRateLimits(tenant.rate_limits))
                     .Run();
      pk = c.LastInsertRowid();
      return RenameConflict(std::move(r), "duplicate_tenant", "A tenant with this id exists.");
    });
    if (!s.ok()) return s.take_error();
    tenants_.Put(tenant.id, TenantRef{pk, std::make_shared<const crypto::PiiCipher>(data_key)});
    return tenant;
  });
}

Result<Tenant> SqliteStore::GetTenant(std::string_view tenant_id) {
  return NoThrow([&]() -> Result<Tenant> {
    ReadPool::Lease conn = readers_->Acquire();
    Stmt q = conn->Prepare(
        "SELECT id, name, delivery_deadline_minutes, default_consent_days, created_at, "
        "updated_at, rate_limits FROM tenants WHERE id = ?1");
    q.Bind(1, tenant_id);
    Result<bool> row = q.Next();
    if (!row.ok()) return row.take_error();
    if (!*row) return TenantNotFound();
    return TenantFromRow(q);
  });
}

Result<Page<Tenant>> SqliteStore::ListTenants(const PageRequest& page) {
  return NoThrow([&]() -> Result<Page<Tenant>> {
    Result<std::string> after = DecodeCursor(kTenantCursor, page.cursor);
    if (!after.ok()) return after.take_error();
    int limit = ClampLimit(page.limit);
    ReadPool::Lease conn = readers_->Acquire();
    Stmt q = conn->Prepare(
        "SELECT id, name, delivery_deadline_minutes, default_consent_days, created_at, "
        "updated_at, rate_limits FROM tenants WHERE id > ?1 ORDER BY id LIMIT ?2");
    q.Bind(1, *after).Bind(2, limit + 1);
    Page<Tenant> out;
    for (;;) {
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) break;
      if (static_cast<int>(out.items.size()) == limit) {
        out.next_cursor = EncodeCursor(kTenantCursor, out.items.back().id);
        break;
      }
      out.items.push_back(TenantFromRow(q));
    }
    return out;
  });
}

Result<Tenant> SqliteStore::UpdateTenant(const Tenant& tenant) {
  return NoThrow([&]() -> Result<Tenant> {
    Tenant stored = tenant;
    stored.updated_at = Now();
    const std::string limits = EncodeRateLimits(stored.rate_limits);  // bound without a copy
    Status s = writer_->Run([&](Connection& c) -> Status {
      Stmt w = c.Prepare(
          "UPDATE tenants SET name = ?2, delivery_deadline_minutes = ?3, "
          "default_consent_days = ?4, updated_at = ?5, rate_limits = ?6 WHERE id = ?1 "
          "RETURNING created_at");
      w.Bind(1, stored.id)
          .Bind(2, stored.name)
          .Bind(3, stored.delivery_deadline_minutes)
          .Bind(4, stored.default_consent_days)
          .Bind(5, stored.updated_at)
          .Bind(6, limits);
      Result<bool> row = w.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) return TenantNotFound();
      stored.created_at = w.Int(0);
      return w.Run();
    });
    if (!s.ok()) return s.take_error();
    return stored;
  });
}

// ---- API keys ----

Status SqliteStore::CreateApiKey(const ApiKey& key, const std::vector<uint8_t>& hash) {
  return NoThrow([&]() -> Status {
    Result<TenantRef> tenant = tenants_.Get(key.tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    std::string scopes = JoinScopes(key.scopes);
    UnixMillis created_at = key.created_at != 0 ? key.created_at : Now();
    return writer_->Run([&](Connection& c) -> Status {
      Stmt w = c.Prepare(
          "INSERT INTO api_keys (id, tenant_pk, name, scopes, hash, created_at, revoked_at) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
      w.Bind(1, key.id)
          .Bind(2, tenant->pk)
          .Bind(3, key.name)
          .Bind(4, scopes)
          .BindBlob(5, hash)
          .Bind(6, created_at);
      if (key.revoked_at) w.Bind(7, *key.revoked_at);
      return RenameConflict(w.Run(), "duplicate_key", "An API key with this id exists.");
    });
  });
}

Result<ApiKeyRecord> SqliteStore::GetApiKey(std::string_view key_id) {
  return NoThrow([&]() -> Result<ApiKeyRecord> {
    ReadPool::Lease conn = readers_->Acquire();
    Stmt q = conn->Prepare(
        "SELECT k.id, t.id, k.name, k.scopes, k.hash, k.created_at, k.revoked_at "
        "FROM api_keys k JOIN tenants t ON t.pk = k.tenant_pk WHERE k.id = ?1");
    q.Bind(1, key_id);
    Result<bool> row = q.Next();
    if (!row.ok()) return row.take_error();
    if (!*row) return KeyNotFound();
    return KeyFromRow(q);
  });
}

Result<std::vector<ApiKey>> SqliteStore::ListApiKeys(std::string_view tenant_id) {
  return NoThrow([&]() -> Result<std::vector<ApiKey>> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    ReadPool::Lease conn = readers_->Acquire();
    Stmt q = conn->Prepare(
        "SELECT k.id, t.id, k.name, k.scopes, k.hash, k.created_at, k.revoked_at "
        "FROM api_keys k JOIN tenants t ON t.pk = k.tenant_pk WHERE k.tenant_pk = ?1 "
        "ORDER BY k.created_at, k.id");
    q.Bind(1, tenant->pk);
    std::vector<ApiKey> out;
    for (;;) {
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) break;
      out.push_back(KeyFromRow(q).key);
    }
    return out;
  });
}

Status SqliteStore::RevokeApiKey(std::string_view tenant_id, std::string_view key_id) {
  return NoThrow([&]() -> Status {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    UnixMillis now = Now();
    return writer_->Run([&](Connection& c) -> Status {
      Stmt w = c.Prepare(
          "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?3) "
          "WHERE id = ?1 AND tenant_pk = ?2");
      Status s = w.Bind(1, key_id).Bind(2, tenant->pk).Bind(3, now).Run();
      if (!s.ok()) return s;
      return c.Changes() == 0 ? Status(KeyNotFound()) : Status::Ok();
    });
  });
}

// ---- provider settings ----

Status SqliteStore::PutProviderSettings(const ProviderSettings& settings) {
  return NoThrow([&]() -> Status {
    Result<TenantRef> tenant = tenants_.Get(settings.tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    crypto::Bytes sealed = tenant->cipher->Seal(settings.config_json, "providers");
    UnixMillis now = Now();
    return writer_->Run([&](Connection& c) -> Status {
      Stmt w = c.Prepare(
          "INSERT INTO provider_settings (tenant_pk, channel, config_sealed, updated_at) "
          "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (tenant_pk, channel) DO UPDATE SET "
          "config_sealed = excluded.config_sealed, updated_at = excluded.updated_at");
      return w.Bind(1, tenant->pk)
          .Bind(2, ToString(settings.channel))
          .BindBlob(3, sealed)
          .Bind(4, now)
          .Run();
    });
  });
}

Result<ProviderSettings> SqliteStore::GetProviderSettings(std::string_view tenant_id,
                                                          Channel channel) {
  return NoThrow([&]() -> Result<ProviderSettings> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    ReadPool::Lease conn = readers_->Acquire();
    Stmt q = conn->Prepare(
        "SELECT config_sealed, updated_at FROM provider_settings "
        "WHERE tenant_pk = ?1 AND channel = ?2");
    q.Bind(1, tenant->pk).Bind(2, ToString(channel));
    Result<bool> row = q.Next();
    if (!row.ok()) return row.take_error();
    if (!*row) {
      return MakeError(ErrorKind::kNotFound, "provider_settings_not_found",
                       "No provider settings for this channel.");
    }
    Result<std::string> config = tenant->cipher->Open(q.Blob(0), "providers");
    if (!config.ok()) return DecryptFailed();
    return ProviderSettings{std::string(tenant_id), channel, std::move(*config), q.Int(1)};
  });
}

}  // namespace herald::sqlite

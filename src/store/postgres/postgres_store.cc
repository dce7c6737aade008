// OpenPostgresStore, and the PostgresStore methods for tenants, API keys, provider settings,
// audit, consent expiry and health.
#include "store/postgres/postgres_store.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "store/cursor.h"
#include "store/postgres/postgres_store_impl.h"
#include "store/postgres/schema.h"
#include "store/row_text.h"

namespace herald {

bool IsPostgresUri(const std::string& store) {
  return store.starts_with("postgresql://") || store.starts_with("postgres://") ||
         store.find('=') != std::string::npos;
}

Result<std::unique_ptr<Store>> OpenPostgresStore(PostgresStoreOptions options) {
  using namespace pg;  // NOLINT(google-build-using-namespace)
  return NoThrow([&]() -> Result<std::unique_ptr<Store>> {
    if (!crypto::InitCrypto()) {
      return MakeError(ErrorKind::kInternal, "crypto_unavailable", "libsodium failed to start.");
    }
    Result<std::unique_ptr<Conn>> conn = Conn::Open(options.uri);
    if (!conn.ok()) return conn.take_error();
    Status s = Migrate(**conn);
    if (s.ok()) s = CheckMasterKey(**conn, options.master_key);
    if (!s.ok()) return s.take_error();
    conn->reset();
    auto pool = std::make_unique<Pool>(options.uri, std::max(1, options.connections),
                                       std::string(kSessionSettings));
    pool->set_require_standby(options.require_standby);
    // Erasure keys are loaded while a caller may hold a pooled connection: from a pool of their
    // own, so that callers never wait on one another for a second connection.
    auto keys_pool = std::make_unique<Pool>(options.uri, 2, std::string(kSessionSettings));
    std::vector<std::unique_ptr<Writer>> writers;
    for (int i = 0; i < std::clamp(options.writers, 1, 6); ++i) {
      writers.push_back(std::make_unique<Writer>(
          options.uri, static_cast<size_t>(std::max(1, options.max_batch)), options.on_batch));
    }
    return std::unique_ptr<Store>(new PostgresStore(
        options.master_key, std::move(pool), std::move(keys_pool), std::move(writers),
        options.clock ? std::move(options.clock) : std::function<UnixMillis()>(NowMillis),
        FanoutSplit{std::max(1, options.fanout_part_users),
                    std::max(1, options.fanout_max_parts)}));
  });
}

namespace pg {
namespace {

constexpr char kTenantCursor = 't';
constexpr char kAuditCursor = 'a';

constexpr std::string_view kTenantColumns =
    "id, name, delivery_deadline_minutes, default_consent_days, created_at, updated_at, "
    "rate_limits";

Tenant TenantFromRow(const Rows& r, int i) {
  return Tenant{
      r.Text(i, 0), r.Text(i, 1), static_cast<int>(r.Int(i, 2)), static_cast<int>(r.Int(i, 3)),
      r.Int(i, 4),  r.Int(i, 5),  DecodeRateLimits(r.Text(i, 6))};
}

constexpr std::string_view kKeySelect =
    "SELECT k.id, t.id, k.name, k.scopes, k.hash, k.created_at, k.revoked_at "
    "FROM api_keys k JOIN tenants t ON t.pk = k.tenant_pk ";

ApiKeyRecord KeyFromRow(const Rows& r, int i) {
  ApiKeyRecord out;
  out.key.id = r.Text(i, 0);
  out.key.tenant_id = r.Text(i, 1);
  out.key.name = r.Text(i, 2);
  out.key.scopes = SplitScopes(r.Text(i, 3));
  out.hash = r.Blob(i, 4);
  out.key.created_at = r.Int(i, 5);
  if (!r.IsNull(i, 6)) out.key.revoked_at = r.Int(i, 6);
  return out;
}

Error KeyNotFound() { return MakeError(ErrorKind::kNotFound, "key_not_found", "No such API key."); }

}  // namespace

Error UserNotFound() { return MakeError(ErrorKind::kNotFound, "user_not_found", "No such user."); }

Error GroupNotFound() {
  return MakeError(ErrorKind::kNotFound, "group_not_found", "No such group.");
}

Error NotificationNotFound() {
  return MakeError(ErrorKind::kNotFound, "notification_not_found",
                   "No notification with this id exists for this tenant.", "id");
}

PostgresStore::PostgresStore(const crypto::Key& master, std::unique_ptr<Pool> pool,
                             std::unique_ptr<Pool> keys_pool,
                             std::vector<std::unique_ptr<Writer>> writers,
                             std::function<UnixMillis()> clock, FanoutSplit split)
    : pool_(std::move(pool)),
      keys_pool_(std::move(keys_pool)),
      tenants_(master,
               [this](std::string_view id) -> Result<WrappedTenantKey> {
                 Params p;
                 p.Text(id);
                 PG_TRY(rows, Read("SELECT pk, wrapped_key FROM tenants WHERE id = $1", p));
                 if (rows.empty()) return TenantNotFound();
                 return WrappedTenantKey{rows.Int(0, 0), rows.Blob(0, 1)};
               }),
      clock_(std::move(clock)),
      split_(split) {
  for (auto& writer : writers) {
    lanes_.push_back(std::make_unique<UpdateLane>());
    lanes_.back()->writer = std::move(writer);
  }
}

PostgresStore::~PostgresStore() { lanes_.clear(); }

Result<Rows> PostgresStore::Read(std::string_view sql, const Params& params) {
  for (int attempt = 0;; ++attempt) {
    Result<Pool::Lease> conn = pool_->Acquire();
    if (!conn.ok()) return conn.take_error();
    Result<Rows> rows = (*conn)->Exec(sql, params);
    // A connection that broke (a restart, a failover) is dropped by the pool; a read is always
    // safe to try again, once, on a fresh one.
    if (rows.ok() || attempt > 0 || !IsConnectionLost(rows.error())) return rows;
  }
}

// ---- tenants ----

Result<Tenant> PostgresStore::CreateTenant(Tenant tenant) {
  return NoThrow([&]() -> Result<Tenant> {
    if (tenant.id.empty()) tenant.id = crypto::RandomId("ten_");
    tenant.created_at = tenant.updated_at = Now();
    crypto::Key data_key = crypto::RandomKey();
    crypto::Bytes wrapped = crypto::WrapDataKey(tenants_.master(), data_key, tenant.id);
    auto cipher = std::make_shared<const crypto::PiiCipher>(data_key);
    int64_t pk = 0;
    Status s = Txn([&](Conn& c) -> Status {
      Params p;
      p.Text(tenant.id)
          .Text(tenant.name)
          .Int(tenant.delivery_deadline_minutes)
          .Int(tenant.default_consent_days)
          .Blob(wrapped)
          .Int(tenant.created_at)
          .Text(EncodeRateLimits(tenant.rate_limits));
      Result<Rows> r = c.Exec(
          "INSERT INTO tenants (id, name, delivery_deadline_minutes, default_consent_days, "
          "wrapped_key, created_at, updated_at, rate_limits) "
          "VALUES ($1, $2, $3, $4, $5, $6, $6, $7) ON CONFLICT (id) DO NOTHING RETURNING pk",
          p);
      if (!r.ok()) return r.take_error();
      if (r->empty()) {
        return MakeError(ErrorKind::kConflict, "duplicate_tenant", "A tenant with this id exists.");
      }
      pk = r->Int(0, 0);
      Params e;
      e.Int(pk).Int(static_cast<int64_t>(ErasureBucket(tenant.created_at)));
      e.Blob(SealNewErasureKeys(*cipher, tenant.created_at)).Int(tenant.created_at);
      Result<Rows> keys = c.Exec(
          "INSERT INTO erasure_keys (tenant_pk, first_bucket, sealed, updated_at) "
          "VALUES ($1, $2, $3, $4)",
          e);
      return keys.ok() ? Status::Ok() : Status(keys.take_error());
    });
    if (!s.ok()) return s.take_error();
    tenants_.Put(tenant.id, TenantRef{pk, cipher});
    return tenant;
  });
}

Result<Tenant> PostgresStore::GetTenant(std::string_view tenant_id) {
  return NoThrow([&]() -> Result<Tenant> {
    Params p;
    p.Text(tenant_id);
    PG_TRY(rows, Read("SELECT " + std::string(kTenantColumns) + " FROM tenants WHERE id = $1", p));
    if (rows.empty()) return TenantNotFound();
    return TenantFromRow(rows, 0);
  });
}

Result<Page<Tenant>> PostgresStore::ListTenants(const PageRequest& page) {
  return NoThrow([&]() -> Result<Page<Tenant>> {
    Result<std::string> after = DecodeCursor(kTenantCursor, page.cursor);
    if (!after.ok()) return after.take_error();
    const int limit = ClampLimit(page.limit);
    Params p;
    p.Text(*after).Int(limit + 1);
    PG_TRY(rows, Read("SELECT " + std::string(kTenantColumns) +
                          " FROM tenants WHERE id > $1 COLLATE \"C\" ORDER BY id COLLATE \"C\" "
                          "LIMIT $2",
                      p));
    Page<Tenant> out;
    for (int i = 0; i < rows.size(); ++i) {
      if (static_cast<int>(out.items.size()) == limit) {
        out.next_cursor = EncodeCursor(kTenantCursor, out.items.back().id);
        break;
      }
      out.items.push_back(TenantFromRow(rows, i));
    }
    return out;
  });
}

Result<Tenant> PostgresStore::UpdateTenant(const Tenant& tenant) {
  return NoThrow([&]() -> Result<Tenant> {
    Tenant stored = tenant;
    stored.updated_at = Now();
    Status s = Txn([&](Conn& c) -> Status {
      Params p;
      p.Text(stored.id)
          .Text(stored.name)
          .Int(stored.delivery_deadline_minutes)
          .Int(stored.default_consent_days)
          .Int(stored.updated_at)
          .Text(EncodeRateLimits(stored.rate_limits));
      Result<Rows> r = c.Exec(
          "UPDATE tenants SET name = $2, delivery_deadline_minutes = $3, "
          "default_consent_days = $4, updated_at = $5, rate_limits = $6 WHERE id = $1 "
          "RETURNING created_at",
          p);
      if (!r.ok()) return r.take_error();
      if (r->empty()) return TenantNotFound();
      stored.created_at = r->Int(0, 0);
      return Status::Ok();
    });
    if (!s.ok()) return s.take_error();
    return stored;
  });
}

// ---- API keys ----

Status PostgresStore::CreateApiKey(const ApiKey& key, const std::vector<uint8_t>& hash) {
  return NoThrow([&]() -> Status {
    Result<TenantRef> tenant = tenants_.Get(key.tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    const UnixMillis created_at = key.created_at != 0 ? key.created_at : Now();
    return Txn([&](Conn& c) -> Status {
      Params p;
      p.Text(key.id).Int(tenant->pk).Text(key.name).Text(JoinScopes(key.scopes)).Blob(hash);
      p.Int(created_at);
      if (key.revoked_at) {
        p.Int(*key.revoked_at);
      } else {
        p.Null();
      }
      Result<Rows> r = c.Exec(
          "INSERT INTO api_keys (id, tenant_pk, name, scopes, hash, created_at, revoked_at) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
          p);
      if (!r.ok()) return r.take_error();
      if (r->Affected() == 0) {
        return MakeError(ErrorKind::kConflict, "duplicate_key", "An API key with this id exists.");
      }
      return Status::Ok();
    });
  });
}

Result<ApiKeyRecord> PostgresStore::GetApiKey(std::string_view key_id) {
  return NoThrow([&]() -> Result<ApiKeyRecord> {
    Params p;
    p.Text(key_id);
    PG_TRY(rows, Read(std::string(kKeySelect) + "WHERE k.id = $1", p));
    if (rows.empty()) return KeyNotFound();
    return KeyFromRow(rows, 0);
  });
}

Result<std::vector<ApiKey>> PostgresStore::ListApiKeys(std::string_view tenant_id) {
  return NoThrow([&]() -> Result<std::vector<ApiKey>> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    Params p;
    p.Int(tenant->pk);
    PG_TRY(rows, Read(std::string(kKeySelect) +
                          "WHERE k.tenant_pk = $1 ORDER BY k.created_at, k.id COLLATE \"C\"",
                      p));
    std::vector<ApiKey> out;
    out.reserve(static_cast<size_t>(rows.size()));
    for (int i = 0; i < rows.size(); ++i) out.push_back(KeyFromRow(rows, i).key);
    return out;
  });
}

Status PostgresStore::RevokeApiKey(std::string_view tenant_id, std::string_view key_id) {
  return NoThrow([&]() -> Status {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    const UnixMillis now = Now();
    return Txn([&](Conn& c) -> Status {
      Params p;
      p.Text(key_id).Int(tenant->pk).Int(now);
      Result<Rows> r = c.Exec(
          "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) "
          "WHERE id = $1 AND tenant_pk = $2",
          p);
      if (!r.ok()) return r.take_error();
      return r->Affected() == 0 ? Status(KeyNotFound()) : Status::Ok();
    });
  });
}

// ---- provider settings ----

Status PostgresStore::PutProviderSettings(const ProviderSettings& settings) {
  return NoThrow([&]() -> Status {
    Result<TenantRef> tenant = tenants_.Get(settings.tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    const crypto::Bytes sealed = tenant->cipher->Seal(settings.config_json, "providers");
    const UnixMillis now = Now();
    return Txn([&](Conn& c) -> Status {
      Params p;
      p.Int(tenant->pk).Text(ToString(settings.channel)).Blob(sealed).Int(now);
      Result<Rows> r = c.Exec(
          "INSERT INTO provider_settings (tenant_pk, channel, config_sealed, updated_at) "
          "VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_pk, channel) DO UPDATE SET "
          "config_sealed = excluded.config_sealed, updated_at = excluded.updated_at",
          p);
      return r.ok() ? Status::Ok() : Status(r.take_error());
    });
  });
}

Result<ProviderSettings> PostgresStore::GetProviderSettings(std::string_view tenant_id,
                                                            Channel channel) {
  return NoThrow([&]() -> Result<ProviderSettings> {
    Result<TenantRef> tenant = tenants_.Get(tenant_id);
    if (!tenant.ok()) return tenant.take_error();
    Params p;
    p.Int(tenant->pk).Text(ToString(channel));
    PG_TRY(rows, Read("SELECT config_sealed, updated_at FROM provider_settings "
                      "WHERE tenant_pk = $1 AND channel = $2",
                      p));
    if (rows.empty()) {
      return MakeError(ErrorKind::kNotFound, "provider_settings_not_found",
                       "No provider settings for this channel.");
    }
    Result<std::string> config = tenant->cipher->Open(rows.Blob(0, 0), "providers");
    if (!config.ok()) return DecryptFailed();
    return ProviderSettings{std::string(tenant_id), channel, std::move(*config), rows.Int(0, 1)};
  });
}

// ---- audit ----

void PostgresStore::AppendAudit(AuditRecord record) {
  try {
    if (record.at == 0) record.at = Now();
    lanes_.front()->writer->Post([r = std::move(record)](Conn& c) -> Status {
      Params p;
      p.Text(r.tenant_id).Int(r.at).Text(r.actor).Text(r.method).Text(r.route).Int(r.status);
      p.Text(r.request_id).Int(r.latency_us);
      Result<Rows> w = c.Exec(
          "INSERT INTO audit (tenant_id, at, actor, method, route, status, request_id, "
          "latency_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
          p);
      return w.ok() ? Status::Ok() : Status(w.take_error());
    });
  } catch (...) {  // out of memory: the record is lost, the caller is not
  }
}

Result<Page<AuditRecord>> PostgresStore::ListAudit(std::string_view tenant_id,
                                                   const PageRequest& page) {
  return NoThrow([&]() -> Result<Page<AuditRecord>> {
    Result<int64_t> before = DecodeIdCursor(kAuditCursor, page.cursor);
    if (!before.ok()) return before.take_error();
    const int limit = ClampLimit(page.limit);
    Params p;
    p.Text(tenant_id)
        .Int(*before != 0 ? *before : std::numeric_limits<int64_t>::max())
        .Int(limit + 1);
    PG_TRY(rows,
           Read("SELECT id, at, tenant_id, actor, method, route, status, request_id, latency_us "
                "FROM audit WHERE tenant_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                p));
    Page<AuditRecord> out;
    for (int i = 0; i < rows.size(); ++i) {
      if (static_cast<int>(out.items.size()) == limit) {
        out.next_cursor = EncodeIdCursor(kAuditCursor, out.items.back().id);
        break;
      }
      out.items.push_back(AuditRecord{
          rows.Int(i, 0), rows.Int(i, 1), rows.Text(i, 2), rows.Text(i, 3), rows.Text(i, 4),
          rows.Text(i, 5), static_cast<int>(rows.Int(i, 6)), rows.Text(i, 7), rows.Int(i, 8)});
    }
    return out;
  });
}

Status PostgresStore::Flush() {
  return NoThrow([&]() -> Status {
    Status first = Status::Ok();
    for (auto& lane : lanes_) {
      Status s = lane->writer->Flush();
      if (!s.ok() && first.ok()) first = std::move(s);
    }
    return first;
  });
}

// ---- consent expiry ----

Result<std::optional<UnixMillis>> PostgresStore::NextConsentExpiry() {
  return NoThrow([&]() -> Result<std::optional<UnixMillis>> {
    PG_TRY(rows, Read("SELECT MIN(consent_until) FROM users", Params()));
    if (rows.empty() || rows.IsNull(0, 0)) return std::optional<UnixMillis>();
    return std::optional<UnixMillis>(rows.Int(0, 0));
  });
}

Result<int64_t> PostgresStore::EraseExpiredUsers(UnixMillis now, int limit) {
  return NoThrow([&]() -> Result<int64_t> {
    if (limit <= 0) return int64_t{0};
    int64_t erased = 0;
    Status s = PipelineTxn([&](Conn& c) -> Status {
      // SKIP LOCKED: a user being written is erased by the next call, and two reapers (two
      // processes) take different users.
      Params p;
      p.Int(now).Int(limit);
      Result<Rows> r = c.Exec(DeleteUsersSql("SELECT tenant_pk, pk FROM users WHERE "
                                             "consent_until <= $1 ORDER BY consent_until "
                                             "LIMIT $2 FOR UPDATE SKIP LOCKED"),
                              p);
      if (!r.ok()) return r.take_error();
      erased = r->Affected();
      return Status::Ok();
    });
    if (!s.ok()) return s.take_error();
    return erased;
  });
}

void PostgresStore::SetConsentExpiryListener(std::function<void(UnixMillis)> listener) {
  consent_listener_ = std::move(listener);
}

void PostgresStore::NotifyConsentExpiry(UnixMillis earliest) {
  if (!consent_listener_) return;
  try {
    consent_listener_(earliest);
  } catch (...) {  // the listener's failure is not the store's
  }
}

// ---- health ----

Status PostgresStore::Ping() {
  return NoThrow([&]() -> Status {
    Result<Rows> r = Read("SELECT 1", Params());
    return r.ok() ? Status::Ok() : Status(r.take_error());
  });
}

namespace {

// A session advisory lock on a connection of its own. The server drops the lock with the
// session: at once when the holder's process dies (its socket closes), and within the keepalive
// probes below when its machine or network goes. Held() asks the server, so a holder that lost
// its session stops its duty before (or about when) another process takes it.
class AdvisoryDuty final : public DutyLease {
 public:
  explicit AdvisoryDuty(std::unique_ptr<Conn> conn) : conn_(std::move(conn)) {}
  ~AdvisoryDuty() override = default;  // closing the session releases the lock
  bool Held() override {
    if (!conn_->Healthy()) return false;
    Result<Rows> r = conn_->Exec("SELECT 1");
    return r.ok();
  }

 private:
  std::unique_ptr<Conn> conn_;
};

}  // namespace

Result<std::unique_ptr<DutyLease>> PostgresStore::TryTakeDuty(std::string_view name) {
  return NoThrow([&]() -> Result<std::unique_ptr<DutyLease>> {
    Result<std::unique_ptr<Conn>> conn = Conn::Open(pool_->uri());
    if (!conn.ok()) return conn.take_error();
    // The server probes an idle holder's connection: a holder whose machine vanished loses the
    // duty about 10 s later instead of after the kernel's two hours.
    Status s = (*conn)->Script(
        "SET tcp_keepalives_idle = 4; SET tcp_keepalives_interval = 2; "
        "SET tcp_keepalives_count = 3");
    if (!s.ok()) return s.take_error();
    Params p;
    p.Text("herald:duty:" + std::string(name));
    Result<Rows> got = (*conn)->Exec("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", p);
    if (!got.ok()) return got.take_error();
    if (got->empty() || !got->Bool(0, 0)) return std::unique_ptr<DutyLease>();
    return std::unique_ptr<DutyLease>(std::make_unique<AdvisoryDuty>(std::move(*conn)));
  });
}

}  // namespace pg
}  // namespace herald

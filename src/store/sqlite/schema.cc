#include "store/sqlite/schema.h"

#include <iterator>
#include <string>

namespace herald::sqlite {
namespace {

// Internal row keys are INTEGER PRIMARY KEYs named `pk`; the ids Herald shows (tenant ids, device
// ids, external ids) are ordinary columns. Child rows point at their parent's pk, so indexes stay
// small and a user's devices and memberships sort by user pk, the order fanout pages in.
//
// Migration i (0-based) brings the schema from version i to version i + 1. Never edit a shipped
// migration: append a new one.
constexpr const char* kMigrations[] = {
    // ---- version 1 ----
    R"sql(
CREATE TABLE meta (
  k TEXT PRIMARY KEY,
  v BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE tenants (
  pk INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  delivery_deadline_minutes INTEGER NOT NULL,
  default_consent_days INTEGER NOT NULL,
  wrapped_key BLOB NOT NULL,              -- the tenant's data key, wrapped by the master key
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  tenant_pk INTEGER NOT NULL REFERENCES tenants(pk),
  name TEXT NOT NULL,
  scopes TEXT NOT NULL,                   -- space-separated
  hash BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_pk, created_at);

CREATE TABLE provider_settings (
  tenant_pk INTEGER NOT NULL REFERENCES tenants(pk),
  channel TEXT NOT NULL,
  config_sealed BLOB NOT NULL,            -- PiiCipher::Seal(config_json, "providers")
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant_pk, channel)
) WITHOUT ROWID;

CREATE TABLE users (
  pk INTEGER PRIMARY KEY,
  tenant_pk INTEGER NOT NULL REFERENCES tenants(pk),
  external_id TEXT NOT NULL,
  name_sealed BLOB NOT NULL,              -- PiiCipher::Seal(name, "name")
  opt_in INTEGER NOT NULL,
  consent_from INTEGER NOT NULL,
  consent_until INTEGER NOT NULL,
  version INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (tenant_pk, external_id)
);
CREATE INDEX users_consent_until ON users(consent_until);

-- One B-tree per device (WITHOUT ROWID, keyed by its user): imports write half as many pages as a
-- rowid table plus a unique index would, and a user's devices sit together for fanout.
CREATE TABLE devices (
  user_pk INTEGER NOT NULL REFERENCES users(pk) ON DELETE CASCADE,
  channel TEXT NOT NULL,
  address_bidx BLOB NOT NULL,             -- PiiCipher::BlindIndex(address, "addr:<channel>")
  id TEXT NOT NULL,
  address_sealed BLOB NOT NULL,           -- PiiCipher::Seal(address, "addr:<channel>")
  ord INTEGER NOT NULL,                   -- position in the user's device list
  disabled INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (user_pk, channel, address_bidx)
) WITHOUT ROWID;

CREATE TABLE tenant_groups (
  pk INTEGER PRIMARY KEY,
  tenant_pk INTEGER NOT NULL REFERENCES tenants(pk),
  group_key TEXT NOT NULL,
  name TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (tenant_pk, group_key)
);

-- (group_pk, user_pk) lets fanout walk a group's members in user pk order, page by page, and
-- join each member's devices through devices(user_pk, ...).
CREATE TABLE memberships (
  group_pk INTEGER NOT NULL REFERENCES tenant_groups(pk) ON DELETE CASCADE,
  user_pk INTEGER NOT NULL REFERENCES users(pk) ON DELETE CASCADE,
  PRIMARY KEY (group_pk, user_pk)
) WITHOUT ROWID;
CREATE INDEX memberships_user ON memberships(user_pk, group_pk);

CREATE TABLE audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id TEXT NOT NULL,                -- '' for calls that name no tenant
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  method TEXT NOT NULL,
  route TEXT NOT NULL,
  status INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  latency_us INTEGER NOT NULL
);
CREATE INDEX audit_tenant ON audit(tenant_id, id);
)sql",
    // ---- version 2: the send pipeline ----
    R"sql(
-- A send request. Title and body are sealed like PII (a tenant may write names into them). The
-- fan-out's progress (source = index into groups then the users list, cursor = last user pk of
-- that source) is written with each page of deliveries, so a crash resumes it exactly.
CREATE TABLE notifications (
  pk INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  tenant_pk INTEGER NOT NULL REFERENCES tenants(pk),
  idempotency_key TEXT,                   -- NULL = none
  request_hash TEXT NOT NULL,
  title_sealed BLOB NOT NULL,             -- PiiCipher::Seal(title, "ntf:title")
  body_sealed BLOB NOT NULL,              -- PiiCipher::Seal(body, "ntf:body")
  to_groups TEXT NOT NULL,                -- group keys, '\n'-separated
  to_users TEXT NOT NULL,                 -- external ids, '\n'-separated
  channels TEXT NOT NULL,                 -- channel names, ' '-separated; '' = all
  priority INTEGER NOT NULL,
  accepted_at INTEGER NOT NULL,
  deadline INTEGER NOT NULL,
  fanout_source INTEGER NOT NULL DEFAULT 0,
  fanout_cursor INTEGER NOT NULL DEFAULT 0,
  fanout_done INTEGER NOT NULL DEFAULT 0,
  deliveries INTEGER NOT NULL DEFAULT 0,
  cancelled_at INTEGER,
  UNIQUE (tenant_pk, idempotency_key)
);
CREATE INDEX notifications_fanout ON notifications(pk) WHERE fanout_done = 0;

-- One delivery per device reached. status: DeliveryStatus as an integer. No address here: the
-- dispatcher reads the device (and the user's consent) at the moment of sending.
CREATE TABLE deliveries (
  pk INTEGER PRIMARY KEY,
  notification_pk INTEGER NOT NULL,       -- notifications(pk); no FK check per insert
  tenant_pk INTEGER NOT NULL,
  user_pk INTEGER NOT NULL,
  external_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  channel TEXT NOT NULL,
  status INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  provider TEXT NOT NULL DEFAULT '',
  provider_message_id TEXT,
  reason TEXT NOT NULL DEFAULT '',
  deadline INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX deliveries_notification ON deliveries(notification_pk, status);
CREATE INDEX deliveries_user ON deliveries(tenant_pk, external_id);
CREATE INDEX deliveries_receipt ON deliveries(provider, provider_message_id)
  WHERE provider_message_id IS NOT NULL AND channel IN ('email', 'sms');

-- Every state change of every delivery, clustered by delivery.
CREATE TABLE delivery_events (
  delivery_pk INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  at INTEGER NOT NULL,
  stage INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  provider TEXT NOT NULL,
  reason TEXT NOT NULL,
  PRIMARY KEY (delivery_pk, seq)
) WITHOUT ROWID;
)sql",
    // ---- version 3: delivery counts kept by the writer ----
    R"sql(
-- How many deliveries of a notification are in each status, changed in the same transaction as
-- the deliveries themselves; last_at is the latest time a delivery entered that status. Before
-- this table every status change moved an entry of a (notification_pk, status) index, which
-- cost a broadcast a fifth of the writer thread.
CREATE TABLE delivery_counts (
  notification_pk INTEGER NOT NULL,
  status INTEGER NOT NULL,
  n INTEGER NOT NULL,
  last_at INTEGER NOT NULL,
  PRIMARY KEY (notification_pk, status)
) WITHOUT ROWID;
INSERT INTO delivery_counts (notification_pk, status, n, last_at)
  SELECT notification_pk, status, COUNT(*), MAX(updated_at) FROM deliveries
  GROUP BY notification_pk, status;
DROP INDEX deliveries_notification;
CREATE INDEX deliveries_notification ON deliveries(notification_pk);
-- Listings filtered by an uncommon status find their few deliveries here; queued (0) and sent
-- (2), the statuses of nearly every delivery of a broadcast, are left out, so the move from one
-- to the other touches no index.
CREATE INDEX deliveries_uncommon_status ON deliveries(notification_pk, status)
  WHERE status NOT IN (0, 2);
)sql",
    // ---- version 4: per-tenant rate limits ----
    R"sql(
-- The admin's overrides of the default quotas, model's EncodeRateLimits form ('' = defaults).
ALTER TABLE tenants ADD COLUMN rate_limits TEXT NOT NULL DEFAULT '';
)sql",
    // ---- version 5: events in seq order ----
    R"sql(
-- ListEventsSince reads a tenant's events after a seq; seq is taken by the one writer in commit
-- order, so it is already in commit order for every tenant. The events become a rowid table
-- keyed by seq, where each insert appends, plus an index by delivery for the timelines: an
-- index on seq beside the old table keyed by delivery cost a broadcast 9 %.
CREATE TABLE delivery_events_v5 (
  seq INTEGER PRIMARY KEY,
  delivery_pk INTEGER NOT NULL,
  at INTEGER NOT NULL,
  stage INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  provider TEXT NOT NULL,
  reason TEXT NOT NULL
);
INSERT INTO delivery_events_v5 (seq, delivery_pk, at, stage, attempt, provider, reason)
  SELECT seq, delivery_pk, at, stage, attempt, provider, reason FROM delivery_events;
DROP TABLE delivery_events;
ALTER TABLE delivery_events_v5 RENAME TO delivery_events;
CREATE INDEX delivery_events_delivery ON delivery_events(delivery_pk, seq);
)sql",
};

constexpr int kVersions = static_cast<int>(std::size(kMigrations));

constexpr std::string_view kMasterCheckKey = "master_key_check";
constexpr std::string_view kMasterCheckContext = "herald:master-key-check";

Status InTransaction(Connection& conn, auto&& body) {
  Status s = conn.Exec("BEGIN IMMEDIATE");
  if (!s.ok()) return s;
  s = body();
  if (s.ok()) s = conn.Exec("COMMIT");
  if (!s.ok() && !conn.InAutocommit()) (void)conn.Exec("ROLLBACK");
  return s;
}

}  // namespace

int CurrentSchemaVersion() { return kVersions; }

Status Migrate(Connection& conn) {
  return InTransaction(conn, [&]() -> Status {
    Status s = conn.Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    if (!s.ok()) return s;
    int64_t version = 0;
    bool has_row = false;
    {
      Stmt q = conn.Prepare("SELECT version FROM schema_version");
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (*row) {
        has_row = true;
        version = q.Int(0);
      }
    }
    if (version > kVersions) {
      return MakeError(ErrorKind::kUnavailable, "schema_too_new",
                       "The database has schema version " + std::to_string(version) +
                           " but this binary knows versions up to " + std::to_string(kVersions) +
                           "; run a newer Herald.");
    }
    for (int64_t v = version; v < kVersions; ++v) {
      s = conn.Exec(kMigrations[v]);
      if (!s.ok()) return s;
    }
    if (version == kVersions) return Status::Ok();
    Stmt w = has_row ? conn.Prepare("UPDATE schema_version SET version = ?1")
                     : conn.Prepare("INSERT INTO schema_version (version) VALUES (?1)");
    return w.Bind(1, int64_t{kVersions}).Run();
  });
}

Status CheckMasterKey(Connection& conn, const crypto::Key& master) {
  return InTransaction(conn, [&]() -> Status {
    Stmt q = conn.Prepare("SELECT v FROM meta WHERE k = ?1");
    q.Bind(1, kMasterCheckKey);
    Result<bool> row = q.Next();
    if (!row.ok()) return row.take_error();
    if (*row) {
      if (!crypto::UnwrapDataKey(master, q.Blob(0), kMasterCheckContext).ok()) {
        return MakeError(ErrorKind::kUnavailable, "master_key_mismatch",
                         "The master key does not match the one this database was created "
                         "with; start Herald with the original HERALD_MASTER_KEY.");
      }
      return Status::Ok();
    }
    crypto::Bytes check = crypto::WrapDataKey(master, crypto::RandomKey(), kMasterCheckContext);
    Stmt w = conn.Prepare("INSERT INTO meta (k, v) VALUES (?1, ?2)");
    return w.Bind(1, kMasterCheckKey).BindBlob(2, check).Run();
  });
}

}  // namespace herald::sqlite

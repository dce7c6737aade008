#include "store/postgres/schema.h"

#include <initializer_list>
#include <iterator>
#include <string>

namespace herald::pg {
namespace {

// The same tables as the SQLite store's (see store/sqlite/schema.cc for what each holds), with
// PostgreSQL's types, and the big tables hash-partitioned by tenant: their unique keys hold
// tenant_pk (a partitioned table's must hold the partition key). Row keys come first in the
// primary keys of users, deliveries and events: a look-up by row key then matches a unique index
// whole, which the planner prefers even before the table has statistics (with the tenant first
// it once chose the tenant's external-id index and read all of a tenant's deliveries per
// look-up). The big tables
// have no foreign keys: PostgreSQL checks one with a trigger per inserted row and cascades a
// delete row by row, which made an import and an erasure several times slower; the store
// deletes a user's devices and memberships itself, in the statement that deletes the user
// (kDeleteUsers in user_store.cc), and locks a user row before it adds children to it. Row keys
// come from sequences, shared by every partition and every Herald process. Migration i brings
// version i to i + 1; never edit a shipped one.
constexpr const char* kMigrations[] = {
    // ---- version 1 ----
    R"sql(
CREATE TABLE meta (
  k text PRIMARY KEY,
  v bytea NOT NULL
);

CREATE TABLE tenants (
  pk bigserial PRIMARY KEY,
  id text NOT NULL UNIQUE,
  name text NOT NULL,
  delivery_deadline_minutes integer NOT NULL,
  default_consent_days integer NOT NULL,
  wrapped_key bytea NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  rate_limits text NOT NULL DEFAULT ''
);

CREATE TABLE api_keys (
  id text PRIMARY KEY,
  tenant_pk bigint NOT NULL REFERENCES tenants (pk),
  name text NOT NULL,
  scopes text NOT NULL,
  hash bytea NOT NULL,
  created_at bigint NOT NULL,
  revoked_at bigint
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_pk, created_at);

CREATE TABLE provider_settings (
  tenant_pk bigint NOT NULL REFERENCES tenants (pk),
  channel text NOT NULL,
  config_sealed bytea NOT NULL,
  updated_at bigint NOT NULL,
  PRIMARY KEY (tenant_pk, channel)
);

CREATE SEQUENCE users_pk_seq;
CREATE TABLE users (
  tenant_pk bigint NOT NULL,
  pk bigint NOT NULL DEFAULT nextval('users_pk_seq'),
  external_id text NOT NULL,
  name_sealed bytea NOT NULL,
  opt_in boolean NOT NULL,
  consent_from bigint NOT NULL,
  consent_until bigint NOT NULL,
  version bigint NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  PRIMARY KEY (pk, tenant_pk),
  UNIQUE (tenant_pk, external_id)
) PARTITION BY HASH (tenant_pk);
CREATE INDEX users_consent_until ON users (consent_until);

CREATE TABLE devices (
  tenant_pk bigint NOT NULL,
  user_pk bigint NOT NULL,
  channel text NOT NULL,
  address_bidx bytea NOT NULL,
  id text NOT NULL,
  address_sealed bytea NOT NULL,
  ord integer NOT NULL,
  disabled boolean NOT NULL DEFAULT false,
  created_at bigint NOT NULL,
  PRIMARY KEY (tenant_pk, user_pk, channel, address_bidx)
) PARTITION BY HASH (tenant_pk);

CREATE TABLE tenant_groups (
  tenant_pk bigint NOT NULL REFERENCES tenants (pk),
  pk bigserial NOT NULL,
  group_key text NOT NULL,
  name text NOT NULL,
  created_at bigint NOT NULL,
  PRIMARY KEY (tenant_pk, pk),
  UNIQUE (tenant_pk, group_key)
);

CREATE TABLE memberships (
  tenant_pk bigint NOT NULL,
  group_pk bigint NOT NULL,
  user_pk bigint NOT NULL,
  PRIMARY KEY (tenant_pk, group_pk, user_pk)
) PARTITION BY HASH (tenant_pk);
CREATE INDEX memberships_user ON memberships (tenant_pk, user_pk, group_pk);

CREATE TABLE audit (
  id bigserial PRIMARY KEY,
  tenant_id text NOT NULL,
  at bigint NOT NULL,
  actor text NOT NULL,
  method text NOT NULL,
  route text NOT NULL,
  status integer NOT NULL,
  request_id text NOT NULL,
  latency_us bigint NOT NULL
);
CREATE INDEX audit_tenant ON audit (tenant_id, id);

CREATE TABLE notifications (
  pk bigserial PRIMARY KEY,
  id text NOT NULL UNIQUE,
  tenant_pk bigint NOT NULL REFERENCES tenants (pk),
  idempotency_key text,
  request_hash text NOT NULL,
  title_sealed bytea NOT NULL,
  body_sealed bytea NOT NULL,
  to_groups text[] NOT NULL,
  to_users text[] NOT NULL,
  channels text NOT NULL,
  priority integer NOT NULL,
  accepted_at bigint NOT NULL,
  deadline bigint NOT NULL,
  fanout_source integer NOT NULL DEFAULT 0,
  fanout_cursor bigint NOT NULL DEFAULT 0,
  fanout_done boolean NOT NULL DEFAULT false,
  deliveries bigint NOT NULL DEFAULT 0,
  cancelled_at bigint,
  UNIQUE (tenant_pk, idempotency_key)
);
CREATE INDEX notifications_fanout ON notifications (pk) WHERE NOT fanout_done;

CREATE SEQUENCE deliveries_pk_seq;
CREATE TABLE deliveries (
  tenant_pk bigint NOT NULL,
  pk bigint NOT NULL DEFAULT nextval('deliveries_pk_seq'),
  notification_pk bigint NOT NULL,
  user_pk bigint NOT NULL,
  external_id text NOT NULL,
  device_id text NOT NULL,
  channel text NOT NULL,
  status smallint NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  provider text NOT NULL DEFAULT '',
  provider_message_id text,
  reason text NOT NULL DEFAULT '',
  deadline bigint NOT NULL,
  updated_at bigint NOT NULL,
  PRIMARY KEY (pk, tenant_pk)
) PARTITION BY HASH (tenant_pk);
CREATE INDEX deliveries_notification ON deliveries (notification_pk, pk);
CREATE INDEX deliveries_user ON deliveries (tenant_pk, external_id);
CREATE INDEX deliveries_receipt ON deliveries (tenant_pk, provider, provider_message_id)
  WHERE provider_message_id IS NOT NULL;
CREATE INDEX deliveries_open ON deliveries (pk) WHERE status IN (0, 1, 4);

-- seq: from version 2 on, (the writing transaction's id << 20) + its events' order (EventSeqSql
-- in delivery_store.cc); the sequence numbered the events of version 1.
CREATE SEQUENCE delivery_events_seq;
CREATE TABLE delivery_events (
  tenant_pk bigint NOT NULL,
  delivery_pk bigint NOT NULL,
  seq bigint NOT NULL DEFAULT nextval('delivery_events_seq'),
  at bigint NOT NULL,
  stage smallint NOT NULL,
  attempt integer NOT NULL,
  provider text NOT NULL,
  reason text NOT NULL,
  PRIMARY KEY (delivery_pk, seq, tenant_pk)
) PARTITION BY HASH (tenant_pk);
CREATE INDEX delivery_events_tenant_seq ON delivery_events (tenant_pk, seq);

-- Counts per (notification, status), split by writer slot: the fan-out, the writer and the
-- other writes of each process add to rows of their own, so that they never wait on one
-- another's row locks; readers sum the slots.
CREATE TABLE delivery_counts (
  notification_pk bigint NOT NULL,
  status smallint NOT NULL,
  slot smallint NOT NULL,
  n bigint NOT NULL,
  last_at bigint NOT NULL,
  PRIMARY KEY (notification_pk, status, slot)
);
)sql",
    // ---- version 2 ----
    // Erasure keys (crypto/erasure_keys.h): per tenant, the tree of keys that seal users' PII by
    // the minute their consent ends, sealed with the tenant's data key. Rewritten (VACUUM FULL)
    // each time keys are destroyed, so no old version of a row outlives it in the table's file;
    // PLAIN storage keeps the row in the table itself (never compressed, never in TOAST).
    R"sql(
CREATE TABLE erasure_keys (
  tenant_pk bigint PRIMARY KEY REFERENCES tenants (pk),
  first_bucket bigint NOT NULL,
  sealed bytea NOT NULL,
  updated_at bigint NOT NULL
);
ALTER TABLE erasure_keys ALTER COLUMN sealed SET STORAGE PLAIN;
)sql",
    // ---- version 3 ----
    // A delivery's status change is a HOT update: no index of deliveries holds a column the
    // dispatcher changes (a partial index on status, or the provider's message id, made every
    // change write a new entry into each of the table's indexes). Receipts find their delivery
    // through delivery_receipts, written only for the channels that have receipts; the restart
    // sweep walks the deliveries of the notifications that delivery_counts says are open. The
    // partitions of deliveries keep room for an updated row on its own page (fillfactor), and
    // the new table's partitions and back-fill follow (kVersion3Tail).
    R"sql(
DROP INDEX deliveries_open;
DROP INDEX deliveries_receipt;
CREATE TABLE delivery_receipts (
  tenant_pk bigint NOT NULL,
  provider text NOT NULL,
  message_id text NOT NULL,
  delivery_pk bigint NOT NULL,
  PRIMARY KEY (tenant_pk, provider, message_id)
) PARTITION BY HASH (tenant_pk);
)sql",
    // ---- version 4 ----
    // A notification's fan-out is split into parts, each a range of the tenant's user keys
    // (lo, hi] with its own progress, so that several processes fan one large audience out at
    // once (each takes an unlocked part with FOR UPDATE SKIP LOCKED) and a crashed one's part is
    // simply the next taker's. A part is deleted when it is done; the notification counts the
    // parts left. Part 0 of a new notification covers every key and is split at its first page
    // when the audience is large (split = still may be). paged_at orders the turns.
    R"sql(
ALTER TABLE notifications ADD COLUMN fanout_parts integer NOT NULL DEFAULT 1;
CREATE TABLE fanout_parts (
  notification_pk bigint NOT NULL REFERENCES notifications (pk) ON DELETE CASCADE,
  part integer NOT NULL,
  lo bigint NOT NULL,
  hi bigint NOT NULL,
  source integer NOT NULL,
  cursor bigint NOT NULL,
  split boolean NOT NULL,
  paged_at bigint NOT NULL,
  PRIMARY KEY (notification_pk, part)
);
CREATE INDEX fanout_parts_turn ON fanout_parts (paged_at);
INSERT INTO fanout_parts (notification_pk, part, lo, hi, source, cursor, split, paged_at)
  SELECT pk, 0, 0, 9223372036854775807, fanout_source, fanout_cursor,
         fanout_source = 0 AND fanout_cursor = 0, 0
  FROM notifications WHERE NOT fanout_done;
ALTER TABLE notifications DROP COLUMN fanout_source, DROP COLUMN fanout_cursor;
)sql",
};

// After version 3's tables: their partitions exist, so the back-fill can run.
constexpr const char* kVersion3Tail = R"sql(
INSERT INTO delivery_receipts (tenant_pk, provider, message_id, delivery_pk)
  SELECT tenant_pk, provider, provider_message_id, max(pk) FROM deliveries
  WHERE provider_message_id IS NOT NULL AND channel IN ('email', 'sms')
  GROUP BY 1, 2, 3;
)sql";

constexpr int kVersions = static_cast<int>(std::size(kMigrations));

constexpr std::string_view kMasterCheckKey = "master_key_check";
constexpr std::string_view kMasterCheckContext = "herald:master-key-check";

// Room left in each page of deliveries for the next version of its rows (a HOT update).
constexpr int kDeliveriesFillFactor = 50;

// The partitions of `tables`.
std::string PartitionsSql(std::initializer_list<const char*> tables) {
  std::string out;
  for (const char* table : tables) {
    for (int i = 0; i < kPartitions; ++i) {
      out += "CREATE TABLE " + std::string(table) + "_p" + std::to_string(i) + " PARTITION OF " +
             table + " FOR VALUES WITH (MODULUS " + std::to_string(kPartitions) + ", REMAINDER " +
             std::to_string(i) + ");\n";
    }
  }
  return out;
}

Status Tx(Conn& conn, auto&& body) {
  Status s = conn.Script("BEGIN");
  if (!s.ok()) return s;
  s = body();
  if (s.ok()) return conn.Script("COMMIT");
  if (conn.Healthy()) (void)conn.Script("ROLLBACK");
  return s;
}

}  // namespace

int CurrentSchemaVersion() { return kVersions; }

Status Migrate(Conn& conn) {
  return Tx(conn, [&]() -> Status {
    // One Herald process migrates; the others wait here and then find the work done.
    Result<Rows> locked = conn.Exec("SELECT pg_advisory_xact_lock(7240113)");
    if (!locked.ok()) return locked.take_error();
    Status s = conn.Script("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)");
    if (!s.ok()) return s;
    Result<Rows> row = conn.Exec("SELECT version FROM schema_version");
    if (!row.ok()) return row.take_error();
    const bool has_row = !row->empty();
    const int64_t version = has_row ? row->Int(0, 0) : 0;
    if (version > kVersions) {
      return MakeError(ErrorKind::kUnavailable, "schema_too_new",
                       "The database has schema version " + std::to_string(version) +
                           " but this binary knows versions up to " + std::to_string(kVersions) +
                           "; run a newer Herald.");
    }
    for (int64_t v = version; v < kVersions; ++v) {
      s = conn.Script(kMigrations[v]);
      if (s.ok() && v == 0) {
        s = conn.Script(
            PartitionsSql({"users", "devices", "memberships", "deliveries", "delivery_events"}));
      }
      if (s.ok() && v == 2) {
        std::string tail = PartitionsSql({"delivery_receipts"}) + kVersion3Tail;
        for (int i = 0; i < kPartitions; ++i) {
          tail += "ALTER TABLE deliveries_p" + std::to_string(i) +
                  " SET (fillfactor = " + std::to_string(kDeliveriesFillFactor) + ");\n";
        }
        s = conn.Script(tail);
      }
      if (!s.ok()) return s;
    }
    if (version == kVersions) return Status::Ok();
    Params p;
    p.Int(kVersions);
    Result<Rows> w = conn.Exec(has_row ? "UPDATE schema_version SET version = $1"
                                       : "INSERT INTO schema_version (version) VALUES ($1)",
                               p);
    return w.ok() ? Status::Ok() : Status(w.take_error());
  });
}

Status CheckMasterKey(Conn& conn, const crypto::Key& master) {
  return Tx(conn, [&]() -> Status {
    Params k;
    k.Text(kMasterCheckKey);
    Result<Rows> row = conn.Exec("SELECT v FROM meta WHERE k = $1", k);
    if (!row.ok()) return row.take_error();
    if (!row->empty()) {
      if (!crypto::UnwrapDataKey(master, row->Blob(0, 0), kMasterCheckContext).ok()) {
        return MakeError(ErrorKind::kUnavailable, "master_key_mismatch",
                         "The master key does not match the one this database was created "
                         "with; start Herald with the original HERALD_MASTER_KEY.");
      }
      return Status::Ok();
    }
    Params w;
    w.Text(kMasterCheckKey)
        .Blob(crypto::WrapDataKey(master, crypto::RandomKey(), kMasterCheckContext));
    Result<Rows> done =
        conn.Exec("INSERT INTO meta (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING", w);
    return done.ok() ? Status::Ok() : Status(done.take_error());
  });
}

}  // namespace herald::pg

// The PostgreSQL backend of Store (DESIGN §6): many Herald processes share one database, and a
// multi-host URI with target_session_attrs=read-write follows the primary through a failover.
//
// Shape: a pool of libpq connections; each call is one short transaction on a leased
// connection (retried when the server reports a serialization failure or a deadlock, or the
// connection broke before COMMIT was sent); delivery updates and audit records are queued and
// written in batches by writer threads (the updates of one delivery always by the same one).
// The big tables (users, devices, memberships, deliveries, delivery events) are hash-partitioned
// by tenant, and every query of them names the tenant, so that spreading tenants over several
// databases later changes no query. PII is sealed on the calling thread with the tenant's data key
// (store/sealed_user.h).
//
// Thread-safety: as Store (any thread, any method).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/result.h"
#include "crypto/crypto.h"
#include "store/store.h"

namespace herald {

struct PostgresStoreOptions {
  std::string uri;           // libpq URI or key=value string (multi-host allowed)
  crypto::Key master_key{};  // wraps each tenant's data key
  int connections = 8;       // pooled connections at most (each writer has one more)
  // Writer threads (1-6), each with a connection: delivery updates are spread over them by
  // delivery, so that a broadcast's outcomes are written by more than one server process.
  int writers = 2;
  int max_batch = 1024;  // queued writes per writer transaction at most
  // For a primary with synchronous standbys (pg_auto_failover): a call that writes returns only
  // once a synchronous standby has flushed its commit (up to 5 s; then kUnavailable
  // "storage_not_replicated", which the API answers 503 with Retry-After). Without it, a write
  // accepted in the seconds after a failover, while the new primary runs alone, is on one node
  // only. The writer threads' batches do not wait. The database role needs pg_monitor.
  bool require_standby = false;
  // As SqliteStoreOptions::on_batch: after each committed writer batch, on the writer thread.
  std::function<void(size_t)> on_batch;
  // The store's clock (tests move it). Empty = NowMillis.
  std::function<UnixMillis()> clock;
  // A fan-out whose groups hold at least 2 x fanout_part_users members is split into up to
  // fanout_max_parts parts (ranges of user keys) that several processes fan out at once.
  int fanout_part_users = 10'000;
  int fanout_max_parts = 16;
};

// Connects, creates or migrates the schema and checks the master key. kUnavailable with
// "storage_unavailable" (cannot connect: the server's words), "schema_too_new" or
// "master_key_mismatch".
Result<std::unique_ptr<Store>> OpenPostgresStore(PostgresStoreOptions options);

// Whether `store` names PostgreSQL (a postgres:// or postgresql:// URI, or key=value words).
bool IsPostgresUri(const std::string& store);

}  // namespace herald

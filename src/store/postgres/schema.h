// The PostgreSQL store's schema: versioned migrations applied at start-up (under an advisory
// lock, so that Herald processes starting together migrate once), and the master-key check.
#pragma once

#include "common/result.h"
#include "crypto/crypto.h"
#include "store/postgres/pg.h"

namespace herald::pg {

inline constexpr int kPartitions = 8;  // hash partitions of each big table, by tenant

int CurrentSchemaVersion();
// Brings the schema to CurrentSchemaVersion(). kUnavailable "schema_too_new" when the database
// is newer than this binary.
Status Migrate(Conn& conn);
// kUnavailable "master_key_mismatch" when the database was created with another master key.
Status CheckMasterKey(Conn& conn, const crypto::Key& master);

}  // namespace herald::pg

// The SQLite store's schema: versioned migrations recorded in a one-row schema_version table, and
// a check value that proves the master key is the one the database was created with.
//
// Called once, on the write connection, before any other connection is opened.
#pragma once

#include "common/result.h"
#include "crypto/crypto.h"
#include "store/sqlite/connection.h"

namespace herald::sqlite {

// The schema version this binary writes.
int CurrentSchemaVersion();

// Brings the database to CurrentSchemaVersion(), each migration in its own transaction.
// Fails with kUnavailable "schema_too_new" when the file was written by a newer binary (and then
// changes nothing).
Status Migrate(Connection& conn);

// On a new database, stores a value wrapped by `master`; on an existing one, checks that value
// unwraps. kUnavailable "master_key_mismatch" when it does not.
Status CheckMasterKey(Connection& conn, const crypto::Key& master);

}  // namespace herald::sqlite

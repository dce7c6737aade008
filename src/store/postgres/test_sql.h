// For the PostgreSQL store's tests: run SQL of the test's own on a libpq connection, failing
// the test with the server's words when it does not run.
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <string>

namespace herald::pgtest {

// Runs `sql` (one or more statements); true when it ran. `value`, when given, receives the
// first column of the first row.
inline bool RunSql(PGconn* conn, const std::string& sql, std::string* value = nullptr) {
  PGresult* r = PQexec(conn, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  if (!ok) ADD_FAILURE() << sql << ": " << PQerrorMessage(conn);
  if (ok && value != nullptr && PQntuples(r) > 0) *value = PQgetvalue(r, 0, 0);
  PQclear(r);
  return ok;
}

}  // namespace herald::pgtest

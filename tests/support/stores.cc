#include "support/stores.h"

#include <libpq-fe.h>

#include <cstdlib>

#include "testing/pg_test_server.h"

namespace herald::e2e {

bool UseStore(HeraldOptions& options, const std::string& store) {
  if (store != "Postgres") return true;
  pgtest::PgTestServer* pg = pgtest::PgTestServer::Shared();
  if (pg == nullptr) {
    ADD_FAILURE() << "no PostgreSQL test server";
    return false;
  }
  const std::string uri = pg->FreshSchemaUri("e2e");
  if (uri.empty()) {
    ADD_FAILURE() << "no fresh schema: " << pg->last_error();
    return false;
  }
  options.args.emplace_back("--store");
  options.args.push_back(uri);
  return true;
}

int64_t PgScalar(const std::string& uri, const std::string& sql) {
  PGconn* conn = PQconnectdb(uri.c_str());
  int64_t out = -1;
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* r = PQexec(conn, sql.c_str());
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
      out = std::strtoll(PQgetvalue(r, 0, 0), nullptr, 10);
    }
    PQclear(r);
  }
  PQfinish(conn);
  return out;
}

}  // namespace herald::e2e

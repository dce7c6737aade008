// `herald serve --store postgresql://...` against a throwaway PostgreSQL 15 server
// (testing/pg_test_server.h): what a wrong --store says, that the data outlives the process, and
// that no table holds a person's data in the clear.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <string>
#include <vector>

#include "support/api_helpers.h"
#include "support/herald_process.h"
#include "testing/pg_test_server.h"

namespace herald::e2e {
namespace {

using nlohmann::json;

pgtest::PgTestServer& Pg() {
  pgtest::PgTestServer* pg = pgtest::PgTestServer::Shared();
  if (pg == nullptr) ADD_FAILURE() << "no PostgreSQL test server";
  return *pg;
}

TEST(PostgresStoreTest, AStoreThatIsNeitherSqliteNorAUriIsRefusedNamingIt) {
  HeraldProcess server;
  server.options().args = {"--store", "mysql://localhost/herald"};
  ASSERT_FALSE(server.Start());
  EXPECT_EQ(server.exit_status(), 2);
  EXPECT_NE(server.Stderr().find("--store must be sqlite or a PostgreSQL URI"), std::string::npos)
      << server.Stderr();
}

TEST(PostgresStoreTest, AnUnreachableServerExitsNonZeroWithTheServersWords) {
  HeraldProcess server;
  // Port 1 on loopback: nothing listens there.
  server.options().args = {"--store", "postgresql://herald@127.0.0.1:1/herald?connect_timeout=2"};
  ASSERT_FALSE(server.Start());
  EXPECT_EQ(server.exit_status(), 1);
  const std::string err = server.Stderr();
  EXPECT_NE(err.find("cannot open the postgresql store"), std::string::npos) << err;
  EXPECT_NE(err.find("Cannot connect to PostgreSQL"), std::string::npos) << err;
  EXPECT_EQ(err.find("herald@127.0.0.1"), std::string::npos) << "the URI was logged: " << err;
}

TEST(PostgresStoreTest, DataOutlivesTheProcessAndNoTableHoldsPersonalDataInTheClear) {
  const std::string uri = Pg().FreshSchemaUri("e2e");
  ASSERT_FALSE(uri.empty());
  HeraldProcess server;
  server.options().args = {"--store", uri};
  ASSERT_TRUE(server.Start()) << server.last_error() << server.Stderr();
  HttpClient admin = server.AdminClient();
  const TenantKey tenant = CreateTenantWithKey(admin, "Pg Tenant");
  ASSERT_FALSE(tenant.key.empty());
  HttpClient c = server.Client();
  c.set_bearer(tenant.key);

  const std::string name = "Zelda Quixotic-Marchbanks";
  const std::string email = "zelda.marchbanks@example.org";
  const std::string phone = "+14155550199";
  const std::string token(64, 'e');
  const json devices = json::array({{{"channel", "email"}, {"address", email}},
                                    {{"channel", "sms"}, {"address", phone}},
                                    {{"channel", "ios"}, {"address", token}}});
  ASSERT_EQ(c.Put("/v1/users/zelda", UserBody(name, devices, {"vip"})).status, 201);
  ASSERT_EQ(c.Get("/v1/groups/vip").Json().value("member_count", -1), 1);

  // A restart on the same database: everything is there.
  ASSERT_EQ(server.Stop(), 0);
  ASSERT_TRUE(server.Start()) << server.last_error();
  HttpResponse got = c.Get("/v1/users/zelda");
  ASSERT_EQ(got.status, 200) << got.Describe();
  EXPECT_EQ(got.Json()["name"], name);
  EXPECT_EQ(got.Json()["devices"].size(), 3u);
  ASSERT_EQ(server.Stop(), 0);

  // Every row of every table of the schema, as text.
  PGconn* conn = PQconnectdb(uri.c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  PGresult* tables = PQexec(conn,
                            "SELECT quote_ident(table_name) FROM information_schema.tables "
                            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'");
  ASSERT_EQ(PQresultStatus(tables), PGRES_TUPLES_OK) << PQerrorMessage(conn);
  std::string all;
  int rows = 0;
  for (int t = 0; t < PQntuples(tables); ++t) {
    const std::string sql = std::string("SELECT x::text FROM ") + PQgetvalue(tables, t, 0) + " x";
    PGresult* r = PQexec(conn, sql.c_str());
    ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << sql << ": " << PQerrorMessage(conn);
    for (int i = 0; i < PQntuples(r); ++i) {
      all += PQgetvalue(r, i, 0);
      all.push_back('\n');
      ++rows;
    }
    PQclear(r);
  }
  const int table_count = PQntuples(tables);
  PQclear(tables);
  PQfinish(conn);
  EXPECT_GE(table_count, 10);
  EXPECT_NE(all.find("zelda"), std::string::npos) << "the external id is not PII: it is stored";
  for (const std::string& secret : {name, email, phone, token, std::string("Quixotic")}) {
    EXPECT_EQ(all.find(secret), std::string::npos) << secret << " is stored in the clear";
  }
  std::printf("[ info ] %d tables, %d rows read as text; no personal data in the clear\n",
              table_count, rows);
}

}  // namespace
}  // namespace herald::e2e

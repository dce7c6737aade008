#include "testing/pg_test_server.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <memory>
#include <string>

namespace herald::pgtest {
namespace {

struct ConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using Conn = std::unique_ptr<PGconn, ConnCloser>;

Conn Connect(const std::string& uri) {
  return Conn(PQconnectdb(
      (uri + (uri.find('?') == std::string::npos ? "?" : "&") + "connect_timeout=5").c_str()));
}

bool Connects(const std::string& uri) {
  Conn c = Connect(uri);
  return c != nullptr && PQstatus(c.get()) == CONNECTION_OK;
}

// The first value of the first row, or "error: ..." when the query fails.
std::string QueryValue(const std::string& uri, const std::string& sql) {
  Conn c = Connect(uri);
  if (PQstatus(c.get()) != CONNECTION_OK) return std::string("error: ") + PQerrorMessage(c.get());
  PGresult* r = PQexec(c.get(), sql.c_str());
  std::string out;
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    out = std::string("error: ") + PQresultErrorMessage(r);
  } else if (PQntuples(r) > 0) {
    out = PQgetvalue(r, 0, 0);
  }
  PQclear(r);
  return out;
}

// The schema named in a FreshSchemaUri: what follows "search_path%3D".
std::string SchemaOf(const std::string& uri) {
  const std::string key = "search_path%3D";
  const size_t at = uri.find(key);
  return at == std::string::npos ? "" : uri.substr(at + key.size());
}

PgTestServer& Shared() {
  PgTestServer* server = PgTestServer::Shared();
  if (server == nullptr) ADD_FAILURE() << "the shared server did not start (see stderr)";
  static PgTestServer unstarted;  // keeps the tests from dereferencing nullptr
  return server != nullptr ? *server : unstarted;
}

TEST(PgTestServerTest, SharedServerRunsSql) {
  PgTestServer& server = Shared();
  ASSERT_GT(server.pid(), 0);
  EXPECT_EQ(PgTestServer::Shared(), &server);
  EXPECT_EQ(server.Uri(),
            "postgresql://herald@127.0.0.1:" + std::to_string(server.port()) + "/postgres");
  ASSERT_TRUE(server.Exec("DROP TABLE IF EXISTS x")) << server.last_error();  // --gtest_repeat
  ASSERT_TRUE(server.Exec("CREATE TABLE x(a int)")) << server.last_error();
  ASSERT_TRUE(server.Exec("INSERT INTO x VALUES (7)")) << server.last_error();
  EXPECT_EQ(QueryValue(server.Uri(), "SELECT a FROM x"), "7");
  EXPECT_EQ(QueryValue(server.Uri(), "SHOW fsync"), "off");  // not durable by default
}

TEST(PgTestServerTest, FailedSqlSaysWhy) {
  PgTestServer& server = Shared();
  EXPECT_FALSE(server.Exec("SELECT * FROM no_such_table"));
  EXPECT_NE(server.last_error().find("no_such_table"), std::string::npos) << server.last_error();
}

TEST(PgTestServerTest, RunsAsNobodyWhenRoot) {
  PgTestServer& server = Shared();
  ASSERT_GT(server.pid(), 0);
  struct stat st {};
  ASSERT_EQ(::stat(("/proc/" + std::to_string(server.pid())).c_str(), &st), 0);
  if (::geteuid() == 0) {
    const passwd* nobody = ::getpwnam("nobody");
    ASSERT_NE(nobody, nullptr);
    EXPECT_EQ(st.st_uid, nobody->pw_uid);
  } else {
    EXPECT_EQ(st.st_uid, ::geteuid());
  }
}

TEST(PgTestServerTest, FreshSchemaUrisPointSearchPathAtDistinctEmptySchemas) {
  PgTestServer& server = Shared();
  const std::string a = server.FreshSchemaUri("Store-Test");
  const std::string b = server.FreshSchemaUri("Store-Test");
  ASSERT_FALSE(a.empty()) << server.last_error();
  ASSERT_FALSE(b.empty()) << server.last_error();
  EXPECT_NE(SchemaOf(a), SchemaOf(b));
  EXPECT_EQ(SchemaOf(a).rfind("store_test_", 0), 0u) << a;
  EXPECT_EQ(QueryValue(a, "SHOW search_path"), SchemaOf(a));
  EXPECT_EQ(QueryValue(b, "SHOW search_path"), SchemaOf(b));
  // The same table name in both, each landing in its own schema.
  for (const std::string& uri : {a, b}) {
    EXPECT_EQ(QueryValue(uri, "CREATE TABLE t(a int); SELECT count(*) FROM t"), "0");
  }
  EXPECT_EQ(
      QueryValue(a, "SELECT count(*) FROM pg_tables WHERE tablename = 't' AND schemaname IN ('" +
                        SchemaOf(a) + "', '" + SchemaOf(b) + "')"),
      "2");
}

TEST(PgTestServerTest, KilledServerRefusesConnectionsAndRestartsWithItsData) {
  PgTestServer server({.durable = true, .settings = {"max_connections=20"}});
  ASSERT_TRUE(server.Start()) << server.last_error();
  EXPECT_EQ(QueryValue(server.Uri(), "SHOW fsync"), "on");
  EXPECT_EQ(QueryValue(server.Uri(), "SHOW max_connections"), "20");
  ASSERT_TRUE(server.Exec("CREATE TABLE kept(a int); INSERT INTO kept VALUES (1)"))
      << server.last_error();
  const pid_t old_pid = server.pid();
  const uint16_t port = server.port();

  ASSERT_TRUE(server.Kill());
  EXPECT_EQ(server.pid(), -1);
  EXPECT_NE(::kill(old_pid, 0), 0);  // reaped: the pid is gone
  EXPECT_FALSE(Connects(server.Uri()));
  EXPECT_FALSE(server.Kill());

  ASSERT_TRUE(server.Restart()) << server.last_error();
  EXPECT_GT(server.pid(), 0);
  EXPECT_NE(server.pid(), old_pid);
  EXPECT_EQ(server.port(), port);
  EXPECT_TRUE(Connects(server.Uri()));
  EXPECT_EQ(QueryValue(server.Uri(), "SELECT count(*) FROM kept"), "1");
}

TEST(PgTestServerTest, DestructorStopsTheServerAndRemovesItsDirectory) {
  pid_t pid = -1;
  std::string uri;
  std::string dir;
  {
    PgTestServer server;
    ASSERT_TRUE(server.Start()) << server.last_error();
    pid = server.pid();
    uri = server.Uri();
    dir = server.dir();
    ASSERT_TRUE(Connects(uri));
    ASSERT_TRUE(std::filesystem::exists(dir + "/data/PG_VERSION"));
  }
  errno = 0;
  EXPECT_NE(::kill(pid, 0), 0);
  EXPECT_EQ(errno, ESRCH);
  EXPECT_FALSE(Connects(uri));
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(PgTestServerTest, RestartBeforeStartFails) {
  PgTestServer server;
  EXPECT_FALSE(server.Restart());
  EXPECT_FALSE(server.last_error().empty());
  EXPECT_EQ(server.pid(), -1);
}

}  // namespace
}  // namespace herald::pgtest

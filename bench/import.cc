// Import benchmark: N users with two devices each, as NDJSON, through the real HTTP server and
// the API's streaming import into the embedded SQLite store (sealing, blind indexes, phone
// parsing included). Reference: a raw SQLite insert of the same rows (users + devices, same
// indexes, no validation, no encryption) in the same run. The ratio is the figure that matters.
//
// With --store=postgres the same import also runs on PostgreSQL (a throwaway local server with
// fsync on, started by the benchmark) and the PostgreSQL rate is printed beside the SQLite one.
//
//   build/bench_import [--users=200000] [--devices=email+sms|ios+email] [--store=postgres]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "api/api.h"
#include "bench/bench_util.h"
#include "crypto/crypto.h"
#include "http/server.h"
#include "observe/metrics.h"
#include "store/postgres/postgres_store.h"
#include "store/sqlite/sqlite_store.h"
#include "testing/pg_test_server.h"

namespace hb = herald::bench;

namespace {

std::string Token(int i) {
  char buf[65];
  std::snprintf(buf, sizeof buf, "%064x", i * 2654435761u);
  return buf;
}

std::string Line(int i, const std::string& mix) {
  std::string first, second;
  const std::string n = std::to_string(i);
  if (mix == "ios+email") {
    first = R"({"channel":"ios","address":")" + Token(i) + "\"}";
  } else {
    char phone[32];
    std::snprintf(phone, sizeof phone, "+8210%08d", 20000000 + i % 70000000);
    first = R"({"channel":"sms","address":")" + std::string(phone) + "\"}";
  }
  second = R"({"channel":"email","address":"user)" + n + "@example.com\"}";
  return R"({"external_id":"user-)" + n + R"(","name":"User Number )" + n +
         R"(","opt_in":true,"devices":[)" + first + "," + second + R"(],"groups":["all"]})" + "\n";
}

// Sends one HTTP request with the body and returns the response text.
std::string HttpPost(uint16_t port, const std::string& target, const std::string& auth,
                     const std::string& body) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return "";
  const std::string head =
      "POST " + target + " HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer " + auth +
      "\r\nContent-Type: application/x-ndjson\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n\r\n";
  auto send_all = [fd](const char* p, size_t n) {
    while (n > 0) {
      const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
      if (w <= 0) return false;
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  };
  send_all(head.data(), head.size());
  send_all(body.data(), body.size());
  std::string response;
  char buf[65536];
  ssize_t r;
  while ((r = ::recv(fd, buf, sizeof buf, 0)) > 0) response.append(buf, static_cast<size_t>(r));
  ::close(fd);
  return response;
}

void Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::fprintf(stderr, "sqlite: %s\n", err);
    sqlite3_free(err);
    std::exit(1);
  }
}

// The reference: the same rows straight into SQLite, 1000 users per transaction.
double RawSqliteUsersPerSecond(const std::filesystem::path& dir, int users,
                               const std::string& mix) {
  sqlite3* db = nullptr;
  sqlite3_open((dir / "raw.db").c_str(), &db);
  Exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  Exec(db,
       "CREATE TABLE users(id INTEGER PRIMARY KEY, tenant_id TEXT, external_id TEXT, name BLOB,"
       " opt_in INT, consent_from INT, consent_until INT, version INT, created_at INT,"
       " updated_at INT, UNIQUE(tenant_id, external_id));"
       "CREATE INDEX users_expiry ON users(consent_until);"
       "CREATE TABLE devices(id TEXT PRIMARY KEY, user_id INT, channel INT, address BLOB,"
       " bidx BLOB, disabled INT, created_at INT, UNIQUE(user_id, channel, bidx));"
       "CREATE TABLE groups(id INTEGER PRIMARY KEY, tenant_id TEXT, key TEXT);"
       "CREATE TABLE memberships(group_id INT, user_id INT, PRIMARY KEY(group_id, user_id));"
       "INSERT INTO groups VALUES(1, 't', 'all');");
  sqlite3_stmt *u, *d, *m;
  sqlite3_prepare_v2(db, "INSERT INTO users VALUES(NULL,?,?,?,1,?,?,1,?,?)", -1, &u, nullptr);
  sqlite3_prepare_v2(db, "INSERT INTO devices VALUES(?,?,?,?,?,0,?)", -1, &d, nullptr);
  sqlite3_prepare_v2(db, "INSERT INTO memberships VALUES(1,?)", -1, &m, nullptr);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < users; ++i) {
    if (i % 1000 == 0) Exec(db, "BEGIN");
    const std::string ext = "user-" + std::to_string(i);
    const std::string name = "User Number " + std::to_string(i);
    sqlite3_bind_text(u, 1, "t", -1, SQLITE_STATIC);
    sqlite3_bind_text(u, 2, ext.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(u, 3, name.data(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
    for (int k = 4; k <= 7; ++k) sqlite3_bind_int64(u, k, 1700000000000 + i);
    sqlite3_step(u);
    sqlite3_reset(u);
    const sqlite3_int64 uid = sqlite3_last_insert_rowid(db);
    for (int dev = 0; dev < 2; ++dev) {
      const std::string id = "dev_" + std::to_string(i) + "_" + std::to_string(dev);
      const std::string address = dev == 0 ? (mix == "ios+email" ? Token(i) : "+821012345678")
                                           : "user" + std::to_string(i) + "@example.com";
      sqlite3_bind_text(d, 1, id.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(d, 2, uid);
      sqlite3_bind_int(d, 3, dev);
      sqlite3_bind_blob(d, 4, address.data(), static_cast<int>(address.size()), SQLITE_TRANSIENT);
      sqlite3_bind_blob(d, 5, address.data(), 16, SQLITE_TRANSIENT);
      sqlite3_bind_int64(d, 6, 1700000000000 + i);
      sqlite3_step(d);
      sqlite3_reset(d);
    }
    sqlite3_bind_int64(m, 1, uid);
    sqlite3_step(m);
    sqlite3_reset(m);
    if (i % 1000 == 999 || i == users - 1) Exec(db, "COMMIT");
  }
  const double rate = users / hb::Seconds(start);
  sqlite3_finalize(u);
  sqlite3_finalize(d);
  sqlite3_finalize(m);
  sqlite3_close(db);
  return rate;
}

double Cpu(int who) {
  rusage u{};
  getrusage(who, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
double SelfCpuSeconds() { return Cpu(RUSAGE_SELF); }
double ChildrenCpuSeconds() { return Cpu(RUSAGE_CHILDREN); }

// The import through the real HTTP server into `store`: users per second.
double HeraldImportRate(herald::Store* store, const std::string& body, int users, double* secs,
                        bool* ok) {
  using namespace herald;
  observe::Registry metrics;
  Tenant t;
  t.name = "bench";
  auto tenant = store->CreateTenant(t);
  auto minted = crypto::MintApiKey();
  ApiKey key{minted.id, tenant->id, "bench", {"users:write"}, NowMillis(), {}};
  (void)store->CreateApiKey(key, minted.hash);
  api::ApiOptions ao;
  ao.admin_token = "bench-admin";
  http::ServerOptions sopt;
  sopt.listen = "127.0.0.1:0";
  auto server = http::MakeServer(sopt, api::MakeApiHandler(ao, store, &metrics));
  if (!server->Start().ok()) return 0;
  std::fprintf(stderr, "importing through POST /v1/users:import ...\n");
  const auto start = std::chrono::steady_clock::now();
  const std::string response = HttpPost(server->port(), "/v1/users:import", minted.secret, body);
  (void)store->Flush();
  *secs = hb::Seconds(start);
  *ok = response.find("\"created\":" + std::to_string(users)) != std::string::npos;
  if (!*ok) std::printf("  response: %.300s\n", response.c_str());
  server->Stop();
  return users / *secs;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace herald;
  const int users = std::stoi(hb::Flag(argc, argv, "users", "200000"));
  const std::string mix = hb::Flag(argc, argv, "devices", "email+sms");
  crypto::InitCrypto();
  const auto dir = hb::TempDir("herald-bench-import");

  std::fprintf(stderr, "generating %d NDJSON users (%s)...\n", users, mix.c_str());
  std::string body;
  body.reserve(static_cast<size_t>(users) * 230);
  for (int i = 0; i < users; ++i) body += Line(i, mix);

  SqliteStoreOptions so;
  so.path = (dir / "herald.db").string();
  so.master_key = crypto::RandomKey();
  auto store = OpenSqliteStore(std::move(so));
  if (!store.ok()) return 1;
  double secs = 0;
  bool ok = false;
  const double herald_rate = HeraldImportRate(store->get(), body, users, &secs, &ok);
  store->reset();

  double pg_rate = 0, pg_secs = 0, pg_herald_cpu = 0, pg_server_cpu = 0;
  bool pg_ok = true;
  const bool with_pg = hb::Flag(argc, argv, "store", "sqlite") == "postgres";
  std::unique_ptr<pgtest::PgTestServer> pg;
  if (with_pg) {
    pgtest::PgTestServerOptions po;
    po.durable = true;  // fsync on, as a production server
    pg = std::make_unique<pgtest::PgTestServer>(po);
    if (!pg->Start()) {
      std::fprintf(stderr, "cannot start PostgreSQL: %s\n", pg->last_error().c_str());
      return 1;
    }
    PostgresStoreOptions po2;
    po2.uri = pg->FreshSchemaUri("bench");
    po2.master_key = crypto::RandomKey();
    auto pstore = OpenPostgresStore(std::move(po2));
    if (!pstore.ok()) {
      std::fprintf(stderr, "cannot open the PostgreSQL store: %s\n",
                   pstore.error().message.c_str());
      return 1;
    }
    const double cpu_before = SelfCpuSeconds();
    pg_rate = HeraldImportRate(pstore->get(), body, users, &pg_secs, &pg_ok);
    pg_herald_cpu = SelfCpuSeconds() - cpu_before;
    pstore->reset();
    pg.reset();  // stops the server and reaps it: its CPU is then counted as our children's
    pg_server_cpu = ChildrenCpuSeconds();
  }

  std::fprintf(stderr, "raw SQLite insert of the same rows...\n");
  const double raw_rate = RawSqliteUsersPerSecond(dir, users, mix);

  std::printf("import: %d users x 2 devices (%s), %.1f MB of NDJSON\n", users, mix.c_str(),
              body.size() / 1e6);
  std::printf("  herald import : %8.0f users/s  (%.2f s, all created: %s)\n", herald_rate, secs,
              ok ? "yes" : "NO");
  if (with_pg) {
    std::printf("  herald on pg  : %8.0f users/s  (%.2f s, all created: %s)\n", pg_rate, pg_secs,
                pg_ok ? "yes" : "NO");
    std::printf("  pg / sqlite   : %.2f\n", pg_rate / herald_rate);
    std::printf(
        "  pg time split : herald CPU %.2f s, server CPU %.2f s (incl. its start), "
        "wall %.2f s\n",
        pg_herald_cpu, pg_server_cpu, pg_secs);
  }
  std::printf("  raw sqlite    : %8.0f users/s\n", raw_rate);
  std::printf("  ratio         : %.2f of raw SQLite\n", herald_rate / raw_rate);
  std::printf("  peak RSS      : %ld MiB\n", hb::PeakRssMiB());
  std::filesystem::remove_all(dir);
  return ok && pg_ok ? 0 : 1;
}

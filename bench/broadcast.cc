// bench_broadcast: one send to a group of N users with two push devices each (iOS + Android),
// through Herald's real pipeline — SQLite store, fan-out, local queue, dispatcher, APNs and FCM
// clients over HTTP/2 — to the provider simulator running as a process of its own (`herald sim`)
// on this machine, until every delivery is terminal. Prints deliveries/s, time to the last
// delivery, accept→provider latency percentiles, peak RSS, and h2load's raw request rate against
// the same simulator endpoint in the same run, with the ratio.
//
//   build/bench_broadcast [--users=1000000] [--h2load-requests=400000] [--provider=sim|null]
//                         [--store=postgres] [--queue=nats]
//
// --store=postgres runs the same broadcast again on PostgreSQL (a throwaway local server with
// fsync on, started by the benchmark) and prints its figures and the ratio to SQLite's.
//
// --queue=nats runs it a third time on PostgreSQL with the JetStream queue: a 3-node
// nats-server cluster the benchmark starts on loopback, the stream R3, one Herald process (the
// multi-process figure is issue 10's next step). Everything shares the machine's cores.
//
// --provider=null replaces the provider clients with one that accepts every message at once, in
// process: no network, no simulator. It measures what the pipeline itself (store, fan-out,
// queue, dispatcher, events) can do, the ceiling the providers' side is measured against.
#include <libpq-fe.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "common/timer_queue.h"
#include "crypto/crypto.h"
#include "net/http_client.h"
#include "observe/metrics.h"
#include "pipeline/dispatcher.h"
#include "pipeline/fanout.h"
#include "pipeline/provider_directory.h"
#include "providers/jwt.h"
#include "providers/sim_defaults.h"
#include "queue/jetstream/jetstream_queue.h"
#include "queue/queue.h"
#include "sim/demo_credentials.h"
#include "store/postgres/postgres_store.h"
#include "store/sqlite/sqlite_store.h"
#include "testing/nats/nats_test_cluster.h"
#include "testing/pg_test_server.h"

namespace herald {
namespace {

using Clock = std::chrono::steady_clock;

// Accepts every message at once, on the caller's thread.
class NullProvider final : public providers::Provider {
 public:
  explicit NullProvider(Channel channel) : channel_(channel) {}
  std::string_view name() const override { return "null"; }
  Channel channel() const override { return channel_; }
  void Send(std::vector<providers::Message> batch,
            std::function<void(std::vector<providers::SendResult>)> done) override {
    std::vector<providers::SendResult> results;
    for (const providers::Message& m : batch) {
      providers::SendResult r;
      r.outcome = providers::Outcome::kAccepted;
      r.provider = "null";
      r.provider_message_id = m.delivery_id;
      results.push_back(std::move(r));
    }
    done(std::move(results));
  }

 private:
  Channel channel_;
};

std::string Token(int i) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016x", i);
  return std::string(48, 'b') + buf;
}

// Starts `herald sim` (the binary beside this benchmark) and returns its pid.
pid_t StartSim(const std::filesystem::path& herald, int port, int smtp_port) {
  const std::string listen = "127.0.0.1:" + std::to_string(port);
  const std::string smtp = "127.0.0.1:" + std::to_string(smtp_port);
  pid_t pid = fork();
  if (pid == 0) {
    std::freopen("/dev/null", "w", stderr);
    execl(herald.c_str(), herald.c_str(), "sim", "--listen", listen.c_str(), "--smtp-listen",
          smtp.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

std::string RunAndCapture(const std::string& command) {
  std::string out;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

// h2load's request rate against the simulator's APNs endpoint, with a valid provider token.
double H2loadRate(int port, int requests) {
  auto signer =
      providers::JwtSigner::Make(providers::JwtSigner::Alg::kES256, sim::kDemoApnsPrivateKeyPem);
  if (!signer.ok()) return 0;
  const std::string header =
      std::string(R"({"alg":"ES256","kid":")") + std::string(sim::kDemoApnsKeyId) + R"("})";
  const std::string claims = std::string(R"({"iss":")") + std::string(sim::kDemoApnsTeamId) +
                             R"(","iat":)" + std::to_string(NowMillis() / 1000) + "}";
  auto jwt = (*signer)->Sign(header, claims);
  if (!jwt.ok()) return 0;
  const auto body = bench::TempDir("h2load-body") / "body.json";
  FILE* f = std::fopen(body.c_str(), "w");
  std::fputs(R"({"aps":{"alert":{"title":"Flash","body":"Sale today"}}})", f);
  std::fclose(f);
  const std::string cmd = "h2load -n " + std::to_string(requests) + " -c 4 -m 100 -t 1 -d " +
                          body.string() + " -H 'authorization: bearer " + *jwt +
                          "' -H 'apns-topic: " + std::string(sim::kDemoApnsTopic) +
                          "' -H 'apns-push-type: alert' http://127.0.0.1:" + std::to_string(port) +
                          "/3/device/" + Token(0);
  const std::string out = RunAndCapture(cmd);
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(finished in [0-9.]+m?s, ([0-9.]+) req/s)"))) {
    return std::stod(m[1]);
  }
  std::fprintf(stderr, "h2load failed:\n%s\n", out.c_str());
  return 0;
}

// Counts the events the store holds, by stage, reading the closed database file itself: the
// proof that every step of every delivery was written.
std::map<std::string, int64_t> StoredEventsByStage(const std::string& path) {
  std::map<std::string, int64_t> counts;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* q = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT stage, COUNT(*) FROM delivery_events GROUP BY stage", -1, &q,
                           nullptr) == SQLITE_OK) {
      while (sqlite3_step(q) == SQLITE_ROW) {
        const auto stage = static_cast<DeliveryStatus>(sqlite3_column_int64(q, 0));
        counts[std::string(ToString(stage))] = sqlite3_column_int64(q, 1);
      }
    }
    sqlite3_finalize(q);
  }
  sqlite3_close_v2(db);
  return counts;
}

// Events stored by stage, read from PostgreSQL's delivery_events (same stage numbers).
std::map<std::string, int64_t> PgEventsByStage(const std::string& uri) {
  std::map<std::string, int64_t> out;
  PGconn* conn = PQconnectdb(uri.c_str());
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* r = PQexec(conn, "SELECT stage, COUNT(*) FROM delivery_events GROUP BY stage");
    for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); ++i) {
      const auto stage = static_cast<DeliveryStatus>(std::atoi(PQgetvalue(r, i, 0)));
      out[std::string(ToString(stage))] = std::atoll(PQgetvalue(r, i, 1));
    }
    PQclear(r);
  }
  PQfinish(conn);
  return out;
}

// Where the server's time went: the statements with the most execution time
// (pg_stat_statements, preloaded by Run()).
void PrintPgTopStatements(const std::string& uri) {
  PGconn* conn = PQconnectdb(uri.c_str());
  if (PQstatus(conn) == CONNECTION_OK) {
    PQclear(PQexec(conn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"));
    PGresult* r =
        PQexec(conn,
               "SELECT calls, round(total_exec_time)::bigint, round(total_plan_time)::bigint, "
               "round(mean_exec_time::numeric, 2), rows, "
               "left(regexp_replace(query, '\\s+', ' ', 'g'), 90) "
               "FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT 8");
    PGresult* t = PQexec(conn,
                         "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM "
                         "pg_stat_user_tables WHERE n_tup_upd > 0 ORDER BY relname");
    std::printf("rows updated in place (HOT), by table:");
    for (int i = 0; PQresultStatus(t) == PGRES_TUPLES_OK && i < PQntuples(t); ++i) {
      std::printf(" %s %s of %s;", PQgetvalue(t, i, 0), PQgetvalue(t, i, 3), PQgetvalue(t, i, 2));
    }
    std::printf("\n");
    PQclear(t);
    std::printf("server time by statement (pg_stat_statements): executing, planning\n");
    for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); ++i) {
      std::printf("  %7s + %6s ms %6s calls %6s ms/call %7s rows  %s\n", PQgetvalue(r, i, 1),
                  PQgetvalue(r, i, 2), PQgetvalue(r, i, 0), PQgetvalue(r, i, 3),
                  PQgetvalue(r, i, 4), PQgetvalue(r, i, 5));
    }
    PQclear(r);
  }
  PQfinish(conn);
}

// One broadcast on one store ("sqlite" or "postgres"); its deliveries/s (0 when it failed).
double Run(const std::string& kind, int users, int h2load_requests, bool null_provider,
           int sim_port, const std::string& sim_url, bool nats = false) {
  std::printf("---- store: %s, queue: %s\n", kind.c_str(),
              nats ? "jetstream (3 nodes, R3)" : "local");
  const auto dir = bench::TempDir("bench-broadcast");
  std::atomic<int64_t> transactions{0}, writes{0};
  auto on_batch = [&](size_t n) {
    transactions.fetch_add(1, std::memory_order_relaxed);
    writes.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed);
  };
  std::unique_ptr<pgtest::PgTestServer> pg;
  std::string pg_uri;
  Result<std::unique_ptr<Store>> opened = Error{};
  if (kind == "postgres") {
    pgtest::PgTestServerOptions po;
    po.durable = true;  // fsync on, as a production server
    po.settings = {"shared_preload_libraries=pg_stat_statements,auto_explain",
                   "pg_stat_statements.track_planning=on", "auto_explain.log_min_duration=25",
                   "auto_explain.log_analyze=on", "auto_explain.log_buffers=on"};
    pg = std::make_unique<pgtest::PgTestServer>(po);
    if (!pg->Start()) {
      std::printf("cannot start PostgreSQL: %s\n", pg->last_error().c_str());
      return 0;
    }
    pg_uri = pg->FreshSchemaUri("bench");
    PostgresStoreOptions po2;
    po2.uri = pg_uri;
    po2.master_key = crypto::RandomKey();
    po2.on_batch = on_batch;
    opened = OpenPostgresStore(std::move(po2));
  } else {
    SqliteStoreOptions so;
    so.path = (dir / "herald.db").string();
    so.master_key = crypto::RandomKey();
    so.on_batch = on_batch;
    opened = OpenSqliteStore(std::move(so));
  }
  if (!opened.ok()) {
    std::printf("cannot open the store: %s\n", opened.error().message.c_str());
    return 0;
  }
  std::unique_ptr<Store> store = std::move(*opened);
  Tenant t;
  t.name = "Bench";
  t.delivery_deadline_minutes = 30;
  Tenant tenant = *store->CreateTenant(t);

  std::printf("machine: %u cores; users: %d (x2 push devices)\n",
              std::thread::hardware_concurrency(), users);
  auto populate_start = Clock::now();
  std::atomic<int> next{0};
  auto populate = [&] {
    constexpr int kBatch = 1000;
    for (int from = next.fetch_add(kBatch); from < users; from = next.fetch_add(kBatch)) {
      std::vector<User> batch;
      for (int i = from; i < std::min(users, from + kBatch); ++i) {
        User u;
        u.tenant_id = tenant.id;
        u.external_id = "u" + std::to_string(i);
        u.opt_in = true;
        u.consent_from = NowMillis() - 1000;
        u.consent_until = NowMillis() + 86'400'000LL * 365;
        u.devices = {Device{"", Channel::kIos, Token(i)},
                     Device{"", Channel::kAndroid, "fcm-" + std::to_string(i)}};
        u.groups = {"all"};
        batch.push_back(std::move(u));
      }
      (void)store->PutUsers(tenant.id, std::move(batch));
    }
  };
  std::thread p1(populate), p2(populate);
  p1.join();
  p2.join();
  std::printf("populated in %.1f s; RSS so far %ld MiB\n", bench::Seconds(populate_start),
              bench::PeakRssMiB());

  observe::Registry metrics;
  auto client = net::MakeHttpClient();
  TimerQueue timers;
  DirectoryOptions d;
  d.router.max_rounds = 1;
  d.fallback = [&](Channel c) { return providers::SimProviderConfigs(c, sim_url, ""); };
  if (null_provider) {
    d.make_chain =
        [](std::string_view config) -> Result<std::vector<std::unique_ptr<providers::Provider>>> {
      std::vector<std::unique_ptr<providers::Provider>> chain;
      const Channel c =
          config.find("\"fcm\"") != std::string_view::npos ? Channel::kAndroid : Channel::kIos;
      chain.push_back(std::make_unique<NullProvider>(c));
      return chain;
    };
  }
  ProviderDirectory directory(store.get(), client.get(), &timers, d);
  std::unique_ptr<natstest::NatsTestCluster> cluster;
  std::unique_ptr<Queue> queue;
  if (nats) {
    cluster = std::make_unique<natstest::NatsTestCluster>(3);
    if (!cluster->Start()) {
      std::printf("cannot start the NATS cluster: %s\n", cluster->last_error().c_str());
      return 0;
    }
    JetStreamQueueOptions qo;
    qo.urls = cluster->Urls();
    Result<std::unique_ptr<Queue>> q = OpenJetStreamQueue(qo);
    if (!q.ok()) {
      std::printf("cannot open the JetStream queue: %s\n", q.error().message.c_str());
      return 0;
    }
    queue = std::move(*q);
  } else {
    queue = MakeLocalQueue({});
  }
  Fanout fanout(store.get(), queue.get(), &metrics);
  Dispatcher dispatcher(store.get(), queue.get(), &directory, &metrics);
  fanout.Start();
  dispatcher.Start();

  Notification n;
  n.tenant_id = tenant.id;
  n.title = "Flash";
  n.body = "Sale today";
  n.to_groups = {"all"};
  n.accepted_at = NowMillis();
  n.deadline = n.accepted_at + 30 * 60'000;
  n.request_hash = "bench";
  const auto send_start = Clock::now();
  const double cpu_start = bench::ProcessCpuSeconds();
  const double server_cpu_start = pg ? bench::ProcessTreeCpuSeconds(pg->pid()) : 0;
  auto nats_cpu_now = [&cluster] {
    double total = 0;
    for (int i = 0; cluster && i < cluster->nodes(); ++i) {
      total += bench::ProcessTreeCpuSeconds(cluster->pid(i));
    }
    return total;
  };
  const double nats_cpu_start = nats_cpu_now();
  auto created = store->CreateNotification(n);
  if (!created.ok()) return 0;
  fanout.Submit(created->notification.id);

  const int64_t expected = 2LL * users;
  auto terminal = [&] {
    int64_t sum = 0;
    for (const char* s : {"sent", "failed", "suppressed", "expired"}) {
      sum += static_cast<int64_t>(
          metrics.GetCounter("herald_delivery_events_total", "", {{"stage", s}}).Value());
    }
    return sum;
  };
  auto next_report = Clock::now() + std::chrono::seconds(1);
  while (terminal() < expected && bench::Seconds(send_start) < 900) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (Clock::now() >= next_report) {  // progress, once a second
      next_report += std::chrono::seconds(1);
      std::printf("  %5.1f s: %lld of %lld terminal; queued %zu, in flight %zu (limit %zu)\n",
                  bench::Seconds(send_start), static_cast<long long>(terminal()),
                  static_cast<long long>(expected), queue->Stats().queued, dispatcher.in_flight(),
                  dispatcher.in_flight_limit());
      std::fflush(stdout);
    }
  }
  const double elapsed = bench::Seconds(send_start);
  dispatcher.Stop(std::chrono::seconds(5));
  fanout.Stop();
  (void)store->Flush();
  const double recorded = bench::Seconds(send_start);
  const double cpu = bench::ProcessCpuSeconds() - cpu_start;
  const double server_cpu = pg ? bench::ProcessTreeCpuSeconds(pg->pid()) - server_cpu_start : 0;
  const double nats_cpu = nats_cpu_now() - nats_cpu_start;

  auto final_n = store->GetNotification(tenant.id, created->notification.id);
  // Exact accept->provider latency: each sent delivery's update time minus the acceptance.
  std::vector<int64_t> latencies;
  latencies.reserve(static_cast<size_t>(2LL * users));
  for (PageRequest page{"", 1000};;) {
    auto batch =
        store->ListDeliveries(tenant.id, created->notification.id, DeliveryStatus::kSent, page);
    if (!batch.ok()) break;
    for (const Delivery& d : batch->items) latencies.push_back(d.updated_at - n.accepted_at);
    if (batch->next_cursor.empty()) break;
    page.cursor = batch->next_cursor;
  }
  std::sort(latencies.begin(), latencies.end());
  auto percentile = [&](double q) -> double {
    if (latencies.empty()) return -1;
    return static_cast<double>(latencies[static_cast<size_t>(q * (latencies.size() - 1))]) / 1e3;
  };
  const int64_t sent =
      final_n.ok() ? final_n->counts[static_cast<size_t>(DeliveryStatus::kSent)] : 0;
  const double rate = static_cast<double>(expected) / elapsed;
  std::printf("deliveries: %lld sent of %lld (status %s)\n", static_cast<long long>(sent),
              static_cast<long long>(expected),
              final_n.ok() ? std::string(ToString(final_n->status)).c_str() : "?");
  std::printf("time to the last delivery: %.2f s; every event written after %.2f s\n", elapsed,
              recorded);
  std::printf("herald: %.0f deliveries/s end to end\n", rate);
  std::printf("accept->provider latency: p50 %.3f s, p99 %.3f s, max %.3f s\n", percentile(0.5),
              percentile(0.99), percentile(1.0));
  std::printf("peak RSS: %ld MiB\n", bench::PeakRssMiB());
  std::printf("CPU during the send: herald %.1f s (%.0f us a delivery)", cpu,
              cpu * 1e6 / static_cast<double>(expected));
  if (pg) {
    std::printf(", database server %.1f s (%.0f us a delivery)", server_cpu,
                server_cpu * 1e6 / static_cast<double>(expected));
  }
  if (cluster) {
    std::printf(", nats-server x3 %.1f s (%.0f us a delivery)", nats_cpu,
                nats_cpu * 1e6 / static_cast<double>(expected));
  }
  std::printf("\n");
  std::printf("store: %lld transactions, %.1f writes each on average\n",
              static_cast<long long>(transactions.load()),
              static_cast<double>(writes.load()) / std::max<int64_t>(1, transactions.load()));
  if (!null_provider) {
    const double h2 = H2loadRate(sim_port, h2load_requests);
    std::printf("h2load against the same simulator: %.0f req/s; ratio %.2f\n", h2,
                h2 > 0 ? rate / h2 : 0);
  } else {
    std::printf("providers: none (--provider=null): the pipeline's own ceiling\n");
  }

  client.reset();
  store.reset();
  if (pg && std::getenv("BENCH_KEEP_LOG")) {
    std::filesystem::copy_file(std::filesystem::path(pg->dir()) / "server.log",
                               "/tmp/pg-bench-server.log",
                               std::filesystem::copy_options::overwrite_existing);
  }
  const std::map<std::string, int64_t> events =
      kind == "postgres" ? PgEventsByStage(pg_uri)
                         : StoredEventsByStage((dir / "herald.db").string());
  std::printf("events stored, by stage:");
  for (const auto& [stage, count] : events) {
    std::printf(" %s %lld", stage.c_str(), static_cast<long long>(count));
  }
  auto stored = [&](const char* stage) {
    auto it = events.find(stage);
    return it == events.end() ? int64_t{0} : it->second;
  };
  const bool every_event = stored("queued") == expected && stored("dispatched") >= expected &&
                           stored("sent") == expected;
  std::printf(" (%s)\n",
              every_event ? "every delivery queued, dispatched and sent" : "EVENTS MISSING");
  if (kind == "postgres") PrintPgTopStatements(pg_uri);
  std::filesystem::remove_all(dir);
  return sent == expected && every_event ? rate : 0;
}

int Main(int argc, char** argv) {
  const int users = std::stoi(bench::Flag(argc, argv, "users", "1000000"));
  const int h2load_requests = std::stoi(bench::Flag(argc, argv, "h2load-requests", "400000"));
  const bool null_provider = bench::Flag(argc, argv, "provider", "sim") == "null";
  const bool with_nats = bench::Flag(argc, argv, "queue", "local") == "nats";
  const bool with_pg = bench::Flag(argc, argv, "store", "sqlite") == "postgres" || with_nats;
  if (!crypto::InitCrypto()) return 1;
  const std::filesystem::path herald =
      std::filesystem::canonical("/proc/self/exe").parent_path() / "herald";
  const int sim_port = 19000 + getpid() % 1000;
  const pid_t sim_pid = null_provider ? -1 : StartSim(herald, sim_port, sim_port + 1000);
  if (!null_provider) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::string sim_url = "http://127.0.0.1:" + std::to_string(sim_port);
  const double sqlite_rate =
      Run("sqlite", users, h2load_requests, null_provider, sim_port, sim_url);
  double pg_rate = 0;
  if (with_pg) {
    pg_rate = Run("postgres", users, h2load_requests, null_provider, sim_port, sim_url);
    std::printf("---- postgres / sqlite: %.0f / %.0f deliveries/s = %.2f\n", pg_rate, sqlite_rate,
                sqlite_rate > 0 ? pg_rate / sqlite_rate : 0);
  }
  double nats_rate = 0;
  if (with_nats) {
    nats_rate = Run("postgres", users, h2load_requests, null_provider, sim_port, sim_url, true);
    std::printf(
        "---- jetstream / local queue (both on postgres): %.0f / %.0f deliveries/s = %.2f\n",
        nats_rate, pg_rate, pg_rate > 0 ? nats_rate / pg_rate : 0);
    std::printf("---- jetstream+postgres / sqlite single process: %.2f\n",
                sqlite_rate > 0 ? nats_rate / sqlite_rate : 0);
  }
  if (sim_pid > 0) {
    kill(sim_pid, SIGTERM);
    waitpid(sim_pid, nullptr, 0);
  }
  return sqlite_rate > 0 && (!with_pg || pg_rate > 0) && (!with_nats || nats_rate > 0) ? 0 : 1;
}

}  // namespace
}  // namespace herald

int main(int argc, char** argv) { return herald::Main(argc, argv); }

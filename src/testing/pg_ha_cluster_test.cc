#include "testing/pg_ha_cluster.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace herald::pgtest {
namespace {

using Clock = std::chrono::steady_clock;

struct ConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using Conn = std::unique_ptr<PGconn, ConnCloser>;

bool Connects(const std::string& uri) {
  Conn c(PQconnectdb(uri.c_str()));
  return c != nullptr && PQstatus(c.get()) == CONNECTION_OK;
}

// The first value of the first row, or "error: ..." when the query fails.
std::string QueryValue(const std::string& uri, const std::string& sql) {
  Conn c(PQconnectdb(uri.c_str()));
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

// Live (not zombie) processes whose working directory is `dir` or below: every server process
// of the cluster (postgres chdirs to its data directory) and pg_autoctl (started in `dir`).
std::vector<pid_t> ProcessesIn(const std::string& dir) {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* e = ::readdir(proc)) {
    const pid_t pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    const std::string base = "/proc/" + std::to_string(pid);
    std::error_code ec;
    const std::string cwd = std::filesystem::read_symlink(base + "/cwd", ec).string();
    if (ec || (cwd != dir && cwd.rfind(dir + "/", 0) != 0)) continue;
    std::ifstream stat(base + "/stat");
    std::string line;
    std::getline(stat, line);
    const size_t paren = line.rfind(')');
    if (paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z') {
      out.push_back(pid);
    }
  }
  ::closedir(proc);
  return out;
}

bool Alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

// "pid: cmdline (cwd)", for failure messages.
std::string Describe(pid_t pid) {
  const std::string base = "/proc/" + std::to_string(pid);
  std::ifstream in(base + "/cmdline");
  std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (char& c : cmdline) c = c == '\0' ? ' ' : c;
  std::ifstream stat(base + "/stat");
  std::string line;
  std::getline(stat, line);
  std::error_code ec;
  return std::to_string(pid) + ": " + cmdline + " (" +
         std::filesystem::read_symlink(base + "/cwd", ec).string() + ") " + line;
}

uid_t UidOf(pid_t pid) {
  struct stat st {};
  return ::stat(("/proc/" + std::to_string(pid)).c_str(), &st) == 0 ? st.st_uid : uid_t(-1);
}

int ThreadCount() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
  }
  return -1;
}

long long MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

TEST(PgHaClusterTest, FailsOverToAStandbyWithoutLosingCommittedRows) {
  std::vector<pid_t> pids;
  std::vector<std::string> node_uris;
  std::string monitor_uri;
  std::string dir;
  {
    std::optional<PgHaCluster> holder;
    PgHaCluster& cluster = holder.emplace();
    const auto start = Clock::now();
    ASSERT_TRUE(cluster.Start()) << cluster.last_error();
    std::printf("[ info ] Start took %lld ms\n", MsSince(start));
    dir = cluster.dir();
    monitor_uri = "postgresql://127.0.0.1:" + std::to_string(cluster.monitor_port()) +
                  "/pg_auto_failover?user=autoctl_node&connect_timeout=2";
    for (int i = 0; i < PgHaCluster::kNodes; ++i) node_uris.push_back(cluster.NodeUri(i));

    const std::string expected_user =
        ::geteuid() == 0 ? "nobody" : ::getpwuid(::geteuid())->pw_name;
    EXPECT_EQ(cluster.user(), expected_user);
    std::string hosts;
    for (int i = 0; i < PgHaCluster::kNodes; ++i) {
      hosts +=
          (i > 0 ? "," : "") + std::string("127.0.0.1:") + std::to_string(cluster.node_port(i));
    }
    EXPECT_EQ(cluster.Uri(), "postgresql://" + hosts +
                                 "/postgres?target_session_attrs=read-write&user=" + expected_user +
                                 "&connect_timeout=2");
    // Everything runs as the user, in the temporary directory, under the four supervisors.
    pids = ProcessesIn(dir);
    EXPECT_GE(pids.size(), 4u + 4u);  // 4 pg_autoctl, 4 postmasters at least
    const uid_t uid = ::geteuid() == 0 ? ::getpwnam("nobody")->pw_uid : ::geteuid();
    for (pid_t p : pids) {
      const uid_t owner = UidOf(p);
      if (owner != uid_t(-1)) {  // -1: a short-lived helper that has ended
        EXPECT_EQ(owner, uid) << Describe(p);
      }
    }
    ASSERT_EQ(cluster.SupervisorPids().size(), 4u);
    for (pid_t p : cluster.SupervisorPids()) EXPECT_EQ(::getpgid(p), p);

    EXPECT_TRUE(Connects(monitor_uri)) << monitor_uri;
    EXPECT_EQ(QueryValue(cluster.Uri(), "SELECT current_user"), expected_user);
    EXPECT_EQ(QueryValue(cluster.Uri(), "SELECT inet_server_port()"),
              std::to_string(cluster.node_port(0)));
    EXPECT_EQ(QueryValue(cluster.Uri(), "SHOW synchronous_standby_names").rfind("ANY 1 (", 0), 0u);

    ASSERT_TRUE(cluster.Exec("CREATE TABLE t (a int); INSERT INTO t VALUES (1)"))
        << cluster.last_error();
    ASSERT_EQ(cluster.Primary(), 0) << cluster.last_error();
    // Both others are hot standbys.
    for (int i = 1; i < PgHaCluster::kNodes; ++i) {
      EXPECT_EQ(QueryValue(cluster.NodeUri(i), "SELECT pg_is_in_recovery()"), "t");
    }

    const std::vector<pid_t> node0 = ProcessesIn(dir + "/node1");  // node 0's data directory
    EXPECT_FALSE(node0.empty());
    ASSERT_TRUE(cluster.KillNode(0)) << cluster.last_error();
    for (pid_t p : node0) EXPECT_FALSE(Alive(p)) << Describe(p);
    EXPECT_FALSE(Connects(node_uris[0]));
    EXPECT_FALSE(cluster.KillNode(0));

    const auto took = cluster.WaitForNewPrimary(0, std::chrono::seconds(60));
    ASSERT_TRUE(took.has_value()) << cluster.last_error();
    std::printf("[ info ] failover took %lld ms\n", static_cast<long long>(took->count()));
    const int primary = cluster.Primary();
    EXPECT_TRUE(primary == 1 || primary == 2) << primary << " " << cluster.last_error();

    // Right after the promotion the new primary runs alone (wait_primary), until the remaining
    // standby follows it: writes commit without waiting for a standby.
    std::printf("[ info ] new primary node%d, synchronous_standby_names = '%s'\n", primary + 1,
                QueryValue(cluster.Uri(), "SHOW synchronous_standby_names").c_str());
    const auto insert = Clock::now();
    ASSERT_TRUE(cluster.Exec("INSERT INTO t VALUES (2)")) << cluster.last_error();
    std::printf("[ info ] first insert on the new primary took %lld ms\n", MsSince(insert));
    const auto sync = cluster.WaitForSync(std::chrono::seconds(60));
    ASSERT_TRUE(sync.has_value()) << cluster.last_error();
    std::printf("[ info ] synchronous again %lld ms later, synchronous_standby_names = '%s'\n",
                static_cast<long long>(sync->count()),
                QueryValue(cluster.Uri(), "SHOW synchronous_standby_names").c_str());
    EXPECT_EQ(QueryValue(cluster.Uri(), "SELECT string_agg(a::text, ',' ORDER BY a) FROM t"),
              "1,2");
    EXPECT_EQ(QueryValue(cluster.Uri(), "SELECT inet_server_port()"),
              std::to_string(cluster.node_port(primary)));
    // The remaining standby (1 + 2 - primary) follows the new primary; a synchronous commit
    // waits for the standby's flush, not its replay, hence the retries.
    std::string standby_rows;
    for (int i = 0; i < 100 && standby_rows != "2"; ++i) {
      if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      standby_rows = QueryValue(cluster.NodeUri(3 - primary), "SELECT count(*) FROM t");
    }
    EXPECT_EQ(standby_rows, "2");

    EXPECT_FALSE(cluster.Exec("SELECT * FROM no_such_table"));
    EXPECT_NE(cluster.last_error().find("no_such_table"), std::string::npos)
        << cluster.last_error();
    const auto stop = Clock::now();
    pids = ProcessesIn(dir);  // those of the nodes still running
    holder.reset();
    std::printf("[ info ] stop took %lld ms\n", MsSince(stop));
  }
  for (pid_t p : pids) EXPECT_FALSE(Alive(p)) << Describe(p);
  EXPECT_TRUE(ProcessesIn(dir).empty());
  for (const std::string& uri : node_uris) EXPECT_FALSE(Connects(uri)) << uri;
  EXPECT_FALSE(Connects(monitor_uri));
  EXPECT_FALSE(std::filesystem::exists(dir));
}

// A test process that dies without running the destructor (a crash, a timeout's SIGKILL)
// leaves nothing behind either: its guardian kills what the death signal does not reach.
TEST(PgHaClusterTest, KilledTestProcessLeavesNothingBehind) {
  // The child process below runs a whole Start() after fork(): safe only without other threads
  // (ctest runs each test in a process of its own).
  if (ThreadCount() != 1) GTEST_SKIP() << "the test binary has other threads running";
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    auto* cluster = new PgHaCluster;  // never destroyed
    const std::string dir = (cluster->Start() ? cluster->dir() : "") + "\n";
    [[maybe_unused]] ssize_t n = ::write(fds[1], dir.data(), dir.size());
    ::raise(SIGKILL);
  }
  ::close(fds[1]);
  std::string dir;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) dir.append(buf, n);
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  if (!dir.empty() && dir.back() == '\n') dir.pop_back();
  ASSERT_FALSE(dir.empty()) << "Start() failed in the child process";

  const auto start = Clock::now();
  while ((!ProcessesIn(dir).empty() || std::filesystem::exists(dir)) &&
         Clock::now() - start < std::chrono::seconds(30)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::printf("[ info ] the guardian cleaned up in %lld ms\n", MsSince(start));
  for (pid_t p : ProcessesIn(dir)) ADD_FAILURE() << "left behind: " << Describe(p);
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(PgHaClusterTest, UnstartedClusterFailsCleanly) {
  PgHaCluster cluster;
  EXPECT_EQ(cluster.Primary(), -1);
  EXPECT_FALSE(cluster.KillNode(0));
  EXPECT_FALSE(cluster.KillNode(7));
  EXPECT_FALSE(cluster.last_error().empty());
  EXPECT_TRUE(cluster.SupervisorPids().empty());
}

}  // namespace
}  // namespace herald::pgtest

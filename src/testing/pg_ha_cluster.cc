#include "testing/pg_ha_cluster.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <locale.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <sstream>
#include <string_view>
#include <thread>
#include <utility>

extern char** environ;

namespace herald::pgtest {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr char kBinDir[] = "/usr/lib/postgresql/15/bin";
constexpr char kPgAutoCtl[] = "/usr/bin/pg_autoctl";
constexpr milliseconds kStopGrace{10'000};
constexpr milliseconds kPoll{200};
constexpr milliseconds kQueryTimeout{10'000};
constexpr milliseconds kExecTimeout{30'000};

// Failure detection for tests (all reloadable). pg_auto_failover's defaults (health checks every
// 5 s, a node unhealthy after 20 s, 30 s primary demote timeout) make a failover take ~30-60 s;
// with these it takes ~6-12 s, of which ~2 s are the demote timeout.
constexpr std::pair<const char*, int> kMonitorSettings[] = {
    {"pgautofailover.health_check_period", 1000},
    {"pgautofailover.health_check_timeout", 1000},
    {"pgautofailover.health_check_max_retries", 1},
    {"pgautofailover.health_check_retry_delay", 500},
    {"pgautofailover.node_considered_unhealthy_timeout", 2000},
    {"pgautofailover.primary_demote_timeout", 3000},
    // No failover in the first 10 s after the monitor's postgres started, by default: a test
    // that kills the primary right after Start() would wait for that too.
    {"pgautofailover.startup_grace_period", 1},
};

// The guardian, run by /bin/sh with the temporary directory as $1 and "keep" or "remove" as $2.
// Its stdin is a pipe from the test process: "done" once the cluster is stopped, EOF when the
// test process died first. The supervisors die with the test process (PR_SET_PDEATHSIG), but
// their services and postgres do not; then the guardian SIGKILLs every process of its user that
// works in the directory, until there is none, and removes the directory.
constexpr char kGuardianScript[] = R"sh(
while read -r line; do
  [ "$line" = done ] && exit 0
done
round=0
while [ $round -lt 20 ]; do
  round=$((round + 1))
  found=
  for p in /proc/[0-9]*; do
    cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
    case $cwd in
      "$1" | "$1"/*) kill -KILL "${p#/proc/}" 2>/dev/null && found=1 ;;
    esac
  done
  [ -n "$found" ] || break
  sleep 0.2
done
[ "$2" = keep ] || rm -rf -- "$1"
)sh";

std::string ErrnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

std::string TrimRight(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string ExitText(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

off_t FileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

// The last `max_bytes` of `path`, whole lines only.
std::string LogTail(const std::string& path, size_t max_bytes = 2500) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "(no log at " + path + ")";
  const off_t start = std::max<off_t>(0, FileSize(path) - static_cast<off_t>(max_bytes));
  in.seekg(start);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (start > 0) {
    const size_t nl = text.find('\n');
    text = "..." + (nl == std::string::npos ? text : text.substr(nl));
  }
  text = TrimRight(std::move(text));
  return text.empty() ? "(log " + path + " is empty)" : text;
}

long long Ms(Clock::duration d) { return std::chrono::duration_cast<milliseconds>(d).count(); }

// initdb refuses a locale the C library does not have; C.UTF-8 is missing on some systems.
std::string ClusterLocale() {
  if (locale_t l = ::newlocale(LC_ALL_MASK, "C.UTF-8", static_cast<locale_t>(nullptr))) {
    ::freelocale(l);
    return "C.UTF-8";
  }
  return "C";
}

// Whether `uid`/`gid` may enter every directory on the way to `dir`.
bool Traversable(const fs::path& dir, uid_t uid, gid_t gid) {
  fs::path p;
  for (const fs::path& part : fs::absolute(dir)) {
    p /= part;
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return false;
    const mode_t bit = st.st_uid == uid ? S_IXUSR : st.st_gid == gid ? S_IXGRP : S_IXOTH;
    if ((st.st_mode & bit) == 0) return false;
  }
  return true;
}

uint16_t PickFreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  uint16_t port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// A value in a libpq keyword/value connection string.
std::string ConnValue(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string PercentEncode(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

struct ConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultCloser {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Conn = std::unique_ptr<PGconn, ConnCloser>;
using Rows = std::vector<std::vector<std::string>>;

// Runs `sql` on a new connection, for at most `timeout` once connected (then the query is
// cancelled). The rows of the last result that has any go to `rows`, the port of the server
// that answered to `port`. false with `*error` when the connection or any statement fails.
bool RunSql(const std::string& conninfo, const std::string& sql, milliseconds timeout, Rows* rows,
            std::string* error, int* port = nullptr) {
  Conn conn(PQconnectdb(conninfo.c_str()));
  if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
    *error = "connect: " + (conn == nullptr ? std::string("out of memory")
                                            : TrimRight(PQerrorMessage(conn.get())));
    return false;
  }
  PGconn* c = conn.get();
  PQsetNoticeProcessor(
      c, [](void*, const char*) {}, nullptr);  // no NOTICE noise
  if (port != nullptr) *port = std::atoi(PQport(c));
  if (PQsendQuery(c, sql.c_str()) == 0) {
    *error = TrimRight(PQerrorMessage(c));
    return false;
  }
  const auto deadline = Clock::now() + timeout;
  std::string first_error;
  for (;;) {
    while (PQisBusy(c) != 0) {
      const auto left = deadline - Clock::now();
      if (left <= Clock::duration::zero()) {
        if (PGcancel* cancel = PQgetCancel(c); cancel != nullptr) {
          char buf[256];
          PQcancel(cancel, buf, sizeof buf);
          PQfreeCancel(cancel);
        }
        const std::string shown = sql.size() > 200 ? sql.substr(0, 200) + "..." : sql;
        *error = "`" + shown + "` did not finish within " + std::to_string(timeout.count()) +
                 " ms (cancelled)";
        return false;
      }
      pollfd p{PQsocket(c), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<long long>(Ms(left) + 1, 100)));
      if (PQconsumeInput(c) == 0) {
        *error = TrimRight(PQerrorMessage(c));
        return false;
      }
    }
    std::unique_ptr<PGresult, ResultCloser> r(PQgetResult(c));
    if (r == nullptr) break;
    const ExecStatusType st = PQresultStatus(r.get());
    if (st == PGRES_TUPLES_OK && rows != nullptr) {
      rows->clear();
      for (int i = 0; i < PQntuples(r.get()); ++i) {
        auto& row = rows->emplace_back();
        for (int j = 0; j < PQnfields(r.get()); ++j) row.emplace_back(PQgetvalue(r.get(), i, j));
      }
    } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && first_error.empty()) {
      const std::string shown = sql.size() > 200 ? sql.substr(0, 200) + "..." : sql;
      first_error = "`" + shown + "` failed: " + TrimRight(PQresultErrorMessage(r.get()));
    }
  }
  if (!first_error.empty()) *error = first_error;
  return first_error.empty();
}

// Who the children run as, and what they run. Everything is prepared before fork: the test
// binary has threads, so the child may only make async-signal-safe calls until exec.
struct Command {
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::string cwd;
  int stdin_fd = -1;  // the caller's; -1: /dev/null
  bool new_session = false;
  bool die_with_parent = true;
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

// What the child writes to the report pipe when a step before exec fails.
struct ChildFailure {
  int step;
  int err;
};
constexpr const char* kChildSteps[] = {
    "dup2",          "chdir", "setsid", "setgroups", "setgid", "setuid", "prctl(PR_SET_PDEATHSIG)",
    "parent exited", "execve"};

[[noreturn]] void RunChild(const Command& cmd, int in_fd, int log_fd, int report_fd, pid_t parent) {
  auto fail = [report_fd](int step) {
    const ChildFailure f{step, errno};
    [[maybe_unused]] ssize_t n = ::write(report_fd, &f, sizeof f);
    ::_exit(127);
  };
  // The test binary may block or ignore signals (Herald ignores SIGPIPE); exec keeps both.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < 32; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
  }
  if (::dup2(in_fd, 0) < 0 || ::dup2(log_fd, 1) < 0 || ::dup2(log_fd, 2) < 0) fail(0);
  // Descriptors of the test (a listening socket, say) must not live on in the servers.
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = 3; fd < 4096; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  if (::chdir(cmd.cwd.c_str()) != 0) fail(1);
  // Its own session and process group, which KillNode() and the destructor signal as a whole.
  if (cmd.new_session && ::setsid() < 0) fail(2);
  if (cmd.switch_user) {
    if (::setgroups(0, nullptr) != 0) fail(3);
    if (::setgid(cmd.gid) != 0) fail(4);
    if (::setuid(cmd.uid) != 0) fail(5);
  }
  // After setuid, which clears the death signal. It follows the thread that forked.
  if (cmd.die_with_parent) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(6);
    if (::getppid() != parent) {  // the parent died before prctl: nobody would stop us
      errno = 0;
      fail(7);
    }
  }
  ::execve(cmd.argv[0], cmd.argv.data(), cmd.envp.data());
  fail(8);
  ::_exit(127);
}

// Forks and execs `cmd` with stdout and stderr on `log_fd`; the pid, or -1 with `*error`.
pid_t Spawn(Command& cmd, int log_fd, std::string* error) {
  for (auto& a : cmd.args) cmd.argv.push_back(a.data());
  cmd.argv.push_back(nullptr);
  for (auto& e : cmd.env) cmd.envp.push_back(e.data());
  cmd.envp.push_back(nullptr);

  const std::string name = fs::path(cmd.args[0]).filename().string();
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    *error = ErrnoText("pipe2");
    return -1;
  }
  const int in_fd = cmd.stdin_fd >= 0 ? cmd.stdin_fd : ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (in_fd < 0) {
    *error = ErrnoText("open /dev/null");
    ::close(report[0]);
    ::close(report[1]);
    return -1;
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) RunChild(cmd, in_fd, log_fd, report[1], parent);
  const int fork_errno = errno;
  ::close(report[1]);
  if (in_fd != cmd.stdin_fd) ::close(in_fd);
  if (pid < 0) {
    ::close(report[0]);
    *error = "fork for " + name + ": " + std::strerror(fork_errno);
    return -1;
  }
  // The pipe closes on exec (EOF) or carries the step that failed.
  ChildFailure failure{};
  ssize_t n;
  do {
    n = ::read(report[0], &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n != static_cast<ssize_t>(sizeof failure)) return pid;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  *error = "could not start " + name + " (" + cmd.args[0] + "): " + kChildSteps[failure.step];
  if (failure.err != 0) *error += ": " + std::string(std::strerror(failure.err));
  if (cmd.switch_user) *error += " (running as uid " + std::to_string(cmd.uid) + ")";
  return -1;
}

// The servers' user owns their logs too (best effort: the open descriptor is what they write to).
void GiveTo(int fd, uid_t uid, gid_t gid) {
  if (::fchown(fd, uid, gid) != 0) {
  }
}

// State and process group of `pid` from /proc/PID/stat; nullopt when it is gone.
struct ProcStat {
  char state;
  pid_t pgrp;
};
std::optional<ProcStat> ReadProcStat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  const size_t paren = line.rfind(')');  // the command name may hold anything
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(paren + 1));
  ProcStat st{};
  pid_t ppid = 0;
  if (!(rest >> st.state >> ppid >> st.pgrp)) return std::nullopt;
  return st;
}

// Whether `pid` is gone or a zombie (killed, waiting for a parent that may never reap it).
bool Dead(pid_t pid) {
  const auto st = ReadProcStat(pid);
  return !st || st->state == 'Z' || st->state == 'X';
}

// The live processes of user `uid` for which `match(pid, stat)` holds.
template <typename Match>
std::vector<pid_t> FindProcesses(uid_t uid, Match match) {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* e = ::readdir(proc)) {
    char* end = nullptr;
    const long n = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || n <= 0) continue;
    const pid_t pid = static_cast<pid_t>(n);
    struct stat st {};
    if (::stat(("/proc/" + std::to_string(pid)).c_str(), &st) != 0 || st.st_uid != uid) continue;
    const auto ps = ReadProcStat(pid);
    if (ps && ps->state != 'Z' && ps->state != 'X' && match(pid, *ps)) out.push_back(pid);
  }
  ::closedir(proc);
  return out;
}

// The processes of user `uid` whose working directory is `dir` or below it: the servers chdir
// to their data directory (backends inherit it), pg_autoctl starts in the temporary directory.
// Nobody else works in a fresh mkdtemp directory.
std::vector<pid_t> ProcessesIn(const std::string& dir, uid_t uid) {
  return FindProcesses(uid, [&](pid_t pid, const ProcStat&) {
    char buf[4096];
    const ssize_t n =
        ::readlink(("/proc/" + std::to_string(pid) + "/cwd").c_str(), buf, sizeof buf - 1);
    if (n <= 0) return false;  // also while exiting: hence the callers wait for what they killed
    const std::string cwd(buf, static_cast<size_t>(n));
    return cwd == dir || cwd.starts_with(dir + "/");
  });
}

// The processes of user `uid` in process group `pgid`. While one exists, the kernel does not
// hand out `pgid` again, so they are what our supervisor left behind.
std::vector<pid_t> ProcessesInGroup(pid_t pgid, uid_t uid) {
  return FindProcesses(uid, [&](pid_t, const ProcStat& st) { return st.pgrp == pgid; });
}

// Waits until `pid` (a child of ours) exits and reaps it; false after `timeout`.
bool Reap(pid_t pid, milliseconds timeout, int* status) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const pid_t r = ::waitpid(pid, status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;  // ECHILD: reaped elsewhere
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
}

bool IsPrimaryState(const std::string& s) {
  return s == "primary" || s == "wait_primary" || s == "single";
}

}  // namespace

PgHaCluster::PgHaCluster() = default;

PgHaCluster::~PgHaCluster() {
  if (owner_ != ::getpid()) return;  // a fork()ed child: the servers and directory are not ours
  StopAll();
  if (guardian_fd_ >= 0) {  // all stopped: the guardian may go
    [[maybe_unused]] ssize_t n = ::write(guardian_fd_, "done\n", 5);
    ::close(guardian_fd_);
  }
  if (guardian_pid_ > 0) {
    int status = 0;
    if (!Reap(guardian_pid_, milliseconds(2000), &status)) {
      ::kill(guardian_pid_, SIGKILL);
      Reap(guardian_pid_, kStopGrace, &status);
    }
  }
  if (keep_) {
    std::fprintf(stderr, "PgHaCluster: kept %s\n", dir_.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

bool PgHaCluster::StartGuardian() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Fail(ErrnoText("pipe2"));
  const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (null_fd < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return Fail(ErrnoText("open /dev/null"));
  }
  Command cmd;
  cmd.args = {"/bin/sh", "-c", kGuardianScript, "pgha-guardian", dir_, keep_ ? "keep" : "remove"};
  cmd.env = {"PATH=/usr/bin:/bin"};
  cmd.cwd = "/";  // not in dir_, which the sweeps go through
  cmd.stdin_fd = fds[0];
  cmd.new_session = true;  // no terminal's SIGINT: it must outlive the test process
  cmd.die_with_parent = false;
  cmd.switch_user = switch_user_;  // as nobody, it can signal nobody's processes only
  cmd.uid = uid_;
  cmd.gid = gid_;
  std::string error;
  guardian_pid_ = Spawn(cmd, null_fd, &error);
  ::close(null_fd);
  ::close(fds[0]);
  if (guardian_pid_ < 0) {
    ::close(fds[1]);
    return Fail("guardian: " + error);
  }
  guardian_fd_ = fds[1];
  return true;
}

bool PgHaCluster::Fail(std::string message) {
  last_error_ = std::move(message);
  return false;
}

bool PgHaCluster::FailWithLogs(std::string message) {
  for (const Server* s : {&monitor_, &nodes_[0], &nodes_[1], &nodes_[2]}) {
    if (s->started) message += "\n--- " + s->log + " ---\n" + LogTail(s->log);
  }
  return Fail(std::move(message));
}

std::vector<pid_t> PgHaCluster::SupervisorPids() const {
  std::vector<pid_t> out;
  for (const Server* s : {&monitor_, &nodes_[0], &nodes_[1], &nodes_[2]}) {
    if (s->pid > 0) out.push_back(s->pid);
  }
  return out;
}

bool PgHaCluster::Start(std::chrono::seconds timeout) {
  if (!dir_.empty()) return Fail("Start() called twice");
  last_error_.clear();
  const auto deadline = Clock::now() + timeout;
  for (const std::string& bin : {std::string(kPgAutoCtl), std::string(kBinDir) + "/initdb",
                                 std::string(kBinDir) + "/pg_ctl"}) {
    if (::access(bin.c_str(), X_OK) != 0) {
      return Fail("no " + bin + " (packages postgresql-15 and postgresql-15-auto-failover)");
    }
  }
  {
    passwd pw{};
    passwd* found = nullptr;
    char buf[4096];
    if (::geteuid() == 0) {  // PostgreSQL refuses to run as root
      if (::getpwnam_r("nobody", &pw, buf, sizeof buf, &found) != 0 || found == nullptr) {
        return Fail("running as root, which PostgreSQL refuses, and there is no user `nobody`");
      }
      switch_user_ = true;
    } else if (::getpwuid_r(::geteuid(), &pw, buf, sizeof buf, &found) != 0 || found == nullptr) {
      return Fail("no user name for uid " + std::to_string(::geteuid()));
    }
    user_ = pw.pw_name;
    uid_ = pw.pw_uid;
    gid_ = pw.pw_gid;
  }

  const char* tmp = std::getenv("TMPDIR");
  std::string base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  if (switch_user_ && !Traversable(base, uid_, gid_)) base = "/tmp";  // e.g. TMPDIR=/root/tmp
  std::string templ = base + "/herald-pgha-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return Fail(ErrnoText("mkdtemp " + templ));
  dir_ = templ;
  owner_ = ::getpid();
  for (const std::string& d : {dir_, dir_ + "/config", dir_ + "/data", dir_ + "/run"}) {
    if (d != dir_ && ::mkdir(d.c_str(), 0700) != 0) return Fail(ErrnoText("mkdir " + d));
    if (::chmod(d.c_str(), 0700) != 0) return Fail(ErrnoText("chmod " + d));
    if (switch_user_ && ::chown(d.c_str(), uid_, gid_) != 0) {
      return Fail(ErrnoText("chown " + d + " to nobody"));
    }
  }
  if (switch_user_ && !Traversable(dir_, uid_, gid_)) {
    return Fail("user nobody cannot reach " + dir_ + "; set TMPDIR to a directory it can enter");
  }
  const char* keep = std::getenv("HERALD_PGHA_KEEP");
  keep_ = keep != nullptr && std::strcmp(keep, "1") == 0;
  if (!StartGuardian()) return false;
  // The Unix socket lives in dir_/run; sun_path holds 107 characters.
  if ((dir_ + "/run/.s.PGSQL.65535").size() > 107) {
    return Fail("the temporary directory " + dir_ + " is too deep for a Unix socket; set TMPDIR");
  }

  // Without PGHOST, pg_autoctl and psql would look for sockets in /var/run/postgresql; with the
  // caller's PATH, HOME or XDG_* (root's), pg_autoctl probes places nobody may not enter.
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view v(*e);
    if (v.starts_with("PG") || v.starts_with("PATH=") || v.starts_with("HOME=") ||
        v.starts_with("XDG_")) {
      continue;
    }
    env_.emplace_back(v);
  }
  env_.push_back(std::string("PATH=") + kBinDir + ":/usr/bin:/bin");
  env_.push_back("HOME=" + dir_);
  env_.push_back("XDG_CONFIG_HOME=" + dir_ + "/config");
  env_.push_back("XDG_DATA_HOME=" + dir_ + "/data");
  env_.push_back("XDG_RUNTIME_DIR=" + dir_ + "/run");
  env_.push_back("PGHOST=" + dir_ + "/run");

  std::set<uint16_t> ports;
  for (int attempt = 0; attempt < 50 && ports.size() < 1 + kNodes; ++attempt) {
    if (const uint16_t p = PickFreePort(); p != 0) ports.insert(p);
  }
  if (ports.size() < 1 + kNodes) return Fail(ErrnoText("no free ports on 127.0.0.1"));
  auto port = ports.begin();
  monitor_.name = "monitor";
  monitor_.port = *port++;
  for (int i = 0; i < kNodes; ++i) {
    nodes_[i].name = "node" + std::to_string(i + 1);
    nodes_[i].port = *port++;
  }
  for (Server* s : {&monitor_, &nodes_[0], &nodes_[1], &nodes_[2]}) {
    s->pgdata = dir_ + "/" + s->name;
    s->log = dir_ + "/" + s->name + ".log";
  }

  // pg_autoctl leaves unix_socket_directories alone, and Debian's default, /var/run/postgresql,
  // is not writable by nobody: the servers it creates from scratch would not start. So the
  // monitor and node1 run on clusters made here; the standbys are pg_basebackup copies of node1,
  // postgresql.conf included.
  if (!InitDb({&monitor_, &nodes_[0]}, deadline)) return false;

  const std::vector<std::string> common = {"--hostname", "127.0.0.1", "--listen", "127.0.0.1",
                                           "--auth",     "trust",     "--no-ssl"};
  auto with_common = [&](std::vector<std::string> args, const Server& s) {
    args.insert(args.end(), {"--pgdata", s.pgdata, "--pgport", std::to_string(s.port)});
    args.insert(args.end(), common.begin(), common.end());
    return args;
  };
  std::vector<std::string> monitor_args = with_common({"create", "monitor"}, monitor_);
  monitor_args.emplace_back("--run");
  if (!Launch(monitor_, monitor_args)) return false;
  if (!WaitFor("the monitor to accept connections", deadline,
               [&](std::string* status) { return NodeStates(status).has_value(); })) {
    return false;
  }
  if (!Tune(deadline)) return false;

  const std::string monitor_uri =
      "postgres://autoctl_node@127.0.0.1:" + std::to_string(monitor_.port) + "/pg_auto_failover";
  auto launch_node = [&](Server& s) {
    std::vector<std::string> args = with_common({"create", "postgres"}, s);
    args.insert(args.end(), {"--monitor", monitor_uri, "--run"});
    return Launch(s, args);
  };
  // node1 first, so that it becomes the primary; then the standbys, which copy it.
  if (!launch_node(nodes_[0])) return false;
  if (!WaitFor("node1 to be the primary", deadline, [&](std::string* status) {
        const auto states = NodeStates(status);
        if (!states) return false;
        *status = StateText(*states);
        return states->size() == 1 && (*states)[0].port == nodes_[0].port &&
               IsPrimaryState((*states)[0].reported) && (*states)[0].reported == (*states)[0].goal;
      })) {
    return false;
  }
  // pg_basebackup starts with a spread checkpoint, which naps 100 ms per dirty buffer: seconds
  // after initdb and the extension setup, unless an immediate checkpoint has written them.
  if (std::string error;
      !RunSql(NodeSocketConnInfo(0), "CHECKPOINT", kQueryTimeout * 3, nullptr, &error)) {
    return FailWithLogs("CHECKPOINT on node1: " + error);
  }
  if (!launch_node(nodes_[1]) || !launch_node(nodes_[2])) return false;
  if (!WaitFor("one primary and two secondaries", deadline,
               [&](std::string* status) { return Settled(status, /*check_sync=*/false); })) {
    return false;
  }
  // Strict durability. The monitor sets number_sync_standbys = 1 by itself once two standbys
  // take part in the replication quorum; should it not have, set it (`pg_autoctl set formation
  // number-sync-standbys 1` rejects any value in pg_autoctl 2.0: "is not valid").
  Rows rows;
  if (std::string error;
      !RunSql(MonitorConnInfo(),
              "SELECT number_sync_standbys FROM pgautofailover.formation "
              "WHERE formationid = 'default'",
              kQueryTimeout, &rows, &error) ||
      rows.size() != 1 ||
      (rows[0][0] != "1" &&
       !RunSql(MonitorConnInfo(),
               "SELECT pgautofailover.set_formation_number_sync_standbys('default', 1)",
               kQueryTimeout, nullptr, &error))) {
    return FailWithLogs("set number_sync_standbys: " + error);
  }
  if (!WaitFor("synchronous replication to two standbys", deadline,
               [&](std::string* status) { return Settled(status, /*check_sync=*/true); })) {
    return false;
  }
  if (!Exec("CREATE TEMP TABLE herald_pgha_probe (x int); INSERT INTO herald_pgha_probe VALUES "
            "(1)")) {
    return FailWithLogs("the primary does not take writes: " + last_error_);
  }
  last_error_.clear();
  return true;
}

bool PgHaCluster::Settled(std::string* status, bool check_sync) {
  const auto states = NodeStates(status);
  if (!states) return false;
  *status = StateText(*states);
  int primary = -1;
  int running = 0;
  for (int i = 0; i < kNodes; ++i) running += nodes_[i].pid > 0 ? 1 : 0;
  int seen = 0;
  for (const NodeState& n : *states) {
    const int i = IndexOfPort(n.port);
    if (i < 0 || nodes_[i].pid <= 0) continue;  // a killed node stays registered
    ++seen;
    if (n.reported != n.goal) return false;
    if (n.reported == "primary" && primary < 0) {
      primary = i;
    } else if (n.reported != "secondary") {
      return false;
    }
  }
  if (primary < 0 || seen != running) return false;
  if (!check_sync) return true;
  Rows r;
  std::string e;
  if (!RunSql(MonitorConnInfo(),
              "SELECT number_sync_standbys FROM pgautofailover.formation "
              "WHERE formationid = 'default'",
              kQueryTimeout, &r, &e) ||
      r.size() != 1) {
    *status += "; " + e;
    return false;
  }
  const std::string number_sync_standbys = r[0][0];
  if (!RunSql(NodeUri(primary),
              "SELECT current_setting('synchronous_standby_names'), "
              "(SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum'))",
              kQueryTimeout, &r, &e) ||
      r.size() != 1) {
    *status += "; " + e;
    return false;
  }
  *status += "; number_sync_standbys = " + number_sync_standbys + ", on " + nodes_[primary].name +
             ": synchronous_standby_names = '" + r[0][0] + "', " + r[0][1] +
             " synchronous standbys";
  return number_sync_standbys == "1" && r[0][0].starts_with("ANY 1 (") &&
         std::atoi(r[0][1].c_str()) == running - 1;
}

std::optional<milliseconds> PgHaCluster::WaitForSync(std::chrono::seconds timeout) {
  const auto start = Clock::now();
  if (dir_.empty()) {
    Fail("WaitForSync() before Start()");
    return std::nullopt;
  }
  if (!WaitFor("a primary with synchronous standbys", start + timeout,
               [&](std::string* status) { return Settled(status, /*check_sync=*/true); })) {
    return std::nullopt;
  }
  last_error_.clear();
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start);
}

bool PgHaCluster::InitDb(const std::vector<Server*>& servers, Clock::time_point deadline) {
  struct Run {
    Server* server;
    std::string log;
    pid_t pid;
  };
  std::vector<Run> runs;
  std::string error;
  for (Server* s : servers) {
    Run run{s, dir_ + "/" + s->name + "-initdb.log", -1};
    const int log_fd = ::open(run.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log_fd < 0) {
      error = ErrnoText("open " + run.log);
      break;
    }
    if (switch_user_) GiveTo(log_fd, uid_, gid_);
    Command cmd;
    // No -U: pg_autoctl expects the OS user as the superuser.
    cmd.args = {std::string(kBinDir) + "/initdb", "-D", s->pgdata, "--auth=trust"};
    cmd.args.insert(cmd.args.end(), {"-E", "UTF8", "--locale=" + ClusterLocale(), "--no-sync"});
    cmd.env = env_;
    cmd.cwd = dir_;
    cmd.switch_user = switch_user_;
    cmd.uid = uid_;
    cmd.gid = gid_;
    run.pid = Spawn(cmd, log_fd, &error);
    ::close(log_fd);
    if (run.pid < 0) break;
    runs.push_back(std::move(run));
  }
  // Reaps every initdb started, even after a failure.
  for (Run& run : runs) {
    int status = 0;
    const auto left = std::max(milliseconds(0),
                               std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
    if (!Reap(run.pid, left, &status)) {
      ::kill(run.pid, SIGKILL);
      Reap(run.pid, kStopGrace, &status);
      if (error.empty())
        error = "initdb of " + run.server->name + " timed out: " + LogTail(run.log);
    } else if ((!WIFEXITED(status) || WEXITSTATUS(status) != 0) && error.empty()) {
      error = "initdb of " + run.server->name + " failed (" + ExitText(status) +
              "): " + LogTail(run.log);
    }
  }
  if (!error.empty()) return Fail(error);
  for (Server* s : servers) {
    const std::string conf = s->pgdata + "/postgresql.conf";
    std::ofstream out(conf, std::ios::app);
    out << "\n# PgHaCluster: the Unix socket in the temporary directory, not /var/run/postgresql\n"
        << "unix_socket_directories = '" << dir_ << "/run'\n";
    out.close();
    if (!out) return Fail("could not append to " + conf);
  }
  return true;
}

bool PgHaCluster::Launch(Server& server, std::vector<std::string> args) {
  const int log_fd = ::open(server.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) return Fail(ErrnoText("open " + server.log));
  if (switch_user_) GiveTo(log_fd, uid_, gid_);
  Command cmd;
  cmd.args = {kPgAutoCtl};
  cmd.args.insert(cmd.args.end(), args.begin(), args.end());
  cmd.env = env_;
  cmd.cwd = dir_;
  cmd.new_session = true;
  cmd.switch_user = switch_user_;
  cmd.uid = uid_;
  cmd.gid = gid_;
  std::string error;
  server.pid = Spawn(cmd, log_fd, &error);
  ::close(log_fd);
  if (server.pid < 0) return Fail(error);
  server.pgid = server.pid;  // setsid() in the child
  server.started = true;
  return true;
}

std::string PgHaCluster::ExitedSupervisor() {
  for (Server* s : {&monitor_, &nodes_[0], &nodes_[1], &nodes_[2]}) {
    if (s->pid <= 0) continue;
    int status = 0;
    const pid_t r = ::waitpid(s->pid, &status, WNOHANG);
    if (r == s->pid || (r < 0 && errno == ECHILD)) {
      s->pid = -1;
      return "pg_autoctl of " + s->name + " exited (" + (r > 0 ? ExitText(status) : "reaped") + ")";
    }
  }
  return "";
}

template <typename Ready>
bool PgHaCluster::WaitFor(const std::string& what, Clock::time_point deadline, Ready ready) {
  const auto start = Clock::now();
  std::string status;
  std::string message;
  for (;;) {
    status.clear();
    if (ready(&status)) return true;
    if (const std::string exited = ExitedSupervisor(); !exited.empty()) {
      message = "while waiting for " + what;
      message += ": " + exited;
      break;
    }
    if (Clock::now() >= deadline) {
      message = "timed out waiting for " + what + " (waited ";
      message += std::to_string(Ms(Clock::now() - start)) + " ms)";
      break;
    }
    std::this_thread::sleep_for(kPoll);
  }
  message += " (last: " + status + ")";
  return FailWithLogs(std::move(message));
}

std::string PgHaCluster::MonitorConnInfo() const {
  return "host=" + ConnValue(dir_ + "/run") + " port=" + std::to_string(monitor_.port) +
         " dbname=pg_auto_failover user=" + ConnValue(user_) + " connect_timeout=2";
}

bool PgHaCluster::Tune(Clock::time_point deadline) {
  // The OS user is the monitor's superuser (autoctl_node is not), over the Unix socket.
  std::string error;
  for (const auto& [name, value] : kMonitorSettings) {
    const std::string sql = "ALTER SYSTEM SET " + std::string(name) + " = " + std::to_string(value);
    if (!RunSql(MonitorConnInfo(), sql, kQueryTimeout, nullptr, &error)) {
      return FailWithLogs("tune the monitor: " + error);
    }
  }
  if (!RunSql(MonitorConnInfo(), "SELECT pg_reload_conf()", kQueryTimeout, nullptr, &error)) {
    return FailWithLogs("tune the monitor: " + error);
  }
  std::string names;
  for (const auto& [name, value] : kMonitorSettings) {
    names += std::string(names.empty() ? "" : ", ") + "'" + name + "'";
  }
  // The reload is asynchronous: wait until new sessions see every value.
  return WaitFor("the monitor's failover settings", deadline, [&](std::string* status) {
    Rows rows;
    if (!RunSql(
            MonitorConnInfo(),
            "SELECT name, setting, pending_restart FROM pg_settings WHERE name IN (" + names + ")",
            kQueryTimeout, &rows, status)) {
      return false;
    }
    int matching = 0;
    for (const auto& row : rows) {
      for (const auto& [name, value] : kMonitorSettings) {
        if (row[0] == name && row[1] == std::to_string(value) && row[2] == "f") ++matching;
      }
      *status += row[0] + "=" + row[1] + (row[2] == "t" ? " (pending restart) " : " ");
    }
    return matching == static_cast<int>(std::size(kMonitorSettings));
  });
}

std::optional<std::vector<PgHaCluster::NodeState>> PgHaCluster::NodeStates(std::string* error) {
  if (monitor_.pid <= 0) {
    *error = "the monitor does not run";
    return std::nullopt;
  }
  Rows rows;
  if (!RunSql(MonitorConnInfo(),
              "SELECT nodeport, reportedstate::text, goalstate::text FROM pgautofailover.node "
              "ORDER BY nodeid",
              kQueryTimeout, &rows, error)) {
    return std::nullopt;
  }
  std::vector<NodeState> states;
  for (const auto& row : rows) states.push_back({std::atoi(row[0].c_str()), row[1], row[2]});
  return states;
}

std::string PgHaCluster::StateText(const std::vector<NodeState>& states) const {
  std::string out;
  for (const NodeState& n : states) {
    const int i = IndexOfPort(n.port);
    out += (out.empty() ? "" : ", ") + (i >= 0 ? nodes_[i].name : std::to_string(n.port)) + " " +
           n.reported + (n.goal == n.reported ? "" : "->" + n.goal);
  }
  return out.empty() ? "no nodes registered" : out;
}

int PgHaCluster::IndexOfPort(int port) const {
  for (int i = 0; i < kNodes; ++i) {
    if (nodes_[i].port == port) return i;
  }
  return -1;
}

std::string PgHaCluster::Uri() const {
  std::string hosts;
  for (const Server& n : nodes_) {
    hosts += (hosts.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(n.port);
  }
  return "postgresql://" + hosts +
         "/postgres?target_session_attrs=read-write&user=" + PercentEncode(user_) +
         "&connect_timeout=2";
}

std::string PgHaCluster::NodeSocketConnInfo(int index) const {
  return "host=" + ConnValue(dir_ + "/run") + " port=" + std::to_string(nodes_.at(index).port) +
         " dbname=postgres user=" + ConnValue(user_) + " connect_timeout=2";
}

std::string PgHaCluster::NodeUri(int index) const {
  return "postgresql://127.0.0.1:" + std::to_string(nodes_.at(index).port) +
         "/postgres?user=" + PercentEncode(user_) + "&connect_timeout=2";
}

int PgHaCluster::Primary() {
  std::string error;
  const auto states = NodeStates(&error);
  if (!states) {
    Fail("query the monitor: " + error);
    return -1;
  }
  for (const NodeState& n : *states) {
    if (IsPrimaryState(n.reported) && n.goal == n.reported) return IndexOfPort(n.port);
  }
  return -1;
}

void PgHaCluster::KillServer(Server& server) {
  if (!server.started) return;
  // Everything of the server: its process group, and the postmaster with its backends, which
  // may be in a session of their own (pg_ctl starts postgres so) but work in the data directory.
  // Listed before the kill: a backend that exits by itself once its postmaster is gone has no
  // readable working directory while it exits, and must be waited for too.
  auto members = [&] {
    std::vector<pid_t> out = ProcessesInGroup(server.pgid, uid_);
    for (pid_t p : ProcessesIn(server.pgdata, uid_)) out.push_back(p);
    return out;
  };
  const std::vector<pid_t> before = members();
  std::set<pid_t> killed(before.begin(), before.end());
  if (server.pid > 0) ::kill(-server.pid, SIGKILL);
  for (pid_t p : before) ::kill(p, SIGKILL);
  if (server.pid > 0) {
    int status = 0;
    Reap(server.pid, kStopGrace, &status);
    server.pid = -1;
  }
  // Returns once all of them are dead, not just signalled.
  const auto deadline = Clock::now() + kStopGrace;
  for (;;) {
    const std::vector<pid_t> left = members();  // forked before the kill reached the parent
    for (pid_t p : left) {
      ::kill(p, SIGKILL);
      killed.insert(p);
    }
    const bool pending = !left.empty() || std::any_of(killed.begin(), killed.end(),
                                                      [](pid_t p) { return !Dead(p); });
    if (!pending || Clock::now() >= deadline) return;
    std::this_thread::sleep_for(milliseconds(10));
  }
}

bool PgHaCluster::KillNode(int index) {
  if (index < 0 || index >= kNodes) return Fail("KillNode(" + std::to_string(index) + ")");
  Server& node = nodes_[index];
  if (node.pid <= 0) return Fail("KillNode(): " + node.name + " does not run");
  KillServer(node);
  if (const auto left = ProcessesIn(node.pgdata, uid_); !left.empty()) {
    return Fail("KillNode(): " + std::to_string(left.size()) + " processes of " + node.name +
                " survived SIGKILL");
  }
  last_error_.clear();
  return true;
}

std::optional<milliseconds> PgHaCluster::WaitForNewPrimary(int old_primary,
                                                           std::chrono::seconds timeout) {
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  if (dir_.empty()) {
    Fail("WaitForNewPrimary() before Start()");
    return std::nullopt;
  }
  std::string status;
  for (;;) {
    const int primary = Primary();
    if (primary < 0) {
      status = last_error_.empty() ? "no primary" : last_error_;
    } else if (primary == old_primary) {
      status = "the monitor still reports " + nodes_[primary].name + " as primary";
    } else {
      Rows rows;
      int port = 0;
      std::string error;
      if (!RunSql(Uri(), "SELECT pg_is_in_recovery()", kQueryTimeout, &rows, &error, &port)) {
        status = nodes_[primary].name + " is primary, but: " + error;
      } else if (port != nodes_[primary].port || rows.size() != 1 || rows[0][0] != "f") {
        status = nodes_[primary].name + " is primary, but a read-write connection reached port " +
                 std::to_string(port);
      } else {
        last_error_.clear();
        return std::chrono::duration_cast<milliseconds>(Clock::now() - start);
      }
    }
    if (Clock::now() >= deadline) {
      std::string states_error;
      const auto states = NodeStates(&states_error);
      FailWithLogs("no new primary after " + std::to_string(timeout.count()) + " s (last: " +
                   status + "; monitor: " + (states ? StateText(*states) : states_error) + ")");
      return std::nullopt;
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
}

bool PgHaCluster::Exec(const std::string& sql) {
  if (dir_.empty()) return Fail("Exec() before Start()");
  std::string error;
  if (!RunSql(Uri(), sql, kExecTimeout, nullptr, &error)) return Fail(error);
  last_error_.clear();
  return true;
}

void PgHaCluster::StopAll() {
  std::vector<Server*> running;
  for (Server* s : {&nodes_[0], &nodes_[1], &nodes_[2], &monitor_}) {
    if (s->pid > 0) {
      // To the supervisor alone, which stops its services (postgres: fast shutdown) and exits.
      // A SIGTERM to the whole group races it: a service that exits first gets restarted, and
      // the restarted one waits ~10 s for a postgres that is stopping.
      ::kill(s->pid, SIGTERM);
      running.push_back(s);
    }
  }
  const auto deadline = Clock::now() + kStopGrace;
  for (Server* s : running) {
    int status = 0;
    const auto left = std::max(milliseconds(0),
                               std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
    if (Reap(s->pid, left, &status)) s->pid = -1;
  }
  // A postgres may still be finishing its shutdown; then SIGKILL to whatever is left.
  for (Server* s : running) {
    while (s->pid < 0 && Clock::now() < deadline &&
           (!ProcessesInGroup(s->pgid, uid_).empty() || !ProcessesIn(s->pgdata, uid_).empty())) {
      std::this_thread::sleep_for(milliseconds(10));
    }
  }
  // Also the servers whose supervisor exited by itself: their postgres may live on.
  for (Server* s : {&nodes_[0], &nodes_[1], &nodes_[2], &monitor_}) KillServer(*s);
  if (dir_.empty()) return;
  const std::vector<pid_t> strays = ProcessesIn(dir_, uid_);
  for (pid_t p : strays) ::kill(p, SIGKILL);
  const auto stray_deadline = Clock::now() + kStopGrace;
  while (Clock::now() < stray_deadline &&
         std::any_of(strays.begin(), strays.end(), [](pid_t p) { return !Dead(p); })) {
    std::this_thread::sleep_for(milliseconds(10));
  }
}

}  // namespace herald::pgtest

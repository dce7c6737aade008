#include "testing/pg_test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <locale.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <thread>
#include <utility>

extern char** environ;

namespace herald::pgtest {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr char kDefaultBinDir[] = "/usr/lib/postgresql/15/bin";
constexpr int kInitDbTimeoutMs = 120'000;
constexpr int kReadyTimeoutMs = 30'000;
constexpr int kStopGraceMs = 10'000;

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

// The last `max_bytes` of what `path` gained after offset `from`, whole lines only.
std::string LogTail(const std::string& path, off_t from = 0, size_t max_bytes = 3000) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "(no log at " + path + ")";
  const off_t size = FileSize(path);
  off_t start = std::max<off_t>(from, size - static_cast<off_t>(max_bytes));
  in.seekg(start);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (start > from) {
    const size_t nl = text.find('\n');
    text = "..." + (nl == std::string::npos ? text : text.substr(nl));
  }
  text = TrimRight(std::move(text));
  return text.empty() ? "(log " + path + " is empty)" : text;
}

// pg_config's answer when it holds initdb and postgres (libpq-dev's pg_config may belong to
// another major version than the server), else the PostgreSQL 15 default.
std::string FindBinDir() {
  auto usable = [](const std::string& dir) {
    return !dir.empty() && ::access((dir + "/initdb").c_str(), X_OK) == 0 &&
           ::access((dir + "/postgres").c_str(), X_OK) == 0;
  };
  std::string dir;
  if (FILE* p = ::popen("pg_config --bindir 2>/dev/null", "r"); p != nullptr) {
    char buf[512];
    while (std::fgets(buf, sizeof buf, p) != nullptr) dir += buf;
    ::pclose(p);
  }
  dir = TrimRight(std::move(dir));
  if (usable(dir)) return dir;
  return usable(kDefaultBinDir) ? kDefaultBinDir : "";
}

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

struct ConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultCloser {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Conn = std::unique_ptr<PGconn, ConnCloser>;

// A connection attempt; the error is libpq's message, empty on success.
std::string TryConnect(const std::string& uri) {
  Conn conn(PQconnectdb(uri.c_str()));
  if (conn != nullptr && PQstatus(conn.get()) == CONNECTION_OK) return "";
  return conn == nullptr ? "out of memory" : TrimRight(PQerrorMessage(conn.get()));
}

// Who the children run as, and what they run. Everything is prepared before fork: the test
// binary has threads, so the child may only make async-signal-safe calls until exec.
struct Command {
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::string cwd;
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

// What the child writes to the report pipe when a step before exec fails.
struct ChildFailure {
  int step;
  int err;
};
constexpr const char* kChildSteps[] = {"dup2",          "chdir",  "setgroups",
                                       "setgid",        "setuid", "prctl(PR_SET_PDEATHSIG)",
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
  // Descriptors of the test (a listening socket, say) must not live on in the server.
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = 3; fd < 4096; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  if (::chdir(cmd.cwd.c_str()) != 0) fail(1);
  if (cmd.switch_user) {
    if (::setgroups(0, nullptr) != 0) fail(2);
    if (::setgid(cmd.gid) != 0) fail(3);
    if (::setuid(cmd.uid) != 0) fail(4);
  }
  // After setuid, which clears the death signal. It follows the thread that forked: a server
  // started from a thread that ends is killed then (hence: start it from the main thread).
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(5);
  if (::getppid() != parent) {  // the parent died before prctl: nobody would stop us
    errno = 0;
    fail(6);
  }
  ::execve(cmd.argv[0], cmd.argv.data(), cmd.envp.data());
  fail(7);
  ::_exit(127);
}

// Forks and execs `cmd` with stdout and stderr on `log_fd`; the pid, or -1 with `*error`.
pid_t Spawn(Command& cmd, int log_fd, std::string* error) {
  for (auto& a : cmd.args) cmd.argv.push_back(a.data());
  cmd.argv.push_back(nullptr);
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "PG", 2) != 0) cmd.env.emplace_back(*e);  // no PGDATA, PGPORT, ...
  }
  for (auto& e : cmd.env) cmd.envp.push_back(e.data());
  cmd.envp.push_back(nullptr);

  const std::string name = fs::path(cmd.args[0]).filename().string();
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    *error = ErrnoText("pipe2");
    return -1;
  }
  const int in_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
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
  ::close(in_fd);
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

// The server's user owns its logs too (best effort: the open descriptor is what it writes to).
void GiveTo(int fd, uid_t uid, gid_t gid) {
  if (::fchown(fd, uid, gid) != 0) {
  }
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

}  // namespace

PgTestServer::PgTestServer(PgTestServerOptions options) : options_(std::move(options)) {}

PgTestServer::~PgTestServer() {
  if (owner_ != ::getpid()) return;  // a fork()ed child: the server and directory are not ours
  Stop(kStopGraceMs);
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

bool PgTestServer::Fail(std::string message) {
  last_error_ = std::move(message);
  return false;
}

bool PgTestServer::Start() {
  if (!dir_.empty()) return Fail("Start() called twice");
  last_error_.clear();
  bin_dir_ = FindBinDir();
  if (bin_dir_.empty()) {
    return Fail(std::string("no PostgreSQL server binaries: neither `pg_config --bindir` nor ") +
                kDefaultBinDir + " holds initdb and postgres");
  }
  if (::geteuid() == 0) {  // PostgreSQL refuses to run as root
    passwd pw{};
    passwd* found = nullptr;
    char buf[4096];
    if (::getpwnam_r("nobody", &pw, buf, sizeof buf, &found) != 0 || found == nullptr) {
      return Fail("running as root, which PostgreSQL refuses, and there is no user `nobody`");
    }
    switch_user_ = true;
    uid_ = pw.pw_uid;
    gid_ = pw.pw_gid;
  }

  const char* tmp = std::getenv("TMPDIR");
  std::string base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  if (switch_user_ && !Traversable(base, uid_, gid_)) base = "/tmp";  // e.g. TMPDIR=/root/tmp
  std::string templ = base + "/herald-pg-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return Fail(ErrnoText("mkdtemp " + templ));
  dir_ = templ;
  owner_ = ::getpid();
  data_dir_ = dir_ + "/data";
  log_path_ = dir_ + "/server.log";
  if (::chmod(dir_.c_str(), 0700) != 0) return Fail(ErrnoText("chmod " + dir_));
  if (switch_user_ && ::chown(dir_.c_str(), uid_, gid_) != 0) {
    return Fail(ErrnoText("chown " + dir_ + " to nobody"));
  }
  if (switch_user_ && !Traversable(dir_, uid_, gid_)) {
    return Fail("user nobody cannot reach " + dir_ + "; set TMPDIR to a directory it can enter");
  }

  if (!InitDb()) return false;
  // A port found free may be taken before the server binds it: try another.
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = PickFreePort();
    if (port_ == 0) return Fail(ErrnoText("no free port on 127.0.0.1"));
    if (const Launch l = LaunchPostgres(); l != Launch::kPortInUse) return l == Launch::kReady;
  }
  return false;
}

bool PgTestServer::InitDb() {
  const std::string log = dir_ + "/initdb.log";
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log_fd < 0) return Fail(ErrnoText("open " + log));
  if (switch_user_) GiveTo(log_fd, uid_, gid_);
  Command cmd;
  cmd.args = {bin_dir_ + "/initdb", "-D", data_dir_, "-U", "herald", "--auth=trust"};
  cmd.args.insert(cmd.args.end(), {"-E", "UTF8", "--locale=" + ClusterLocale(), "--no-sync"});
  cmd.cwd = dir_;
  cmd.switch_user = switch_user_;
  cmd.uid = uid_;
  cmd.gid = gid_;
  std::string error;
  const pid_t pid = Spawn(cmd, log_fd, &error);
  ::close(log_fd);
  if (pid < 0) return Fail(error);

  const auto deadline = Clock::now() + milliseconds(kInitDbTimeoutMs);
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return Fail(ErrnoText("waitpid initdb"));
    if (Clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return Fail("initdb did not finish within " + std::to_string(kInitDbTimeoutMs / 1000) +
                  " s: " + LogTail(log));
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Fail("initdb failed (" + ExitText(status) + "): " + LogTail(log));
  }
  return true;
}

PgTestServer::Launch PgTestServer::LaunchPostgres() {
  const off_t log_start = FileSize(log_path_);
  const int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) {
    Fail(ErrnoText("open " + log_path_));
    return Launch::kFailed;
  }
  if (switch_user_) GiveTo(log_fd, uid_, gid_);

  // The socket lives in the temporary directory, never in /var/run/postgresql. A path longer
  // than sun_path allows (a deep TMPDIR) would stop the server: then TCP only.
  const std::string socket = dir_ + "/.s.PGSQL." + std::to_string(port_);
  const bool socket_fits = socket.size() < sizeof(sockaddr_un::sun_path);
  Command cmd;
  cmd.args = {bin_dir_ + "/postgres", "-D", data_dir_, "-p", std::to_string(port_)};
  cmd.args.insert(cmd.args.end(), {"-c", "listen_addresses=127.0.0.1", "-c",
                                   "unix_socket_directories=" + (socket_fits ? dir_ : "")});
  if (!options_.durable) {
    for (const char* s : {"fsync=off", "synchronous_commit=off", "full_page_writes=off"}) {
      cmd.args.insert(cmd.args.end(), {"-c", s});
    }
  }
  for (const std::string& s : options_.settings) cmd.args.insert(cmd.args.end(), {"-c", s});
  cmd.cwd = dir_;
  cmd.switch_user = switch_user_;
  cmd.uid = uid_;
  cmd.gid = gid_;
  std::string error;
  pid_ = Spawn(cmd, log_fd, &error);
  ::close(log_fd);
  if (pid_ < 0) {
    Fail(error);
    return Launch::kFailed;
  }

  const std::string uri = Uri() + "?connect_timeout=2";
  const auto deadline = Clock::now() + milliseconds(kReadyTimeoutMs);
  std::string connect_error;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {  // ECHILD: SIGCHLD ignored, reaped already
      pid_ = -1;
      const std::string tail = LogTail(log_path_, log_start);
      Fail("postgres exited during startup (" + (r > 0 ? ExitText(status) : "reaped") + ", port " +
           std::to_string(port_) + "): " + tail);
      if (tail.find("could not bind") != std::string::npos) return Launch::kPortInUse;
      // Backends of a killed postmaster keep its shared memory until they notice and exit.
      if (tail.find("pre-existing shared memory block") != std::string::npos) {
        return Launch::kOldBackendsAlive;
      }
      return Launch::kFailed;
    }
    connect_error = TryConnect(uri);
    if (connect_error.empty()) return Launch::kReady;
    if (Clock::now() > deadline) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  Stop(0);
  Fail("postgres did not accept connections within " + std::to_string(kReadyTimeoutMs / 1000) +
       " s (last: " + connect_error + "): " + LogTail(log_path_, log_start));
  return Launch::kFailed;
}

bool PgTestServer::WaitExited(int timeout_ms, int* status) {
  const auto deadline = Clock::now() + milliseconds(timeout_ms);
  for (;;) {
    const pid_t r = ::waitpid(pid_, status, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) return true;  // ECHILD: reaped elsewhere
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
}

void PgTestServer::Stop(int grace_ms) {
  if (pid_ <= 0) return;
  int status = 0;
  // SIGINT is PostgreSQL's fast shutdown (clients are disconnected, a clean checkpoint is
  // written); SIGTERM would be the smart one, waiting for every client a test leaked.
  ::kill(pid_, SIGINT);
  if (!WaitExited(grace_ms, &status)) {
    ::kill(pid_, SIGKILL);
    WaitExited(kStopGraceMs, &status);
  }
  pid_ = -1;
}

std::string PgTestServer::Uri(const std::string& db) const {
  return "postgresql://herald@127.0.0.1:" + std::to_string(port_) + "/" + PercentEncode(db);
}

bool PgTestServer::Exec(const std::string& sql) {
  Conn conn(PQconnectdb((Uri() + "?connect_timeout=10").c_str()));
  if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
    return Fail("connect to " + Uri() + ": " +
                (conn == nullptr ? "out of memory" : TrimRight(PQerrorMessage(conn.get()))));
  }
  PQsetNoticeProcessor(
      conn.get(), [](void*, const char*) {}, nullptr);  // no NOTICE noise
  std::unique_ptr<PGresult, ResultCloser> result(PQexec(conn.get(), sql.c_str()));
  const ExecStatusType st = PQresultStatus(result.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    const std::string shown = sql.size() > 200 ? sql.substr(0, 200) + "..." : sql;
    return Fail("`" + shown + "` failed: " + TrimRight(PQresultErrorMessage(result.get())));
  }
  last_error_.clear();
  return true;
}

std::string PgTestServer::FreshSchemaUri(const std::string& prefix) {
  std::string name;
  for (unsigned char c : prefix.substr(0, 40)) {
    name += std::isalnum(c) != 0 ? static_cast<char>(std::tolower(c)) : '_';
  }
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0])) != 0) name = "t" + name;
  name += "_" + std::to_string(++schemas_);
  if (!Exec("CREATE SCHEMA \"" + name + "\"")) return "";
  return Uri() + "?options=-csearch_path%3D" + name;
}

bool PgTestServer::Kill() {
  if (pid_ <= 0) return Fail("Kill(): the server does not run");
  ::kill(pid_, SIGKILL);
  int status = 0;
  WaitExited(kStopGraceMs, &status);
  pid_ = -1;
  last_error_.clear();
  return true;
}

bool PgTestServer::Restart() {
  if (dir_.empty() || port_ == 0) return Fail("Restart() before a successful Start()");
  Stop(kStopGraceMs);
  last_error_.clear();
  const auto deadline = Clock::now() + milliseconds(kReadyTimeoutMs);
  for (;;) {
    const Launch l = LaunchPostgres();
    if (l != Launch::kOldBackendsAlive || Clock::now() > deadline) return l == Launch::kReady;
    std::this_thread::sleep_for(milliseconds(100));
  }
}

PgTestServer* PgTestServer::Shared() {
  static PgTestServer server;  // destroyed at exit, which stops the postmaster
  static const bool started = [] {
    if (server.Start()) return true;
    std::fprintf(stderr, "PgTestServer::Shared: cannot start PostgreSQL: %s\n",
                 server.last_error().c_str());
    return false;
  }();
  return started ? &server : nullptr;
}

}  // namespace herald::pgtest

// Test-only: real peers for src/net's tests (nghttpd, smtp-sink, a Python HTTP/1.1 server),
// each a child process on a loopback port, started and killed by a test fixture. Included only
// by *_test.cc files. A child gets SIGKILL when the test binary dies, so no peer outlives it.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace herald::net::peers {

namespace fs = std::filesystem;

// The repository's root, from this header's own path.
inline fs::path SourceRoot() {
  return fs::path(__FILE__).parent_path().parent_path().parent_path();
}

// `name` on PATH or in the system directories where Debian puts daemons; "" when absent.
inline std::string FindProgram(const std::string& name) {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::stringstream ss(path);
    for (std::string dir; std::getline(ss, dir, ':');) dirs.push_back(dir);
  }
  for (const char* dir : {"/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/lib/postfix/sbin"}) {
    dirs.emplace_back(dir);
  }
  for (const auto& dir : dirs) {
    const fs::path candidate = fs::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return {};
}

inline std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// A fresh directory under /tmp, removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "herald-net-XXXXXX").string();
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A loopback port that was free a moment ago.
inline uint16_t PickFreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

inline bool PortAcceptsConnections(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// Server-side TCP connections in ESTABLISHED state on a local loopback port (/proc/net/tcp):
// how many connections the client holds to a peer we started.
inline int EstablishedConnections(uint16_t port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  int count = 0;
  char wanted[16];
  std::snprintf(wanted, sizeof wanted, ":%04X", port);
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string slot, local, remote, state;
    ss >> slot >> local >> remote >> state;
    if (state == "01" && local.size() > 5 && local.substr(local.size() - 5) == wanted) ++count;
  }
  return count;
}

// One child process. Destruction kills it (SIGKILL) and reaps it.
class PeerProcess {
 public:
  PeerProcess() = default;
  ~PeerProcess() { Kill(); }
  PeerProcess(const PeerProcess&) = delete;
  PeerProcess& operator=(const PeerProcess&) = delete;

  // Starts argv (argv[0] found with FindProgram); stdout and stderr go to `log`.
  bool Start(const std::vector<std::string>& argv, const fs::path& log) {
    Kill();
    std::vector<std::string> args = argv;
    if (args.empty()) return false;
    if (args[0].find('/') == std::string::npos) args[0] = FindProgram(args[0]);
    if (args[0].empty()) return false;
    std::vector<char*> raw;
    raw.reserve(args.size() + 1);
    for (auto& a : args) raw.push_back(a.data());
    raw.push_back(nullptr);
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, 0);
      if (out >= 0) {
        ::dup2(out, 1);
        ::dup2(out, 2);
      }
      for (int fd = 3; fd < 1024; ++fd) ::close(fd);
      ::execv(raw[0], raw.data());
      ::_exit(127);
    }
    if (out >= 0) ::close(out);
    pid_ = pid;
    return pid > 0;
  }

  bool Running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  // Waits for the exit: the exit code, or -1 when a signal ended it.
  int Wait() {
    if (pid_ <= 0) return -1;
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// Starts a server that takes its port on the command line (argv_for_port) and waits until the
// port accepts connections; retries with another port when the first one was taken meanwhile.
// Returns the port, or nullopt (the log says why).
inline std::optional<uint16_t> StartOnFreePort(
    PeerProcess& process, const std::function<std::vector<std::string>(uint16_t)>& argv_for_port,
    const fs::path& log) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    const uint16_t port = PickFreePort();
    if (!process.Start(argv_for_port(port), log)) return std::nullopt;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline && process.Running()) {
      if (PortAcceptsConnections(port)) return port;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    process.Kill();
  }
  return std::nullopt;
}

// Runs a command to completion (stdout/stderr to `log`); its exit status, or -1.
inline int RunCommand(const std::vector<std::string>& argv, const fs::path& log) {
  PeerProcess p;
  if (!p.Start(argv, log)) return -1;
  return p.Wait();
}

}  // namespace herald::net::peers

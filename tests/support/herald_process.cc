#include "support/herald_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace herald::e2e {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string ReadWholeFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -999;
}

// Argument and environment arrays prepared before fork (the child may only call
// async-signal-safe functions).
struct ExecArrays {
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::vector<char*> argv;
  std::vector<char*> envp;
  void Seal() {
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
  }
};

// In the child: redirect, close inherited descriptors, exec. Never returns.
[[noreturn]] void ExecChild(const ExecArrays& exec, int stdout_fd, int stderr_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test binary
  const int devnull = ::open("/dev/null", O_RDONLY);
  if (devnull >= 0) ::dup2(devnull, 0);
  if (stdout_fd >= 0) ::dup2(stdout_fd, 1);
  if (stderr_fd >= 0) ::dup2(stderr_fd, 2);
  for (int fd = 3; fd < 4096; ++fd) ::close(fd);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(exec.argv[0], exec.argv.data(), exec.envp.data());
  static const char kMsg[] = "e2e: execve failed\n";
  [[maybe_unused]] auto ignored = ::write(2, kMsg, sizeof kMsg - 1);
  ::_exit(127);
}

bool ConnectsTcp(uint16_t port) {
  HttpConnection c;
  return c.Connect("127.0.0.1", port, std::chrono::milliseconds(200));
}

}  // namespace

std::string HeraldBinary() {
  if (const char* bin = std::getenv("HERALD_BIN"); bin != nullptr && *bin != '\0') return bin;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path sibling = self.parent_path() / "herald";
    if (fs::exists(sibling)) return sibling.string();
  }
  return "herald";
}

// ---- TempDir -------------------------------------------------------------------------------

TempDir::TempDir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string templ =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" + prefix + "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    std::fprintf(stderr, "mkdtemp(%s) failed: %s\n", templ.c_str(), std::strerror(errno));
    std::abort();
  }
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (std::getenv("HERALD_E2E_KEEP") == nullptr) fs::remove_all(path_, ec);
}

// ---- helpers -------------------------------------------------------------------------------

uint16_t PickFreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
  }
  ::close(fd);
  return port;
}

int RunCommand(const std::vector<std::string>& argv, std::string* out) {
  ExecArrays exec;
  exec.args = argv;
  for (char** e = environ; *e != nullptr; ++e) exec.env.emplace_back(*e);
  // execve needs a path: resolve through PATH here, before fork.
  if (exec.args[0].find('/') == std::string::npos) {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
    for (std::string dir; std::getline(dirs, dir, ':');) {
      const std::string candidate = dir + "/" + exec.args[0];
      if (::access(candidate.c_str(), X_OK) == 0) {
        exec.args[0] = candidate;
        break;
      }
    }
  }
  exec.Seal();
  int pipe_fds[2] = {-1, -1};
  if (out != nullptr && ::pipe2(pipe_fds, O_CLOEXEC) != 0) return -1000;
  const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  const pid_t pid = ::fork();
  if (pid == 0) ExecChild(exec, out != nullptr ? pipe_fds[1] : devnull, devnull);
  if (devnull >= 0) ::close(devnull);
  if (out != nullptr) {
    ::close(pipe_fds[1]);
    char buf[4096];
    for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof buf)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      out->append(buf, static_cast<size_t>(n));
    }
    ::close(pipe_fds[0]);
  }
  if (pid < 0) return -1000;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return DecodeStatus(status);
}

// ---- HeraldProcess -------------------------------------------------------------------------

HeraldProcess::HeraldProcess(HeraldOptions options)
    : options_(std::move(options)), temp_("herald-e2e") {}

HeraldProcess::~HeraldProcess() { Kill(); }

bool HeraldProcess::Start() {
  if (Running()) {
    last_error_ = "already running";
    return false;
  }
  if (options_.port != 0) return SpawnAndWait(options_.port);
  // A port picked free may be taken by someone else before the server binds it: retry.
  for (int attempt = 0; attempt < 3; ++attempt) {
    const uint16_t port = (attempt == 0 && port_ != 0) ? port_ : PickFreePort();
    if (SpawnAndWait(port)) return true;
    if (Stderr().find("cannot listen") == std::string::npos) return false;
  }
  return false;
}

bool HeraldProcess::SpawnAndWait(uint16_t port) {
  port_ = port;
  exit_status_.reset();
  last_error_.clear();
  ++runs_;
  stderr_path_ = temp_.path() / ("stderr-" + std::to_string(runs_) + ".log");

  ExecArrays exec;
  exec.args = {HeraldBinary(),      "serve",    "--data-dir",
               data_dir().string(), "--listen", "127.0.0.1:" + std::to_string(port)};
  exec.args.insert(exec.args.end(), options_.args.begin(), options_.args.end());
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "HERALD_", 7) != 0) exec.env.emplace_back(*e);
  }
  for (const auto& [k, v] : options_.env) {
    std::string entry = k;
    entry += '=';
    entry += v;
    exec.env.push_back(std::move(entry));
  }
  exec.Seal();

  const int err_fd = ::open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (err_fd < 0) {
    last_error_ =
        std::string("cannot create ") + stderr_path_.string() + ": " + std::strerror(errno);
    return false;
  }
  const pid_t pid = ::fork();
  if (pid == 0) ExecChild(exec, err_fd, err_fd);
  ::close(err_fd);
  if (pid < 0) {
    last_error_ = std::string("fork: ") + std::strerror(errno);
    return false;
  }
  pid_ = pid;
  return WaitReady();
}

bool HeraldProcess::WaitReady() {
  const auto deadline = Clock::now() + options_.ready_timeout;
  while (Clock::now() < deadline) {
    if (!Running()) {
      last_error_ = "herald exited with status " + std::to_string(exit_status_.value_or(-1)) +
                    " before it answered; stderr:\n" + Stderr();
      return false;
    }
    if (options_.tls) {
      if (ConnectsTcp(port_)) return true;
    } else {
      HttpClient client("127.0.0.1", port_, /*keep_alive=*/false);
      client.set_timeout(std::chrono::milliseconds(1000));
      if (client.Get("/healthz").status == 200) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  last_error_ = "herald did not answer /healthz within " +
                std::to_string(options_.ready_timeout.count()) + " ms; stderr:\n" + Stderr();
  Kill();
  return false;
}

bool HeraldProcess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  if (r == pid_) exit_status_ = DecodeStatus(status);
  pid_ = -1;
  return false;
}

void HeraldProcess::Signal(int signo) {
  if (pid_ > 0) ::kill(pid_, signo);
}

std::optional<int> HeraldProcess::WaitForExit(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (!Running()) return exit_status_;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

int HeraldProcess::Stop(std::chrono::milliseconds timeout) {
  if (!Running()) return -1000;
  Signal(SIGTERM);
  if (auto status = WaitForExit(timeout)) return *status;
  last_error_ =
      "herald did not exit within " + std::to_string(timeout.count()) + " ms of SIGTERM; killed";
  Kill();
  return exit_status_.value_or(-1000);
}

void HeraldProcess::Kill() {
  if (!Running()) return;
  Signal(SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exit_status_ = DecodeStatus(status);
  pid_ = -1;
}

bool HeraldProcess::Restart() {
  Stop();
  return Start();
}

std::string HeraldProcess::Stderr() const {
  return stderr_path_.empty() ? "" : ReadWholeFile(stderr_path_);
}

std::string HeraldProcess::AllStderr() const {
  std::string all;
  for (int i = 1; i <= runs_; ++i) {
    all += ReadWholeFile(temp_.path() / ("stderr-" + std::to_string(i) + ".log"));
  }
  return all;
}

std::string HeraldProcess::AdminToken() const {
  if (auto it = options_.env.find("HERALD_ADMIN_TOKEN"); it != options_.env.end()) {
    return it->second;
  }
  std::string token = ReadWholeFile(data_dir() / "admin_token");
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  return token;
}

void HeraldProcess::ShareMasterKey(const HeraldProcess& other) {
  std::filesystem::create_directories(data_dir());
  std::filesystem::copy_file(other.data_dir() / "master_key", data_dir() / "master_key",
                             std::filesystem::copy_options::overwrite_existing);
}

HttpClient HeraldProcess::AdminClient() const {
  HttpClient client = Client();
  client.set_bearer(AdminToken());
  return client;
}

}  // namespace herald::e2e

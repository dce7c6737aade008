// Runs the real `herald serve` binary for end-to-end tests: a fresh temporary data directory,
// a free loopback port, stderr captured to a file, readiness by /healthz, graceful stop by
// SIGTERM, kill by SIGKILL, and restarts on the same data directory.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "support/http_client.h"

namespace herald::e2e {

// The herald binary: $HERALD_BIN, else `herald` next to the running test binary.
std::string HeraldBinary();

// A directory under $TMPDIR (or /tmp) removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "herald-e2e");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A loopback port that was free a moment ago (bound to port 0, then released).
uint16_t PickFreePort();

// Runs a command line (no shell) and returns its exit status (-signal when killed); its
// stdout goes to *out when given.
int RunCommand(const std::vector<std::string>& argv, std::string* out = nullptr);

struct HeraldOptions {
  // Extra environment for the child. Every other HERALD_* variable of the test's own
  // environment is removed so that only what a test asks for reaches the server.
  std::map<std::string, std::string> env;
  // Extra command-line arguments after `serve --data-dir D --listen 127.0.0.1:P`.
  std::vector<std::string> args;
  // A fixed port; 0 picks a free one (and retries with another when it was taken meanwhile).
  uint16_t port = 0;
  // TLS (--tls-cert/--tls-key given in args): readiness is a TCP connect, not /healthz.
  bool tls = false;
  std::chrono::milliseconds ready_timeout = std::chrono::seconds(10);
};

class HeraldProcess {
 public:
  // The data directory is <temp dir>/data; stderr goes to <temp dir>/stderr-<n>.log.
  explicit HeraldProcess(HeraldOptions options = {});
  // Kills the process if it still runs.
  ~HeraldProcess();
  HeraldProcess(const HeraldProcess&) = delete;
  HeraldProcess& operator=(const HeraldProcess&) = delete;

  // Starts the server and waits until it answers (10 s by default). False when it exited or
  // did not answer in time; `last_error()` and `Stderr()` say why (the process is killed on a
  // timeout, and its exit status kept in exit_status()).
  bool Start();
  // SIGTERM, then waits for the exit (up to `timeout`, then SIGKILL). Returns the exit code, or
  // -signal when a signal ended it, or -1000 when nothing was running.
  int Stop(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // SIGKILL and reap.
  void Kill();
  // Stop() then Start() on the same data directory (and the same options).
  bool Restart();

  // Sends a signal without waiting.
  void Signal(int signo);
  // Waits for the exit; nullopt on timeout. Same encoding as Stop().
  std::optional<int> WaitForExit(std::chrono::milliseconds timeout);
  // True while the child has not exited (reaps it when it has).
  bool Running();

  pid_t pid() const { return pid_; }
  uint16_t port() const { return port_; }
  std::optional<int> exit_status() const { return exit_status_; }
  const std::string& last_error() const { return last_error_; }
  const std::filesystem::path& root() const { return temp_.path(); }
  std::filesystem::path data_dir() const { return temp_.path() / "data"; }
  std::filesystem::path stderr_path() const { return stderr_path_; }
  // The stderr of the current (or last) run.
  std::string Stderr() const;
  // The stderr of every run so far.
  std::string AllStderr() const;
  // HERALD_ADMIN_TOKEN from the options, else the admin_token file of the data directory.
  std::string AdminToken() const;
  HeraldOptions& options() { return options_; }

  // Gives this (not yet started) process the master key of `other`, so that both read what the
  // other stored in a shared PostgreSQL store.
  void ShareMasterKey(const HeraldProcess& other);

  // A keep-alive client to this server (no bearer).
  HttpClient Client() const { return HttpClient("127.0.0.1", port_); }
  HttpClient AdminClient() const;

 private:
  bool SpawnAndWait(uint16_t port);
  bool WaitReady();

  HeraldOptions options_;
  TempDir temp_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  int runs_ = 0;
  std::filesystem::path stderr_path_;
  std::optional<int> exit_status_;
  std::string last_error_;
};

}  // namespace herald::e2e

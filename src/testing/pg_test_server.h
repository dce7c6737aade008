// A throwaway PostgreSQL server for tests and benchmarks (test support only, never linked into
// `herald`): a fresh cluster in a temporary directory, listening on 127.0.0.1 at a free port,
// with trust authentication for the user `herald`.
//
// Owns the postmaster it started and the temporary directory; the destructor stops the one and
// removes the other. Only the pid it started is ever signalled. When the process runs as root
// (CI), initdb and the server run as the user `nobody`, since PostgreSQL refuses to run as root.
//
// Thread-safety: one thread at a time for Start/Restart/Kill/Exec/FreshSchemaUri (they write
// last_error()); Uri/port/pid may be read from any thread while the server is not restarting.
// Start the server from the main thread: the server is killed when the thread that started it
// ends (PR_SET_PDEATHSIG follows the parent *thread*), which is what keeps a crashed test binary
// from leaving a server behind.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace herald::pgtest {

struct PgTestServerOptions {
  // false: fsync=off, synchronous_commit=off, full_page_writes=off, for fast tests. Then a
  // Kill() may lose the commits of the last few hundred ms (they wait in the server's WAL
  // buffers): fault tests that count what survives a kill want durable = true.
  bool durable = false;
  // Extra "name=value" settings, each passed to postgres as `-c name=value`.
  std::vector<std::string> settings;
};

class PgTestServer {
 public:
  explicit PgTestServer(PgTestServerOptions options = {});
  // Stops the server (fast shutdown, SIGKILL after 10 s) and removes the temporary directory.
  ~PgTestServer();
  PgTestServer(const PgTestServer&) = delete;
  PgTestServer& operator=(const PgTestServer&) = delete;

  // Creates the cluster (initdb) and starts the server; returns once a libpq connection succeeds
  // (at most ~30 s). false when anything fails, with last_error() saying what, including the tail
  // of the server's or initdb's log. Call once.
  bool Start();

  // What the last failing call failed on, empty after a success.
  const std::string& last_error() const { return last_error_; }
  uint16_t port() const { return port_; }
  // The postmaster's pid, or -1 when it does not run.
  pid_t pid() const { return pid_; }
  // The temporary directory: data/, server.log, initdb.log and the server's Unix socket.
  const std::string& dir() const { return dir_; }

  // libpq URI of database `db`: postgresql://herald@127.0.0.1:PORT/db ("postgres" exists).
  std::string Uri(const std::string& db = "postgres") const;

  // Runs SQL (one or more statements, one implicit transaction) on database "postgres".
  bool Exec(const std::string& sql);

  // A fresh empty schema for one test: creates schema <prefix>_<n> and returns a URI of database
  // "postgres" whose libpq `options` set search_path to it, so a store opened with the URI
  // creates its tables there. Characters of `prefix` other than [a-z0-9_] become '_'. Empty on
  // failure (see last_error()).
  std::string FreshSchemaUri(const std::string& prefix = "t");

  // Fault injection: SIGKILL to the postmaster (its backends notice and exit on their own).
  // false when it was not running.
  bool Kill();
  // Starts the server again on the same port and data directory (after crash recovery when it
  // was killed); a running server is shut down first.
  bool Restart();

  // One server per process, started on first use and stopped at exit (static destructor).
  // nullptr, with the reason printed to stderr once, when it cannot start.
  static PgTestServer* Shared();

 private:
  // How one attempt to start the postmaster ended; the last two are worth another attempt.
  enum class Launch { kReady, kFailed, kPortInUse, kOldBackendsAlive };

  bool InitDb();
  // Spawns postgres on port_ and waits until it accepts connections.
  Launch LaunchPostgres();
  // Fast shutdown, SIGKILL after `grace`; reaps the postmaster.
  void Stop(int grace_ms);
  bool WaitExited(int timeout_ms, int* status);
  bool Fail(std::string message);

  PgTestServerOptions options_;
  std::string bin_dir_;
  std::string dir_;       // the temporary directory, empty until Start()
  std::string data_dir_;  // dir_/data
  std::string log_path_;  // dir_/server.log
  bool switch_user_ = false;
  uid_t uid_ = 0;  // the server's user and group when switch_user_
  gid_t gid_ = 0;
  pid_t owner_ = -1;  // the process that created the directory (a fork()ed child must not clean)
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  int schemas_ = 0;
  std::string last_error_;
};

}  // namespace herald::pgtest

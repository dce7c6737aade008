// A throwaway pg_auto_failover formation for tests (test support only, never linked into
// `herald`): a monitor and three PostgreSQL 15 data nodes, all on 127.0.0.1 at free ports, in one
// temporary directory, with trust authentication. When the process runs as root (CI), every
// process runs as the user `nobody`, since PostgreSQL refuses to run as root.
//
// Each server runs under its own `pg_autoctl ... --run` supervisor, started in its own session
// (process group); the supervisor restarts its postgres when only postgres dies, so KillNode()
// kills the whole node, which is what losing a machine looks like to the monitor. Failure
// detection is tuned for tests (health checks every second, a node unhealthy after 2 s, 3 s
// primary demote timeout): the new primary takes writes ~6-12 s after a KillNode() of the old
// one. The formation is strict about durability (number_sync_standbys = 1, synchronous_commit
// on): a commit returns once a standby has flushed it, and only such a standby is promoted, so
// what committed before a KillNode() is on the new primary. Except right after a failover: the
// promoted node runs alone (wait_primary, synchronous replication off) until the remaining
// standby follows it, ~0.5-2 s; WaitForSync() waits for the end of that window.
//
// Owns the processes it started and the temporary directory; the destructor stops the ones and
// removes the other. Only the process groups it started, and processes of its user working in
// its own temporary directory, are ever signalled. The temporary directory holds monitor.log and
// nodeN.log (the pg_autoctl logs; PostgreSQL's own logs are in each data directory's log/), and
// is kept when HERALD_PGHA_KEEP=1 is set (the processes are stopped either way).
//
// Thread-safety: one thread at a time (the calls write last_error()). Start the formation from
// the main thread: the supervisors are killed when the thread that started them ends
// (PR_SET_PDEATHSIG follows the parent *thread*). Their services and postgres would live on: a
// guardian process (a small shell loop, in a session of its own) notices when the test process
// dies without running the destructor, kills whatever works in the temporary directory and
// removes it.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace herald::pgtest {

class PgHaCluster {
 public:
  static constexpr int kNodes = 3;

  PgHaCluster();
  // Stops everything it started (SIGTERM to each supervisor, which stops its postgres; SIGKILL to
  // whatever is left after 10 s) and removes the temporary directory. Takes ~1 s.
  ~PgHaCluster();
  PgHaCluster(const PgHaCluster&) = delete;
  PgHaCluster& operator=(const PgHaCluster&) = delete;

  // Creates and starts the monitor, then node 0 (which becomes the primary), then nodes 1 and 2
  // (standbys); returns once the monitor reports one primary and two secondaries, the failover
  // settings are in effect and the primary accepts writes. false when anything fails or takes
  // longer than `timeout`, with last_error() saying what, including the tails of the pg_autoctl
  // logs. Call once.
  bool Start(std::chrono::seconds timeout = std::chrono::seconds(120));

  // What the last failing call failed on, empty after a success.
  const std::string& last_error() const { return last_error_; }

  // Multi-host libpq URI of database "postgres" on all data nodes, which picks the primary:
  // postgresql://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/postgres?target_session_attrs=read-write
  // &user=USER&connect_timeout=2, where USER is user() (the nodes' superuser).
  std::string Uri() const;
  // libpq URI of data node `index` alone, database "postgres" (any role: primary or standby).
  std::string NodeUri(int index) const;

  // Index (0..2) of the node that is the primary now according to the monitor (reported and
  // goal state both one of primary, wait_primary, single), -1 if none (or the monitor does not
  // answer; see last_error()). Right after a KillNode() of the primary the monitor still
  // reports it as primary until it notices the loss.
  int Primary();

  // Fault injection: SIGKILL to the node's whole process group (pg_autoctl, its services and its
  // postgres) and to whatever else of the node works in its data directory; returns once all of
  // it is dead. false when the node did not run.
  bool KillNode(int index);

  // Waits until some node other than `old_primary` is primary (see Primary()) and accepts
  // writes: a read-write connection to Uri() reaches that node and pg_is_in_recovery() is false.
  // Returns how long that took from the call, or nullopt on timeout (see last_error()).
  std::optional<std::chrono::milliseconds> WaitForNewPrimary(int old_primary,
                                                             std::chrono::seconds timeout);

  // Waits until the nodes still running have settled: one primary, the others secondaries, all
  // in the state the monitor assigned, number_sync_standbys = 1, and every secondary replicating
  // synchronously (quorum) from the primary. Start() ends so. After a failover the promoted node
  // first runs alone for a moment (wait_primary: synchronous replication off) until the remaining
  // standby follows it. Returns how long that took, or nullopt on timeout (see last_error()).
  std::optional<std::chrono::milliseconds> WaitForSync(std::chrono::seconds timeout);

  // Runs SQL (one or more statements, one implicit transaction) on the current primary via
  // Uri(). false on failure or after 30 s (a commit waiting for a standby that never answers),
  // with last_error().
  bool Exec(const std::string& sql);

  // The OS user the servers run as (`nobody` when root, else the current user): the nodes'
  // superuser, the user of Uri().
  const std::string& user() const { return user_; }
  // The temporary directory, empty until Start().
  const std::string& dir() const { return dir_; }
  uint16_t monitor_port() const { return monitor_.port; }
  uint16_t node_port(int index) const { return nodes_.at(index).port; }
  // The pids (= process group ids) of the pg_autoctl supervisors still running.
  std::vector<pid_t> SupervisorPids() const;

 private:
  struct Server {
    std::string name;    // "monitor", "node1", ...
    std::string pgdata;  // dir_/name
    std::string log;     // dir_/name.log, pg_autoctl's stdout and stderr
    uint16_t port = 0;
    pid_t pid = -1;   // the pg_autoctl supervisor, leader of its own process group
    pid_t pgid = -1;  // that group, kept after the supervisor is reaped
    bool started = false;
  };
  struct NodeState {
    int port = 0;
    std::string reported;
    std::string goal;
  };

  // Spawns the guardian (see kGuardianScript in the .cc), which cleans up after a test process
  // that dies without running the destructor.
  bool StartGuardian();
  bool InitDb(const std::vector<Server*>& servers, std::chrono::steady_clock::time_point deadline);
  bool Launch(Server& server, std::vector<std::string> args);
  // Polls `ready` every 200 ms until it returns true; false when `deadline` passes or a
  // supervisor exits. `what` names the wait in the error.
  template <typename Ready>
  bool WaitFor(const std::string& what, std::chrono::steady_clock::time_point deadline,
               Ready ready);
  // The first supervisor that exited, with its exit status, or "" when all run.
  std::string ExitedSupervisor();
  // Whether the nodes still running have settled (see WaitForSync(); without `check_sync`, the
  // states only); `status` says how far.
  bool Settled(std::string* status, bool check_sync);
  bool Tune(std::chrono::steady_clock::time_point deadline);
  std::optional<std::vector<NodeState>> NodeStates(std::string* error);
  // Over the Unix socket as user_ (the superuser; autoctl_node is not).
  std::string MonitorConnInfo() const;
  std::string NodeSocketConnInfo(int index) const;
  std::string StateText(const std::vector<NodeState>& states) const;
  int IndexOfPort(int port) const;
  // SIGKILL to the process group, then to whatever is left of it or still works in the data
  // directory; returns once all of that is dead (at most ~10 s).
  void KillServer(Server& server);
  void StopAll();
  bool Fail(std::string message);
  // `message` followed by the tails of the pg_autoctl logs.
  bool FailWithLogs(std::string message);

  std::string dir_;
  std::string user_;
  bool switch_user_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  pid_t owner_ = -1;   // the process that created the directory (a fork()ed child must not clean)
  bool keep_ = false;  // HERALD_PGHA_KEEP=1
  pid_t guardian_pid_ = -1;
  int guardian_fd_ = -1;          // the write end of the guardian's stdin
  std::vector<std::string> env_;  // the children's environment, NAME=value
  Server monitor_;
  std::array<Server, kNodes> nodes_;
  std::string last_error_;
};

}  // namespace herald::pgtest

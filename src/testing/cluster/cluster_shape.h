// Herald's scaled-out shape on loopback (test and development support, never linked into
// `herald`): a 3-node NATS JetStream cluster, a pg_auto_failover formation (a primary, two
// synchronous standbys, automatic failover), the provider simulator, API processes behind
// haproxy, fan-out + dispatch processes and a reaper process, all `herald serve --roles ...` on
// one store and one stream. `make cluster` runs it (tools/herald_cluster.cc); the chaos suite
// (tests/chaos_test.cc) kills its parts.
//
// haproxy balances the API processes (health check GET /readyz every 500 ms), retries a request
// whose connection failed on the other process, and retries a POST whose answer never came only
// when it carries an Idempotency-Key (the API then answers the first request's result); any
// other upstream failure becomes a 503 with Retry-After, never a bare 502.
//
// Owns every process it started and its temporary directory; signals only its own pids. The
// processes die with the thread that started them (PR_SET_PDEATHSIG): start it from the main
// thread. Thread-safety: one thread at a time.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace herald::natstest {
class NatsTestCluster;
}
namespace herald::pgtest {
class PgHaCluster;
}

namespace herald::clustertest {

struct ClusterShapeOptions {
  std::string herald;     // the herald binary
  uint16_t port = 0;      // haproxy's, on 127.0.0.1 (0 = a free one)
  uint16_t sim_port = 0;  // the simulator's HTTP and SMTP ports (0 = free ones)
  uint16_t sim_smtp_port = 0;
  int api = 2;                          // `--roles api` processes
  int workers = 2;                      // `--roles fanout,dispatch` processes
  int reapers = 1;                      // `--roles reaper` processes
  std::vector<std::string> extra_args;  // for every `herald serve`
  std::string dir;                      // where logs and data go; empty = a new temporary directory
  std::string admin_token;              // every process's; empty = a new random one
  std::function<void(const std::string&)> progress;  // a line per step; may be empty
};

enum class Role { kApi, kWorker, kReaper };

class ClusterShape {
 public:
  explicit ClusterShape(ClusterShapeOptions options);
  ~ClusterShape();  // stops everything, Herald first
  ClusterShape(const ClusterShape&) = delete;
  ClusterShape& operator=(const ClusterShape&) = delete;

  // Starts every part and waits until each answers; false with last_error() when one fails.
  bool Start();
  const std::string& last_error() const { return last_error_; }

  std::string url() const;  // http://127.0.0.1:<haproxy port>
  uint16_t port() const { return port_; }
  const std::string& admin_token() const { return admin_token_; }
  std::string sim_url() const;
  uint16_t sim_port() const { return sim_port_; }
  const std::string& dir() const { return dir_; }
  std::string store_uri() const;
  std::string queue_urls() const;
  natstest::NatsTestCluster& nats() { return *nats_; }
  pgtest::PgHaCluster& pg() { return *pg_; }

  int count(Role role) const;
  pid_t pid(Role role, int index) const;
  uint16_t process_port(Role role, int index) const;  // its /healthz, /metrics (and API)
  std::string log(Role role, int index) const;        // its stderr file
  // SIGKILL to one Herald process (only that pid); false when it was not running.
  bool Kill(Role role, int index);
  // Starts a killed process again (same data directory, same port) and waits until it answers.
  bool Restart(Role role, int index);
  // What runs where, for a person: the text `make cluster` prints.
  std::string Describe() const;

 private:
  struct Proc;
  Proc& at(Role role, int index) const;
  bool StartHerald(Proc& p);
  bool WriteHaproxyConfig();
  bool Fail(std::string message);
  void Say(const std::string& line) const;

  ClusterShapeOptions options_;
  std::string dir_;
  bool own_dir_ = false;
  std::string last_error_;
  std::string admin_token_;
  std::string master_key_;
  uint16_t port_ = 0;
  uint16_t sim_port_ = 0;
  uint16_t sim_smtp_port_ = 0;
  std::unique_ptr<natstest::NatsTestCluster> nats_;
  std::unique_ptr<pgtest::PgHaCluster> pg_;
  struct Peer;
  std::unique_ptr<Peer> sim_;
  std::unique_ptr<Peer> haproxy_;
  std::vector<std::unique_ptr<Proc>> procs_;
};

}  // namespace herald::clustertest

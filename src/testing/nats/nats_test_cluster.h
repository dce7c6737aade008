// A throwaway NATS JetStream cluster for tests and benchmarks (test support only, never linked
// into `herald`): N `nats-server` nodes (Debian's 2.9.10), each with JetStream on its own store
// directory under one temporary directory, routed to each other as cluster "herald", listening
// on 127.0.0.1 at free ports.
//
// Owns the processes it started and the directory; the destructor kills the one and removes the
// other. Only the pids it started are ever signalled. A node gets SIGKILL when the thread that
// started it ends (PR_SET_PDEATHSIG), so a crashed test binary leaves no server behind: start it
// from the main thread.
//
// Thread-safety: one thread at a time for Start/Kill/Restart; Urls/pid from any thread while no
// node is being started.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace herald::natstest {

class NatsTestCluster {
 public:
  explicit NatsTestCluster(int nodes = 3);
  ~NatsTestCluster();
  NatsTestCluster(const NatsTestCluster&) = delete;
  NatsTestCluster& operator=(const NatsTestCluster&) = delete;

  // Starts every node and waits until JetStream answers on each (a meta leader is elected):
  // at most ~30 s. false when anything fails, with last_error() saying what, including the tail
  // of the failing node's log.
  bool Start();
  const std::string& last_error() const { return last_error_; }

  int nodes() const { return static_cast<int>(nodes_.size()); }
  // "nats://127.0.0.1:P1,nats://127.0.0.1:P2,..." for every node (what --queue takes).
  std::string Urls() const;
  std::string Url(int node) const;
  pid_t pid(int node) const;
  const std::string& dir() const { return dir_; }

  // Fault injection: SIGKILL to one node. false when it was not running.
  bool Kill(int node);
  // Starts a killed node again on its ports and store directory; returns once it accepts
  // connections (it catches up with the others by itself).
  bool Restart(int node);

  // One 3-node cluster per process, started on first use and stopped at exit. nullptr, with
  // the reason printed to stderr once, when it cannot start (no nats-server installed).
  static NatsTestCluster* Shared();

 private:
  struct Node;
  bool Launch(Node& node);
  bool Fail(std::string message);

  std::string dir_;
  std::string last_error_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

}  // namespace herald::natstest

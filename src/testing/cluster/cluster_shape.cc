#include "testing/cluster/cluster_shape.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>
#include <utility>

#include "crypto/crypto.h"
#include "net/test_peers.h"
#include "testing/nats/nats_test_cluster.h"
#include "testing/pg_ha_cluster.h"

namespace herald::clustertest {
namespace {

namespace fs = std::filesystem;
namespace peers = net::peers;
using Clock = std::chrono::steady_clock;

// The status of GET `path` on 127.0.0.1:`port`, or 0 when nothing answered within a second.
int HttpStatus(uint16_t port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int status = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request =
        "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buf[64] = {};
      const ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
      if (n > 12 && std::string_view(buf, 5) == "HTTP/") status = std::atoi(buf + 9);
    }
  }
  ::close(fd);
  return status;
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kApi: return "api";
    case Role::kWorker: return "worker";
    case Role::kReaper: return "reaper";
  }
  return "?";
}

const char* RoleFlag(Role role) {
  switch (role) {
    case Role::kApi: return "api";
    case Role::kWorker: return "fanout,dispatch";
    case Role::kReaper: return "reaper";
  }
  return "";
}

}  // namespace

struct ClusterShape::Peer {
  peers::PeerProcess process;
};

struct ClusterShape::Proc {
  Role role = Role::kApi;
  int index = 0;
  uint16_t port = 0;
  fs::path data_dir;
  fs::path log;
  peers::PeerProcess process;
};

ClusterShape::ClusterShape(ClusterShapeOptions options) : options_(std::move(options)) {}

ClusterShape::~ClusterShape() {
  for (auto& p : procs_) p->process.Kill();
  if (haproxy_) haproxy_->process.Kill();
  if (sim_) sim_->process.Kill();
  pg_.reset();
  nats_.reset();
  if (own_dir_ && !dir_.empty() && std::getenv("HERALD_CLUSTER_KEEP") == nullptr) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

bool ClusterShape::Fail(std::string message) {
  last_error_ = std::move(message);
  return false;
}

void ClusterShape::Say(const std::string& line) const {
  if (options_.progress) options_.progress(line);
}

ClusterShape::Proc& ClusterShape::at(Role role, int index) const {
  for (const auto& p : procs_) {
    if (p->role == role && p->index == index) return *p;
  }
  throw std::out_of_range("no such Herald process");
}

int ClusterShape::count(Role role) const {
  int n = 0;
  for (const auto& p : procs_) n += p->role == role ? 1 : 0;
  return n;
}

pid_t ClusterShape::pid(Role role, int index) const { return at(role, index).process.pid(); }
uint16_t ClusterShape::process_port(Role role, int index) const { return at(role, index).port; }
std::string ClusterShape::log(Role role, int index) const { return at(role, index).log.string(); }
std::string ClusterShape::url() const { return "http://127.0.0.1:" + std::to_string(port_); }
std::string ClusterShape::sim_url() const {
  return "http://127.0.0.1:" + std::to_string(sim_port_);
}
std::string ClusterShape::store_uri() const { return pg_ ? pg_->Uri() : ""; }
std::string ClusterShape::queue_urls() const { return nats_ ? nats_->Urls() : ""; }

bool ClusterShape::Start() {
  if (!crypto::InitCrypto()) return Fail("libsodium failed to start");
  if (options_.herald.empty() || !fs::exists(options_.herald)) {
    return Fail("no herald binary at \"" + options_.herald + "\"");
  }
  if (options_.dir.empty()) {
    char tmpl[] = "/tmp/herald-cluster-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return Fail("cannot create a temporary directory");
    dir_ = tmpl;
    own_dir_ = true;
  } else {
    dir_ = options_.dir;
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) return Fail("cannot create " + dir_ + ": " + ec.message());
  }
  admin_token_ = options_.admin_token.empty() ? crypto::RandomId("adm_", 40) : options_.admin_token;
  master_key_ = crypto::FormatMasterKey(crypto::RandomKey());

  Say("starting 3 nats-server nodes with JetStream ...");
  nats_ = std::make_unique<natstest::NatsTestCluster>(3);
  if (!nats_->Start()) return Fail("NATS: " + nats_->last_error());
  Say("starting PostgreSQL: a pg_auto_failover monitor, a primary and two standbys ...");
  pg_ = std::make_unique<pgtest::PgHaCluster>();
  if (!pg_->Start()) return Fail("PostgreSQL: " + pg_->last_error());

  Say("starting the provider simulator ...");
  sim_ = std::make_unique<Peer>();
  sim_smtp_port_ = options_.sim_smtp_port != 0 ? options_.sim_smtp_port : peers::PickFreePort();
  auto sim_argv = [&](uint16_t port) {
    return std::vector<std::string>{options_.herald, "sim",
                                    "--listen",      "127.0.0.1:" + std::to_string(port),
                                    "--smtp-listen", "127.0.0.1:" + std::to_string(sim_smtp_port_)};
  };
  const fs::path sim_log = fs::path(dir_) / "sim.log";
  if (options_.sim_port != 0) {
    sim_port_ = options_.sim_port;
    if (!sim_->process.Start(sim_argv(sim_port_), sim_log))
      return Fail("cannot start the simulator");
    bool up = false;
    for (auto until = Clock::now() + std::chrono::seconds(10);
         Clock::now() < until && sim_->process.Running() && !up;) {
      up = peers::PortAcceptsConnections(sim_port_);
      if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!up) return Fail("the simulator did not start (port taken?): " + peers::ReadFile(sim_log));
  } else {
    std::optional<uint16_t> sim_port = peers::StartOnFreePort(sim_->process, sim_argv, sim_log);
    if (!sim_port) return Fail("the simulator did not start; see " + sim_log.string());
    sim_port_ = *sim_port;
  }

  const std::pair<Role, int> shape[] = {{Role::kWorker, options_.workers},
                                        {Role::kApi, options_.api},
                                        {Role::kReaper, options_.reapers}};
  for (auto [role, n] : shape) {
    for (int i = 0; i < n; ++i) {
      auto p = std::make_unique<Proc>();
      p->role = role;
      p->index = i;
      p->port = peers::PickFreePort();
      const std::string name = std::string(RoleName(role)) + std::to_string(i + 1);
      p->data_dir = fs::path(dir_) / name;
      p->log = fs::path(dir_) / (name + ".log");
      std::error_code ec;
      fs::create_directories(p->data_dir, ec);
      peers::WriteFile(p->data_dir / "master_key", master_key_ + "\n");
      peers::WriteFile(p->data_dir / "admin_token", admin_token_ + "\n");
      fs::permissions(p->data_dir / "master_key", fs::perms::owner_read | fs::perms::owner_write,
                      ec);
      Say("starting " + name + " (herald serve --roles " + RoleFlag(role) + ") on port " +
          std::to_string(p->port) + " ...");
      procs_.push_back(std::move(p));
      if (!StartHerald(*procs_.back())) return false;
    }
  }

  Say("starting haproxy in front of the API processes ...");
  port_ = options_.port != 0 ? options_.port : peers::PickFreePort();
  if (!WriteHaproxyConfig()) return false;
  haproxy_ = std::make_unique<Peer>();
  if (!haproxy_->process.Start({"haproxy", "-f", dir_ + "/haproxy.cfg", "-db"},
                               fs::path(dir_) / "haproxy.log")) {
    return Fail("haproxy did not start (scripts/install-deps installs it)");
  }
  for (auto until = Clock::now() + std::chrono::seconds(15); Clock::now() < until;) {
    if (!haproxy_->process.Running()) {
      return Fail("haproxy exited: " + peers::ReadFile(fs::path(dir_) / "haproxy.log"));
    }
    if (HttpStatus(port_, "/readyz") == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Fail("haproxy on port " + std::to_string(port_) + " did not answer /readyz in 15 s");
}

bool ClusterShape::StartHerald(Proc& p) {
  std::vector<std::string> argv = {options_.herald,
                                   "serve",
                                   "--data-dir",
                                   p.data_dir.string(),
                                   "--listen",
                                   "127.0.0.1:" + std::to_string(p.port),
                                   "--store",
                                   pg_->Uri(),
                                   "--queue",
                                   nats_->Urls(),
                                   "--roles",
                                   RoleFlag(p.role),
                                   "--sim",
                                   sim_url(),
                                   "--sim-smtp",
                                   "127.0.0.1:" + std::to_string(sim_smtp_port_),
                                   "--api-processes",
                                   std::to_string(std::max(1, options_.api)),
                                   "--max-connections-per-client",
                                   "0"};
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  if (!p.process.Start(argv, p.log)) return Fail("cannot start " + options_.herald);
  // The first start creates the stream and its 32 replicated consumers: up to a minute.
  for (auto until = Clock::now() + std::chrono::seconds(90); Clock::now() < until;) {
    if (!p.process.Running()) {
      return Fail(std::string(RoleName(p.role)) + std::to_string(p.index + 1) +
                  " exited at start: " + peers::ReadFile(p.log));
    }
    if (HttpStatus(p.port, "/readyz") == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Fail(std::string(RoleName(p.role)) + " did not answer /readyz in 90 s; see " +
              p.log.string());
}

bool ClusterShape::WriteHaproxyConfig() {
  // Every upstream failure a client could see is a 503 with Retry-After (a send it may repeat).
  const std::string unavailable =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: "
      "1\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
      "{\"error\":{\"code\":\"service_unavailable\",\"message\":\"No Herald API process could "
      "answer; retry after the time in Retry-After.\"}}\n";
  peers::WriteFile(fs::path(dir_) / "unavailable.http", unavailable);
  std::string cfg =
      "global\n"
      "  maxconn 4000\n"
      "defaults\n"
      "  mode http\n"
      "  timeout connect 1s\n"
      "  timeout client 60s\n"
      "  timeout server 30s\n"
      "  timeout http-keep-alive 10s\n"
      "  retries 3\n"
      "  option redispatch 1\n"
      // A refused connection (the process is gone) is retried on the other process; a request
      // whose process died before answering is retried only when repeating it is safe.
      "  retry-on conn-failure empty-response response-timeout\n"
      "  errorfile 502 " +
      dir_ +
      "/unavailable.http\n"
      "  errorfile 503 " +
      dir_ +
      "/unavailable.http\n"
      "  errorfile 504 " +
      dir_ +
      "/unavailable.http\n"
      "frontend api\n"
      "  bind 127.0.0.1:" +
      std::to_string(port_) +
      "\n"
      "  default_backend herald\n"
      "backend herald\n"
      "  balance roundrobin\n"
      "  http-request disable-l7-retry if METH_POST !{ req.hdr(idempotency-key) -m found }\n"
      "  option httpchk GET /readyz\n"
      "  http-check expect status 200\n"
      "  default-server inter 500ms fall 2 rise 2\n";
  for (const auto& p : procs_) {
    if (p->role != Role::kApi) continue;
    cfg += "  server api" + std::to_string(p->index + 1) + " 127.0.0.1:" + std::to_string(p->port) +
           " check\n";
  }
  peers::WriteFile(fs::path(dir_) / "haproxy.cfg", cfg);
  return true;
}

bool ClusterShape::Kill(Role role, int index) {
  Proc& p = at(role, index);
  if (!p.process.Running()) return false;
  p.process.Kill();
  return true;
}

bool ClusterShape::Restart(Role role, int index) {
  Proc& p = at(role, index);
  p.process.Kill();
  return StartHerald(p);
}

std::string ClusterShape::Describe() const {
  std::string out;
  out += "Herald cluster on loopback (everything under " + dir_ + "):\n";
  out += "  API (haproxy over " + std::to_string(count(Role::kApi)) + " api processes): " + url() +
         "\n";
  out += "  admin token: " + admin_token_ + "\n";
  for (const auto& p : procs_) {
    out += "  " + std::string(RoleName(p->role)) + std::to_string(p->index + 1) + " (--roles " +
           RoleFlag(p->role) + "): http://127.0.0.1:" + std::to_string(p->port) + "/metrics, pid " +
           std::to_string(p->process.pid()) + ", log " + p->log.string() + "\n";
  }
  out += "  NATS JetStream: " + queue_urls() + "\n";
  out += "  PostgreSQL (pg_auto_failover, monitor on port " +
         std::to_string(pg_ ? pg_->monitor_port() : 0) + "): " + store_uri() + "\n";
  out += "  provider simulator: " + sim_url() + " (messages: " + sim_url() +
         "/sim/messages), SMTP 127.0.0.1:" + std::to_string(sim_smtp_port_) + "\n";
  return out;
}

}  // namespace herald::clustertest

#include "testing/nats/nats_test_cluster.h"

#include <nats/nats.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include "net/test_peers.h"

namespace herald::natstest {

namespace fs = std::filesystem;
using net::peers::PeerProcess;

struct NatsTestCluster::Node {
  std::string name;
  uint16_t client_port = 0;
  uint16_t route_port = 0;
  fs::path config;
  fs::path log;
  PeerProcess process;
};

namespace {

std::string Tail(const fs::path& log, size_t bytes = 1500) {
  std::string text = net::peers::ReadFile(log);
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

// Whether JetStream answers on the node: an account-info request succeeds only once the
// cluster has a meta leader.
bool JetStreamAnswers(const std::string& url) {
  natsConnection* nc = nullptr;
  natsOptions* opts = nullptr;
  if (natsOptions_Create(&opts) != NATS_OK) return false;
  natsOptions_SetURL(opts, url.c_str());
  natsOptions_SetTimeout(opts, 1000);
  natsOptions_SetAllowReconnect(opts, false);
  bool ok = false;
  if (natsConnection_Connect(&nc, opts) == NATS_OK) {
    jsCtx* js = nullptr;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 1000;
    if (natsConnection_JetStream(&js, nc, &jo) == NATS_OK) {
      jsAccountInfo* ai = nullptr;
      jsErrCode jerr = static_cast<jsErrCode>(0);
      ok = js_GetAccountInfo(&ai, js, nullptr, &jerr) == NATS_OK;
      if (ai != nullptr) jsAccountInfo_Destroy(ai);
      jsCtx_Destroy(js);
    }
    natsConnection_Destroy(nc);
  }
  natsOptions_Destroy(opts);
  return ok;
}

}  // namespace

NatsTestCluster::NatsTestCluster(int nodes) {
  for (int i = 0; i < nodes; ++i) nodes_.push_back(std::make_unique<Node>());
}

NatsTestCluster::~NatsTestCluster() {
  for (auto& node : nodes_) node->process.Kill();
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

bool NatsTestCluster::Fail(std::string message) {
  last_error_ = std::move(message);
  return false;
}

std::string NatsTestCluster::Url(int node) const {
  return "nats://127.0.0.1:" + std::to_string(nodes_.at(static_cast<size_t>(node))->client_port);
}

std::string NatsTestCluster::Urls() const {
  std::string out;
  for (int i = 0; i < nodes(); ++i) out += (i > 0 ? "," : "") + Url(i);
  return out;
}

pid_t NatsTestCluster::pid(int node) const {
  return nodes_.at(static_cast<size_t>(node))->process.pid();
}

bool NatsTestCluster::Start() {
  if (net::peers::FindProgram("nats-server").empty()) {
    return Fail("nats-server is not installed (scripts/install-deps installs it)");
  }
  std::string pattern = (fs::temp_directory_path() / "herald-nats-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) return Fail("mkdtemp failed");
  dir_ = pattern;
  // Every port first: each node's routes name all the others.
  for (size_t i = 0; i < nodes_.size(); ++i) {
    Node& n = *nodes_[i];
    n.name = "n" + std::to_string(i + 1);
    n.client_port = net::peers::PickFreePort();
    n.route_port = net::peers::PickFreePort();
  }
  std::string routes;
  for (const auto& n : nodes_) {
    routes += (routes.empty() ? "" : ", ") + std::string("nats-route://127.0.0.1:") +
              std::to_string(n->route_port);
  }
  for (auto& node : nodes_) {
    Node& n = *node;
    const fs::path store = fs::path(dir_) / n.name;
    fs::create_directories(store);
    n.config = fs::path(dir_) / (n.name + ".conf");
    n.log = fs::path(dir_) / (n.name + ".log");
    std::string conf = "server_name: " + n.name +
                       "\nlisten: 127.0.0.1:" + std::to_string(n.client_port) +
                       "\njetstream {\n  store_dir: \"" + store.string() +
                       "\"\n  max_memory_store: 256MB\n  max_file_store: 4GB\n}\n";
    if (nodes_.size() > 1) {
      conf += "cluster {\n  name: herald\n  listen: 127.0.0.1:" + std::to_string(n.route_port) +
              "\n  routes = [" + routes + "]\n}\n";
    }
    net::peers::WriteFile(n.config, conf);
    if (!Launch(n)) return false;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (int i = 0; i < nodes(); ++i) {
    while (!JetStreamAnswers(Url(i))) {
      if (!nodes_[static_cast<size_t>(i)]->process.Running()) {
        return Fail("nats-server " + nodes_[static_cast<size_t>(i)]->name +
                    " exited: " + Tail(nodes_[static_cast<size_t>(i)]->log));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        return Fail("JetStream did not answer within 30 s on " + Url(i) + ": " +
                    Tail(nodes_[static_cast<size_t>(i)]->log));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  last_error_.clear();
  return true;
}

bool NatsTestCluster::Launch(Node& n) {
  if (!n.process.Start({"nats-server", "-c", n.config.string()}, n.log)) {
    return Fail("cannot start nats-server " + n.name);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!net::peers::PortAcceptsConnections(n.client_port)) {
    if (!n.process.Running()) return Fail("nats-server " + n.name + " exited: " + Tail(n.log));
    if (std::chrono::steady_clock::now() > deadline) {
      return Fail("nats-server " + n.name + " did not listen within 10 s: " + Tail(n.log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

bool NatsTestCluster::Kill(int node) {
  Node& n = *nodes_.at(static_cast<size_t>(node));
  if (!n.process.Running()) return false;
  n.process.Kill();
  return true;
}

bool NatsTestCluster::Restart(int node) {
  Node& n = *nodes_.at(static_cast<size_t>(node));
  n.process.Kill();
  return Launch(n);
}

NatsTestCluster* NatsTestCluster::Shared() {
  static std::once_flag once;
  static NatsTestCluster* cluster = nullptr;
  static std::unique_ptr<NatsTestCluster> owner;
  std::call_once(once, [] {
    owner = std::make_unique<NatsTestCluster>(3);
    if (owner->Start()) {
      cluster = owner.get();
    } else {
      std::fprintf(stderr, "NatsTestCluster: %s\n", owner->last_error().c_str());
    }
  });
  return cluster;
}

}  // namespace herald::natstest

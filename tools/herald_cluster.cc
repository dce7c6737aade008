// `make cluster`: Herald's scaled-out shape on loopback (testing/cluster/cluster_shape.h) until
// Ctrl-C. 3 nats-server nodes, PostgreSQL with two standbys and automatic failover
// (pg_auto_failover), the provider simulator, 2 API processes behind haproxy on
// 127.0.0.1:8080, 2 fan-out + dispatch processes and a reaper. The admin token is the one in
// data/admin_token (created when missing), so the README's demo works against it unchanged.
//
//   build/herald_cluster [--herald build/herald] [--port 8080] [--token-file data/admin_token]
//                        [--dir DIR] [--sim-port 9090] [--sim-smtp-port 2525]
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "crypto/crypto.h"
#include "testing/cluster/cluster_shape.h"

namespace {

std::string Flag(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (name == argv[i]) return argv[i + 1];
  }
  return fallback;
}

// A port number flag, or nullopt (and a message) when it is not one.
std::optional<uint16_t> PortFlag(int argc, char** argv, const std::string& name,
                                 const std::string& fallback) {
  const std::string text = Flag(argc, argv, name, fallback);
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < 1 || v > 65535) {
    std::fprintf(stderr, "herald_cluster: %s must be a port number (1-65535), not \"%s\"\n",
                 name.c_str(), text.c_str());
    return std::nullopt;
  }
  return static_cast<uint16_t>(v);
}

std::string LoadOrCreateToken(const std::string& path) {
  std::ifstream in(path);
  std::string token;
  if (in && std::getline(in, token) && !token.empty()) return token;
  token = herald::crypto::RandomId("adm_", 40);
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return token;
  const std::string line = token + "\n";
  (void)!::write(fd, line.data(), line.size());
  ::close(fd);
  return token;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::printf(
          "usage: herald_cluster [--herald build/herald] [--port 8080] "
          "[--token-file data/admin_token] [--dir DIR] [--sim-port 9090] "
          "[--sim-smtp-port 2525]\n");
      return 0;
    }
  }
  if (!herald::crypto::InitCrypto()) return 1;
  // Ctrl-C and SIGTERM are waited for below; blocked before any thread or child starts.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  const std::optional<uint16_t> port = PortFlag(argc, argv, "--port", "8080");
  // Where `make run` has them, so that the README's demo finds the simulator too.
  const std::optional<uint16_t> sim_port = PortFlag(argc, argv, "--sim-port", "9090");
  const std::optional<uint16_t> sim_smtp_port = PortFlag(argc, argv, "--sim-smtp-port", "2525");
  if (!port || !sim_port || !sim_smtp_port) return 2;
  herald::clustertest::ClusterShapeOptions options;
  options.herald = Flag(argc, argv, "--herald", "build/herald");
  options.port = *port;
  options.sim_port = *sim_port;
  options.sim_smtp_port = *sim_smtp_port;
  options.dir = Flag(argc, argv, "--dir", "");
  options.admin_token = LoadOrCreateToken(Flag(argc, argv, "--token-file", "data/admin_token"));
  const auto started = std::chrono::steady_clock::now();
  options.progress = [started](const std::string& line) {
    const auto s = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - started)
                       .count();
    std::fprintf(stderr, "[%6.1f s] %s\n", static_cast<double>(s) / 1000.0, line.c_str());
  };
  herald::clustertest::ClusterShape cluster(options);
  if (!cluster.Start()) {
    std::fprintf(stderr, "herald_cluster: %s\n", cluster.last_error().c_str());
    return 1;
  }
  std::fprintf(stderr, "\n%s", cluster.Describe().c_str());
  std::fprintf(stderr,
               "  the admin token is also in %s (the README's demo works as it is)\n"
               "  stop everything with Ctrl-C\n\n",
               Flag(argc, argv, "--token-file", "data/admin_token").c_str());
  int sig = 0;
  sigwait(&stop, &sig);
  std::fprintf(stderr, "herald_cluster: stopping everything it started ...\n");
  return 0;  // the destructor stops Herald, haproxy, the simulator, PostgreSQL and NATS
}

// `herald serve`: every role in one process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace herald::cmd {

struct ServeOptions {
  std::string data_dir = "data";
  std::string listen = "127.0.0.1:8080";
  int io_threads = 2;
  int worker_threads = 32;
  uint64_t max_body_bytes = 1 << 20;
  std::string tls_cert;
  std::string tls_key;
  std::string log_level = "info";
  // Tenants without provider settings of their own deliver to this provider simulator
  // (`herald sim`): its HTTP base URL and its SMTP host:port.
  std::string sim_url;
  std::string sim_smtp;
  // The externally visible base URL (scheme://host:port) of this server: receipt webhooks'
  // signatures are computed over URLs built on it. Default: the request's Host header.
  std::string public_url;
  bool with_sim = false;  // start a simulator in this process and deliver to it
  std::string with_sim_listen = "127.0.0.1:9090";       // its HTTP port (port 0 picks one)
  std::string with_sim_smtp_listen = "127.0.0.1:2525";  // its SMTP port (port 0 picks one)
  int dispatch_workers = 2;
  size_t max_in_flight = 4096;     // provider sends outstanding at once, at most (adaptive below)
  int shutdown_grace_ms = 10'000;  // on SIGTERM, how long sends in flight may take to finish
};

// Runs until SIGTERM or SIGINT; returns the process exit code.
int RunServe(const ServeOptions& options);

}  // namespace herald::cmd

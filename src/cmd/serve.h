// `herald serve`: every role in one process.
#pragma once

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
};

// Runs until SIGTERM or SIGINT; returns the process exit code.
int RunServe(const ServeOptions& options);

}  // namespace herald::cmd

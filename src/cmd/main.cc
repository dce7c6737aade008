// herald — the command line. Subcommands: serve.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cmd/serve.h"

int main(int argc, char** argv) {
  CLI::App app{"Herald: multi-tenant notification delivery"};
  app.set_config("--config", "", "Read options from this TOML/INI file ([serve] section)");
  app.require_subcommand(1);

  herald::cmd::ServeOptions serve;
  CLI::App* serve_cmd = app.add_subcommand("serve", "Run every role of Herald in one process");
  serve_cmd->add_option("--data-dir", serve.data_dir, "Data directory (SQLite store, key files)")
      ->envname("HERALD_DATA_DIR")
      ->capture_default_str();
  serve_cmd->add_option("--listen", serve.listen, "HTTP listen address host:port")
      ->envname("HERALD_LISTEN")
      ->capture_default_str();
  serve_cmd->add_option("--io-threads", serve.io_threads, "Threads serving sockets")
      ->envname("HERALD_IO_THREADS")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  serve_cmd->add_option("--worker-threads", serve.worker_threads, "Threads running handlers")
      ->envname("HERALD_WORKER_THREADS")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  serve_cmd->add_option("--max-body-bytes", serve.max_body_bytes, "Largest buffered request body")
      ->envname("HERALD_MAX_BODY_BYTES")
      ->capture_default_str();
  serve_cmd->add_option("--tls-cert", serve.tls_cert, "PEM certificate chain: serve HTTPS")
      ->envname("HERALD_TLS_CERT");
  serve_cmd->add_option("--tls-key", serve.tls_key, "PEM private key for --tls-cert")
      ->envname("HERALD_TLS_KEY");
  serve_cmd->add_option("--log-level", serve.log_level, "debug, info, warn or error")
      ->envname("HERALD_LOG_LEVEL")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  if (serve_cmd->parsed()) return herald::cmd::RunServe(serve);
  return 2;
}

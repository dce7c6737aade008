// herald — the command line. Subcommands: serve, sim.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cmd/serve.h"
#include "cmd/sim_cmd.h"

int main(int argc, char** argv) {
  CLI::App app{"Herald: multi-tenant notification delivery"};
  app.set_config("--config", "", "Read options from this TOML/INI file ([serve] section)");
  app.require_subcommand(1);

  herald::cmd::ServeOptions serve;
  CLI::App* serve_cmd = app.add_subcommand(
      "serve", "Run Herald: every role in one process, or the roles named by --roles");
  serve_cmd->add_option("--data-dir", serve.data_dir, "Data directory (SQLite store, key files)")
      ->envname("HERALD_DATA_DIR")
      ->capture_default_str();
  serve_cmd
      ->add_option("--store", serve.store,
                   "Store: sqlite (herald.db in --data-dir) or a PostgreSQL URI "
                   "(postgresql://user@host:port/db, multi-host allowed)")
      ->envname("HERALD_STORE")
      ->capture_default_str();
  serve_cmd
      ->add_option("--queue", serve.queue,
                   "Delivery queue: local (in process) or a NATS JetStream cluster "
                   "(nats://host:port[,host:port...]; needs a PostgreSQL --store)")
      ->envname("HERALD_QUEUE")
      ->capture_default_str();
  serve_cmd
      ->add_option("--roles", serve.roles,
                   "What this process does: all, or a comma-separated list of api, fanout, "
                   "dispatch, reaper")
      ->envname("HERALD_ROLES")
      ->capture_default_str();
  serve_cmd
      ->add_flag("--store-require-standby", serve.store_require_standby,
                 "PostgreSQL: answer a write only once a synchronous standby has it "
                 "(503 while the primary runs alone)")
      ->envname("HERALD_STORE_REQUIRE_STANDBY");
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
  serve_cmd
      ->add_option("--sim", serve.sim_url,
                   "Provider simulator base URL for tenants without providers")
      ->envname("HERALD_SIM");
  serve_cmd->add_option("--sim-smtp", serve.sim_smtp, "The simulator's SMTP host:port")
      ->envname("HERALD_SIM_SMTP");
  serve_cmd
      ->add_option("--public-url", serve.public_url,
                   "This server's external base URL (receipt webhook signatures)")
      ->envname("HERALD_PUBLIC_URL");
  serve_cmd
      ->add_option("--allow-provider-hosts", serve.allow_provider_hosts,
                   "Loopback/private hosts providers may be reached at, and may use http:// "
                   "(comma-separated host[:port], IP[:port] or CIDR; the simulator is allowed)")
      ->envname("HERALD_ALLOW_PROVIDER_HOSTS");
  serve_cmd
      ->add_flag("--with-sim", serve.with_sim,
                 "Start a provider simulator in this process and deliver to it")
      ->envname("HERALD_WITH_SIM");
  serve_cmd
      ->add_option("--with-sim-listen", serve.with_sim_listen,
                   "With --with-sim: the simulator's HTTP address (port 0 picks one)")
      ->envname("HERALD_WITH_SIM_LISTEN")
      ->capture_default_str();
  serve_cmd
      ->add_option("--with-sim-smtp-listen", serve.with_sim_smtp_listen,
                   "With --with-sim: the simulator's SMTP address (port 0 picks one)")
      ->envname("HERALD_WITH_SIM_SMTP_LISTEN")
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-connections", serve.max_connections,
                   "Client connections at most (0 = what the descriptor limit allows)")
      ->envname("HERALD_MAX_CONNECTIONS")
      ->check(CLI::Range(0, 10000000))
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-connections-per-client", serve.max_connections_per_client,
                   "Client connections from one address at most (0 = no cap, e.g. behind a "
                   "proxy)")
      ->envname("HERALD_MAX_CONNECTIONS_PER_CLIENT")
      ->check(CLI::Range(0, 10000000))
      ->capture_default_str();
  serve_cmd
      ->add_option("--header-timeout-ms", serve.header_timeout_ms,
                   "Time a request's head may take to arrive (slow clients get 408)")
      ->envname("HERALD_HEADER_TIMEOUT_MS")
      ->check(CLI::Range(100, 600000))
      ->capture_default_str();
  serve_cmd
      ->add_option("--api-processes", serve.api_processes,
                   "API processes that share the tenants' rate limits (each enforces 1/N)")
      ->envname("HERALD_API_PROCESSES")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  serve_cmd
      ->add_option("--auth-failures-per-minute", serve.auth_failures_per_minute,
                   "Failed authentications one client address may make a minute, then 429")
      ->envname("HERALD_AUTH_FAILURES_PER_MINUTE")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  serve_cmd
      ->add_option("--dispatch-workers", serve.dispatch_workers,
                   "Threads taking delivery jobs from the queue")
      ->envname("HERALD_DISPATCH_WORKERS")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-in-flight", serve.max_in_flight, "Provider sends outstanding at once")
      ->envname("HERALD_MAX_IN_FLIGHT")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  serve_cmd
      ->add_option("--shutdown-grace-ms", serve.shutdown_grace_ms,
                   "On SIGTERM, how long sends in flight may take to finish")
      ->envname("HERALD_SHUTDOWN_GRACE_MS")
      ->check(CLI::Range(0, 600000))
      ->capture_default_str();

  herald::cmd::SimOptions sim;
  CLI::App* sim_cmd = app.add_subcommand("sim",
                                         "Run the provider simulator (APNs, FCM, SMTP, "
                                         "SendGrid, Twilio, Vonage on loopback)");
  sim_cmd->add_option("--listen", sim.listen, "HTTP (h2c + HTTP/1.1) listen address host:port")
      ->envname("HERALD_SIM_LISTEN")
      ->capture_default_str();
  sim_cmd->add_option("--smtp-listen", sim.smtp_listen, "SMTP listen address host:port, or \"\"")
      ->envname("HERALD_SIM_SMTP_LISTEN")
      ->capture_default_str();
  sim_cmd->add_option("--tls-listen", sim.tls_listen, "HTTPS (h2 + HTTP/1.1) listen address")
      ->envname("HERALD_SIM_TLS_LISTEN");
  sim_cmd->add_option("--tls-cert", sim.tls_cert, "PEM certificate (default: self-signed)")
      ->envname("HERALD_SIM_TLS_CERT");
  sim_cmd->add_option("--tls-key", sim.tls_key, "PEM private key for --tls-cert")
      ->envname("HERALD_SIM_TLS_KEY");
  sim_cmd->add_flag("--smtp-starttls", sim.smtp_starttls, "Offer STARTTLS on SMTP");
  sim_cmd->add_option("--threads", sim.threads, "IO threads")
      ->envname("HERALD_SIM_THREADS")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  sim_cmd->add_flag("!--no-demo-apns-key", sim.trust_demo_apns_key,
                    "Do not trust the published demo APNs key id by default");

  CLI11_PARSE(app, argc, argv);
  if (serve_cmd->parsed()) return herald::cmd::RunServe(serve);
  if (sim_cmd->parsed()) return herald::cmd::RunSim(sim);
  return 2;
}

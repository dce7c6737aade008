// `herald serve`: the roles of Herald (all of them by default) in one process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace herald::cmd {

struct ServeOptions {
  std::string data_dir = "data";
  // "sqlite" (the file herald.db in data_dir) or a libpq URI, postgresql://... (multi-host
  // allowed, e.g. with target_session_attrs=read-write).
  std::string store = "sqlite";
  // PostgreSQL with synchronous standbys: answer a write only once a standby has it
  // (PostgresStoreOptions::require_standby).
  bool store_require_standby = false;
  // "local" (in process; its durable state is the store) or a NATS JetStream cluster,
  // nats://host:port[,host:port...] (needs a PostgreSQL store: SQLite is one process's).
  std::string queue = "local";
  // What this process does: a comma-separated list of api (the HTTP API), fanout (turns sends
  // into deliveries), dispatch (sends them to providers), reaper (erases users whose consent
  // ended: one process at a time), or "all". Processes without api serve only /healthz,
  // /readyz and /metrics.
  std::string roles = "all";
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
  // Hosts the outbound client may reach although they are loopback, private or link-local,
  // and to which provider settings may use plain http:// (comma-separated host names, IP
  // addresses or CIDR networks, each with an optional :port). The simulator's address is
  // always allowed.
  std::string allow_provider_hosts;
  bool with_sim = false;  // start a simulator in this process and deliver to it
  std::string with_sim_listen = "127.0.0.1:9090";       // its HTTP port (port 0 picks one)
  std::string with_sim_smtp_listen = "127.0.0.1:2525";  // its SMTP port (port 0 picks one)
  // Connection ceilings (http/server.h). 0 = as many as the descriptor limit allows, less a
  // reserve for the store, the providers and the health-check reserve.
  int max_connections = 0;
  int max_connections_per_client = 1'000;  // 0 = no per-client cap (behind a proxy)
  int header_timeout_ms = 10'000;          // a request's head must arrive within this (else 408)
  // How many API processes share each tenant's quotas: each enforces 1/N of them.
  int api_processes = 1;
  // Failed authentications one client address may make a minute before its requests are
  // answered 429 (credential stuffing, a misconfigured client in a loop).
  int auth_failures_per_minute = 60;
  int dispatch_workers = 2;
  size_t max_in_flight = 4096;     // provider sends outstanding at once, at most (adaptive below)
  int shutdown_grace_ms = 10'000;  // on SIGTERM, how long sends in flight may take to finish
};

// Runs until SIGTERM or SIGINT; returns the process exit code.
int RunServe(const ServeOptions& options);

}  // namespace herald::cmd

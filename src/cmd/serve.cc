#include "cmd/serve.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "api/api.h"
#include "cmd/stop_signals.h"
#include "common/sealed_ids.h"
#include "common/timer_queue.h"
#include "crypto/crypto.h"
#include "http/server.h"
#include "net/destination_policy.h"
#include "net/http_client.h"
#include "observe/log.h"
#include "observe/metrics.h"
#include "pipeline/consent_reaper.h"
#include "pipeline/dispatcher.h"
#include "pipeline/duty.h"
#include "pipeline/fanout.h"
#include "pipeline/provider_directory.h"
#include "providers/chain.h"
#include "providers/sim_defaults.h"
#include "queue/jetstream/jetstream_queue.h"
#include "queue/queue.h"
#include "sim/simulator.h"
#include "store/postgres/postgres_store.h"
#include "store/sqlite/sqlite_store.h"

namespace herald::cmd {
namespace {

// "nats://h1:p1,h2:p2" -> "nats://h1:p1,nats://h2:p2": libnats wants a scheme on every server.
std::string NatsUrls(const std::string& queue) {
  std::string out;
  std::stringstream ss(queue);
  for (std::string part; std::getline(ss, part, ',');) {
    if (part.empty()) continue;
    if (part.find("://") == std::string::npos) part.insert(0, "nats://");
    if (!out.empty()) out += ',';
    out += part;
  }
  return out;
}

namespace fs = std::filesystem;

struct Roles {
  bool api = false;
  bool fanout = false;
  bool dispatch = false;
  bool reaper = false;
  std::string Names() const {
    std::string out;
    for (auto [on, name] : {std::pair{api, "api"}, std::pair{fanout, "fanout"},
                            std::pair{dispatch, "dispatch"}, std::pair{reaper, "reaper"}}) {
      if (on) out += (out.empty() ? "" : ",") + std::string(name);
    }
    return out;
  }
};

// "all" or a comma-separated list of roles; prints why and returns nullopt when it is neither.
std::optional<Roles> ParseRoles(const std::string& text) {
  Roles roles;
  if (text.empty() || text == "all") return Roles{true, true, true, true};
  std::stringstream ss(text);
  bool any = false;
  for (std::string part; std::getline(ss, part, ',');) {
    while (!part.empty() && part.front() == ' ') part.erase(part.begin());
    while (!part.empty() && part.back() == ' ') part.pop_back();
    if (part.empty()) continue;
    if (part == "api") {
      roles.api = true;
    } else if (part == "fanout") {
      roles.fanout = true;
    } else if (part == "dispatch") {
      roles.dispatch = true;
    } else if (part == "reaper") {
      roles.reaper = true;
    } else if (part == "all") {
      roles = Roles{true, true, true, true};
    } else {
      std::fprintf(stderr,
                   "herald: --roles: unknown role \"%s\"; the roles are api, fanout, dispatch "
                   "and reaper (comma-separated), or all\n",
                   part.c_str());
      return std::nullopt;
    }
    any = true;
  }
  if (!any) {
    std::fprintf(stderr,
                 "herald: --roles names no role; use api, fanout, dispatch, reaper or all\n");
    return std::nullopt;
  }
  return roles;
}

// Reads a secret from `env`, else from data_dir/file, else makes one and writes it there with
// mode 0600. Returns "" and prints why on failure.
std::string LoadOrCreateSecret(const char* env, const fs::path& file,
                               const std::function<std::string()>& make, bool* created) {
  *created = false;
  if (const char* v = std::getenv(env); v != nullptr && *v != '\0') return v;
  std::ifstream in(file);
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    if (!s.empty()) return s;
  }
  std::string secret = make();
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::fprintf(stderr, "herald: cannot write %s: %s\n", file.c_str(), std::strerror(errno));
    return "";
  }
  const std::string line = secret + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::fchmod(fd, 0600);
  ::close(fd);
  if (!ok) return "";
  *created = true;
  return secret;
}

observe::LogLevel ParseLevel(const std::string& s) {
  if (s == "debug") return observe::LogLevel::kDebug;
  if (s == "warn") return observe::LogLevel::kWarn;
  if (s == "error") return observe::LogLevel::kError;
  return observe::LogLevel::kInfo;
}

// Raises the descriptor limit to its hard maximum and returns how many client connections fit
// under it: the rest is kept for the store, provider connections and the server's reserve.
int ConnectionCeiling(int configured) {
  constexpr rlim_t kKeptBack = 1'024 + 2 * 64;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  const rlim_t fds = limit.rlim_cur == RLIM_INFINITY ? 1'048'576 : limit.rlim_cur;
  const int fits =
      fds > kKeptBack + 64 ? static_cast<int>(std::min<rlim_t>(fds - kKeptBack, 1'000'000)) : 64;
  if (configured > fits) {
    observe::Warn("max_connections lowered to fit the descriptor limit",
                  {{"configured", configured},
                   {"used", fits},
                   {"descriptor_limit", static_cast<long long>(fds)}});
  }
  return configured > 0 ? std::min(configured, fits) : fits;
}

// "host:port" of scheme://host:port/..., "" when `url` is empty.
std::string AuthorityOf(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return {};
  const std::string rest = url.substr(scheme + 3);
  return rest.substr(0, rest.find_first_of("/?#"));
}

}  // namespace

int RunServe(const ServeOptions& options) {
  observe::SetLogLevel(ParseLevel(options.log_level));
  if (!crypto::InitCrypto()) {
    std::fprintf(stderr, "herald: libsodium failed to initialise\n");
    return 1;
  }
  const sigset_t stop_signals = BlockStopSignals();  // before any thread starts

  // Everything Herald creates (the database and its WAL, key files) is for its own user only.
  ::umask(077);
  std::error_code ec;
  const fs::path data_dir = options.data_dir;
  fs::create_directories(data_dir, ec);
  if (ec) {
    std::fprintf(stderr, "herald: cannot create data directory %s: %s\n", data_dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  fs::permissions(data_dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  // Files an older Herald (or another umask) created readable by others are narrowed too.
  for (const char* name : {"herald.db", "herald.db-wal", "herald.db-shm"}) {
    fs::permissions(data_dir / name, fs::perms::owner_read | fs::perms::owner_write,
                    fs::perm_options::replace, ec);
  }

  bool admin_created = false;
  bool master_created = false;
  const fs::path admin_file = data_dir / "admin_token";
  const fs::path master_file = data_dir / "master_key";
  const std::string admin_token = LoadOrCreateSecret(
      "HERALD_ADMIN_TOKEN", admin_file, [] { return crypto::RandomId("adm_", 40); },
      &admin_created);
  const std::string master_text = LoadOrCreateSecret(
      "HERALD_MASTER_KEY", master_file, [] { return crypto::FormatMasterKey(crypto::RandomKey()); },
      &master_created);
  if (admin_token.empty() || master_text.empty()) return 1;
  auto master = crypto::ParseMasterKey(master_text);
  if (!master.ok()) {
    std::fprintf(stderr, "herald: the master key is not valid: %s\n",
                 master.error().message.c_str());
    return 1;
  }

  // Delivery and audit ids, and cursors, are sealed row keys: the same in every process that
  // shares this master key, and across restarts.
  SetSealedIdKey(crypto::DeriveSubkey(*master, "sealedid", 1));

  observe::Registry metrics;
  auto& batch_sizes = metrics.GetHistogram("herald_store_write_batch_size",
                                           "Writes committed per store transaction.",
                                           {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024});
  auto on_batch = [&batch_sizes](size_t n) { batch_sizes.Observe(static_cast<double>(n)); };
  const std::optional<Roles> roles = ParseRoles(options.roles);
  if (!roles) return 2;
  const bool jetstream = options.queue.rfind("nats://", 0) == 0;
  if (!jetstream && roles->fanout != roles->dispatch) {
    std::fprintf(stderr,
                 "herald: --roles %s: with the local queue, fanout and dispatch run in one "
                 "process (the queue lives in it); share a JetStream queue (--queue "
                 "nats://...) to run them apart\n",
                 options.roles.c_str());
    return 2;
  }
  if (!jetstream && !options.queue.empty() && options.queue != "local") {
    std::fprintf(stderr,
                 "herald: --queue must be local or nats://host:port[,host:port...], not \"%s\"\n",
                 options.queue.c_str());
    return 2;
  }
  if (jetstream && !IsPostgresUri(options.store)) {
    std::fprintf(stderr,
                 "herald: --queue nats://... needs a PostgreSQL store (--store postgresql://...): "
                 "SQLite is one process's store, and the processes sharing a JetStream queue "
                 "must share their store\n");
    return 2;
  }
  Result<std::unique_ptr<Store>> store = Error{};
  std::string store_name;  // for the log: never the URI, which may hold a password
  if (options.store.empty() || options.store == "sqlite") {
    if (options.store_require_standby) {
      std::fprintf(stderr,
                   "herald: --store-require-standby needs a PostgreSQL store (--store "
                   "postgresql://...); SQLite has no standby\n");
      return 2;
    }
    SqliteStoreOptions store_options;
    store_options.path = (data_dir / "herald.db").string();
    store_options.master_key = *master;
    store_options.on_batch = on_batch;
    store = OpenSqliteStore(std::move(store_options));
    store_name = "sqlite";
  } else if (IsPostgresUri(options.store)) {
    PostgresStoreOptions store_options;
    store_options.uri = options.store;
    store_options.require_standby = options.store_require_standby;
    store_options.master_key = *master;
    store_options.on_batch = on_batch;
    store = OpenPostgresStore(std::move(store_options));
    store_name = "postgresql";
  } else {
    std::fprintf(stderr,
                 "herald: --store must be sqlite or a PostgreSQL URI (postgresql://...), "
                 "not \"%s\"\n",
                 options.store.c_str());
    return 2;
  }
  if (!store.ok()) {
    std::fprintf(stderr, "herald: cannot open the %s store: %s\n", store_name.c_str(),
                 store.error().message.c_str());
    return 1;
  }

  // A local queue is one process's: a second process dispatching from its own local queue on
  // the same PostgreSQL store would rebuild its queue with the first one's deliveries too.
  std::unique_ptr<DutyLease> local_queue_duty;
  if (!jetstream && roles->dispatch) {
    Result<std::unique_ptr<DutyLease>> duty = (*store)->TryTakeDuty("local-queue");
    if (!duty.ok()) {
      std::fprintf(stderr, "herald: cannot take the local queue's lease: %s\n",
                   duty.error().message.c_str());
      return 1;
    }
    if (*duty == nullptr) {
      std::fprintf(stderr,
                   "herald: another Herald process dispatches from a local queue on this "
                   "store; run one such process, or share a JetStream queue among several "
                   "(--queue nats://...)\n");
      return 1;
    }
    local_queue_duty = std::move(*duty);
  }

  // The consent reaper: one process at a time (the holder of the store's "consent-reaper"
  // duty) among those with the role. Another process's writes do not nudge it: with a shared
  // store it reads the next expiry at least twice a second.
  ConsentReaper reaper(store->get(), &metrics);
  if (store_name != "sqlite") reaper.set_max_sleep(500);
  (*store)->SetConsentExpiryListener([&reaper](UnixMillis at) { reaper.Nudge(at); });
  std::unique_ptr<Duty> reaper_duty;
  if (roles->reaper) {
    reaper_duty = std::make_unique<Duty>(
        store->get(), "consent-reaper", [&reaper] { reaper.Start(); }, [&reaper] { reaper.Stop(); },
        &metrics);
    reaper_duty->Start();
  }
  auto stop_reaper = [&reaper_duty] {
    if (reaper_duty) reaper_duty->Stop();
  };

  // ---- the send pipeline: simulator (optional), providers, queue, fan-out, dispatcher ----
  std::unique_ptr<sim::Simulator> simulator;
  std::string sim_url = options.sim_url;
  std::string sim_smtp = options.sim_smtp;
  if (options.with_sim) {
    sim::SimulatorOptions sim_options;
    sim_options.listen = options.with_sim_listen;
    sim_options.smtp_listen = options.with_sim_smtp_listen;
    simulator = sim::MakeSimulator(sim_options);
    if (auto s = simulator->Start(); !s.ok()) {
      std::fprintf(stderr, "herald: cannot start the simulator on %s / %s: %s\n",
                   options.with_sim_listen.c_str(), options.with_sim_smtp_listen.c_str(),
                   s.error().message.c_str());
      stop_reaper();
      return 1;
    }
    sim_url = "http://127.0.0.1:" + std::to_string(simulator->port());
    sim_smtp = "127.0.0.1:" + std::to_string(simulator->smtp_port());
  }
  // Where provider requests may go: the operator's allowed hosts and the simulator; never
  // Herald's own API (added once the listener is bound); loopback, private and link-local
  // addresses only when allowed.
  auto destinations = std::make_shared<net::DestinationPolicy>();
  for (const std::string& allowed :
       {options.allow_provider_hosts, AuthorityOf(sim_url), sim_smtp}) {
    if (Status s = destinations->Allow(allowed); !s.ok()) {
      std::fprintf(stderr, "herald: --allow-provider-hosts: %s\n", s.error().message.c_str());
      stop_reaper();
      return 1;
    }
  }
  net::HttpClientOptions client_options;
  client_options.destinations = destinations;
  std::unique_ptr<net::HttpClient> http_client = net::MakeHttpClient(client_options);
  if (!http_client) {
    std::fprintf(stderr, "herald: libcurl failed to initialise\n");
    stop_reaper();
    return 1;
  }
  TimerQueue timers;
  DirectoryOptions directory_options;
  directory_options.router.max_rounds = 1;  // the dispatcher schedules retries on the queue
  if (!sim_url.empty()) {
    directory_options.fallback = [sim_url, sim_smtp](Channel c) {
      return providers::SimProviderConfigs(c, sim_url, sim_smtp);
    };
  }
  ProviderDirectory directory(store->get(), http_client.get(), &timers, directory_options);
  std::unique_ptr<Queue> queue;  // the dispatcher sets its limits
  if (jetstream && (roles->fanout || roles->dispatch)) {
    // The stream is durable: what it holds survives this process, so no rebuild.
    JetStreamQueueOptions queue_options;
    queue_options.urls = NatsUrls(options.queue);
    Result<std::unique_ptr<Queue>> opened = OpenJetStreamQueue(queue_options);
    if (!opened.ok()) {
      std::fprintf(stderr, "herald: cannot open the JetStream queue: %s\n",
                   opened.error().message.c_str());
      stop_reaper();
      return 1;
    }
    queue = std::move(*opened);
    observe::Info("queue_opened", {{"queue", "jetstream"}, {"stream", queue_options.stream}});
  } else if (roles->dispatch) {
    queue = MakeLocalQueue({});
    Store* sweep_store = store->get();
    if (auto n = RebuildLocalQueue(*queue,
                                   [sweep_store](int64_t after, int limit) {
                                     return sweep_store->ListUnfinishedDeliveries(after, limit);
                                   });
        !n.ok()) {
      std::fprintf(stderr, "herald: cannot read unfinished deliveries: %s\n",
                   n.error().message.c_str());
      stop_reaper();
      return 1;
    } else if (*n > 0) {
      observe::Info("deliveries_requeued", {{"count", static_cast<long long>(*n)}});
    }
  }
  std::unique_ptr<Fanout> fanout;
  if (roles->fanout) {
    FanoutOptions fanout_options;
    fanout = std::make_unique<Fanout>(store->get(), queue.get(), &metrics, fanout_options);
    fanout->Start();
  }
  std::unique_ptr<Dispatcher> dispatcher;
  if (roles->dispatch) {
    DispatcherOptions dispatcher_options;
    dispatcher_options.workers = options.dispatch_workers;
    dispatcher_options.max_in_flight = options.max_in_flight;
    dispatcher = std::make_unique<Dispatcher>(store->get(), queue.get(), &directory, &metrics,
                                              dispatcher_options);
    dispatcher->Start();
  }
  auto stop_pipeline = [&fanout, &dispatcher](std::chrono::milliseconds grace) {
    if (fanout) fanout->Stop();               // its progress is stored with every page
    if (dispatcher) dispatcher->Stop(grace);  // sends finish
  };

  api::ApiOptions api_options;
  api_options.admin_token = admin_token;
  api_options.max_body_bytes = options.max_body_bytes;
  api_options.ops_only = !roles->api;
  // A send accepted here starts fanning out at once; without the role here, a fan-out process
  // finds it in the store (within its poll).
  if (fanout) {
    api_options.on_notification = [&fanout](const std::string& id) { fanout->Submit(id); };
  }
  api_options.public_url = options.public_url;
  api_options.check_provider_settings = [destinations](std::string_view doc) {
    return providers::CheckProviderSettings(doc, *destinations);
  };
  api_options.on_provider_settings = [&directory](const std::string& tenant_id, Channel c) {
    directory.Refresh(tenant_id, c);
  };
  api_options.receipt_secret = [&store](const std::string& tenant_id,
                                        std::string_view provider) -> Result<std::string> {
    const Channel channel = provider == "sendgrid" ? Channel::kEmail : Channel::kSms;
    Result<ProviderSettings> settings = (*store)->GetProviderSettings(tenant_id, channel);
    if (!settings.ok()) return settings.take_error();
    return providers::ReceiptSecret(settings->config_json, provider);
  };
  api_options.rate_limits.processes = options.api_processes;
  api_options.rate_limits.failed_auth = RateQuota{options.auth_failures_per_minute, 60, 0};
  http::ServerOptions server_options;
  server_options.listen = options.listen;
  server_options.max_connections = ConnectionCeiling(options.max_connections);
  server_options.max_connections_per_client = options.max_connections_per_client;
  server_options.header_timeout_ms = options.header_timeout_ms;
  server_options.io_threads = options.io_threads;
  server_options.worker_threads = options.worker_threads;
  server_options.tls_cert_file = options.tls_cert;
  server_options.tls_key_file = options.tls_key;
  auto server =
      http::MakeServer(server_options, api::MakeApiHandler(api_options, store->get(), &metrics));
  if (auto s = server->Start(); !s.ok()) {
    std::fprintf(stderr, "herald: cannot listen on %s: %s\n", options.listen.c_str(),
                 s.error().message.c_str());
    stop_pipeline(std::chrono::milliseconds(0));
    stop_reaper();
    return 1;
  }

  const std::string scheme = options.tls_cert.empty() ? "http" : "https";
  std::string host = options.listen.substr(0, options.listen.rfind(':'));
  {
    std::string literal = host == "localhost" ? "127.0.0.1" : host;
    if (literal.empty() || literal == "*") literal = "0.0.0.0";
    net::IpEndpoint own;
    if (net::IpEndpoint::FromLiteral(literal, server->port(), &own)) {
      destinations->DenyOwnEndpoint(own);
    }
  }
  const std::string url = scheme + "://" + host + ":" + std::to_string(server->port());
  observe::Info("herald serving", {{"url", url},
                                   {"data_dir", data_dir.string()},
                                   {"store", store_name},
                                   {"queue", jetstream ? "jetstream" : "local"},
                                   {"roles", roles->Names()}});
  std::fprintf(stderr, "\nHerald is up at %s (roles: %s)\n", url.c_str(), roles->Names().c_str());
  std::fprintf(stderr, "  API description: %s/openapi.json   metrics: %s/metrics\n", url.c_str(),
               url.c_str());
  if (std::getenv("HERALD_ADMIN_TOKEN") == nullptr) {
    std::fprintf(stderr, "  admin token: in %s%s\n", admin_file.c_str(),
                 admin_created ? " (created now)" : "");
  } else {
    std::fprintf(stderr, "  admin token: from HERALD_ADMIN_TOKEN\n");
  }
  if (master_created) {
    std::fprintf(stderr, "  master key: created in %s (mode 0600) - back it up\n",
                 master_file.c_str());
  }
  if (simulator) {
    std::fprintf(stderr, "  provider simulator: %s (messages: %s/sim/messages), SMTP %s\n",
                 sim_url.c_str(), sim_url.c_str(), sim_smtp.c_str());
  } else if (!sim_url.empty()) {
    std::fprintf(stderr, "  tenants without providers deliver to the simulator at %s\n",
                 sim_url.c_str());
  }
  std::fprintf(stderr, "  stop with Ctrl-C (SIGINT) or SIGTERM\n\n");

  const int sig = WaitForStopSignal(stop_signals);
  observe::Info("herald stopping", {{"signal", sig}});
  server->Stop();  // no new requests; in-flight requests finish
  stop_pipeline(std::chrono::milliseconds(options.shutdown_grace_ms));
  if (queue) queue->Close();
  stop_reaper();
  if (auto s = (*store)->Flush(); !s.ok()) {
    observe::Error("final flush failed", {{"code", s.error().code}});
  }
  if (simulator) simulator->Stop();
  observe::Info("herald stopped");
  return 0;
}

}  // namespace herald::cmd

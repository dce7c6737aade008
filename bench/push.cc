// Push benchmark: pushes per second from the APNs and FCM clients (src/providers, through
// net::HttpClient over HTTP/2 with prior knowledge) to the provider simulator, beside h2load
// against the same simulator endpoint in the same run, with the same connections (-c) and
// streams per connection (-m), a JSON body and a valid bearer token. Prints both rates and the
// ratio (target: the client reaches at least 0.6 of h2load's rate).
//
//   build/bench_push [--n=50000] [--c=2] [--m=100] [--sim-threads=1] [--sim=http://HOST:PORT]
//                    [--engine=native|curl]
//
// --engine=curl serves HTTP/2 with libcurl instead of Herald's own client
// (HttpClientOptions::native_http2 = false), for before/after comparisons in one session.
//
// Without --sim the simulator runs in this process (port 0); with it, a running `herald sim`
// (which trusts the demo APNs key by default) is used.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "net/http_client.h"
#include "providers/jwt.h"
#include "providers/provider.h"
#include "providers/sim_defaults.h"
#include "sim/demo_credentials.h"
#include "sim/simulator.h"

namespace hb = herald::bench;
using nlohmann::json;

namespace herald {
namespace {

const std::string kApnsToken(64, 'a');
const std::string kFcmToken = "bench-registration-token_0123456789";

struct ClientRun {
  double seconds = 0;
  int accepted = 0;
  int other = 0;
  std::string first_failure;
};

// Sends `n` messages through `provider`, keeping `window` of them in flight.
ClientRun RunClient(providers::Provider& provider, Channel channel, const std::string& address,
                    int n, int window) {
  struct State {
    providers::Provider* provider;
    Channel channel;
    std::string address;
    int n;
    std::atomic<int> issued{0};
    std::atomic<int> finished{0};
    std::atomic<int> accepted{0};
    std::mutex mu;
    std::string first_failure;
    std::promise<void> done;
  };
  auto state = std::make_shared<State>();
  state->provider = &provider;
  state->channel = channel;
  state->address = address;
  state->n = n;
  auto issue = std::make_shared<std::function<void()>>();
  *issue = [state, issue_weak = std::weak_ptr<std::function<void()>>(issue)]() {
    const int i = state->issued.fetch_add(1);
    if (i >= state->n) return;
    providers::Message m;
    m.delivery_id = "bench-" + std::to_string(i);
    m.channel = state->channel;
    m.address = state->address;
    m.title = "Benchmark";
    m.body = "Push number " + std::to_string(i);
    m.deadline = NowMillis() + 10 * 60 * 1000;
    std::vector<providers::Message> batch;
    batch.push_back(std::move(m));
    state->provider->Send(
        std::move(batch), [state, issue_weak](std::vector<providers::SendResult> results) {
          if (!results.empty() && results[0].outcome == providers::Outcome::kAccepted) {
            state->accepted.fetch_add(1);
          } else {
            std::lock_guard lock(state->mu);
            if (state->first_failure.empty() && !results.empty()) {
              state->first_failure =
                  std::string(providers::ToString(results[0].outcome)) + ": " + results[0].reason;
            }
          }
          if (state->finished.fetch_add(1) + 1 == state->n) {
            state->done.set_value();
            return;
          }
          if (auto next = issue_weak.lock()) (*next)();
        });
  };
  auto finished = state->done.get_future();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < std::min(window, n); ++i) (*issue)();
  finished.wait();
  ClientRun run;
  run.seconds = hb::Seconds(start);
  run.accepted = state->accepted.load();
  run.other = n - run.accepted;
  run.first_failure = state->first_failure;
  return run;
}

struct H2loadRun {
  double req_per_s = 0;
  long succeeded = 0;
  std::string output;
};

H2loadRun RunH2load(const std::string& url, const std::string& body_file,
                    const std::vector<std::string>& headers, int n, int c, int m) {
  std::string cmd = "h2load -n " + std::to_string(n) + " -c " + std::to_string(c) + " -m " +
                    std::to_string(m) + " -d " + body_file;
  for (const std::string& h : headers) cmd += " -H '" + h + "'";
  cmd += " '" + url + "' 2>&1";
  H2loadRun run;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return run;
  char buf[4096];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, pipe)) > 0) run.output.append(buf, got);
  pclose(pipe);
  // "finished in 1.23s, 16260.16 req/s, ..." and "requests: N total, N started, N done,
  // N succeeded, ..."
  const size_t finished = run.output.find("finished in ");
  const size_t comma = run.output.find(", ", finished);
  if (finished != std::string::npos && comma != std::string::npos) {
    run.req_per_s = std::atof(run.output.c_str() + comma + 2);
  }
  const size_t done = run.output.find(" done, ");
  if (done != std::string::npos) run.succeeded = std::atol(run.output.c_str() + done + 7);
  return run;
}

std::unique_ptr<providers::Provider> MakeFromConfig(const std::string& config,
                                                    net::HttpClient* client) {
  auto p = providers::MakeProvider(config, client);
  if (!p.ok()) {
    std::fprintf(stderr, "provider config refused: %s\n", p.error().message.c_str());
    std::exit(1);
  }
  return std::move(*p);
}

std::string ApnsBearer() {
  auto signer =
      providers::JwtSigner::Make(providers::JwtSigner::Alg::kES256, sim::kDemoApnsPrivateKeyPem);
  const json header{{"alg", "ES256"}, {"kid", sim::kDemoApnsKeyId}};
  const json claims{{"iss", sim::kDemoApnsTeamId}, {"iat", NowMillis() / 1000}};
  return *(*signer)->Sign(header.dump(), claims.dump());
}

// An access token from the simulator's FCM token endpoint, for h2load.
std::string FcmAccessToken(net::HttpClient& client, const std::string& base) {
  auto signer =
      providers::JwtSigner::Make(providers::JwtSigner::Alg::kRS256, sim::kDemoFcmPrivateKeyPem);
  const int64_t now = NowMillis() / 1000;
  const json claims{{"iss", sim::kDemoFcmClientEmail},
                    {"scope", "https://www.googleapis.com/auth/firebase.messaging"},
                    {"aud", base + "/token"},
                    {"iat", now},
                    {"exp", now + 3600}};
  net::HttpRequest req;
  req.url = base + "/token";
  req.h2c = true;
  req.headers = {{"content-type", "application/x-www-form-urlencoded"}};
  req.body = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=" +
             *(*signer)->Sign(json{{"alg", "RS256"}, {"typ", "JWT"}}.dump(), claims.dump());
  net::HttpResponse resp = client.Send(std::move(req)).get();
  json doc = json::parse(resp.body, nullptr, false);
  return doc.is_object() && doc.contains("access_token") ? doc["access_token"].get<std::string>()
                                                         : std::string();
}

void Report(const char* name, int n, const ClientRun& client, const H2loadRun& h2load) {
  const double client_rate = client.seconds > 0 ? n / client.seconds : 0;
  std::printf("%-5s client : %9.0f pushes/s  (%d accepted, %d not, %.2f s)\n", name, client_rate,
              client.accepted, client.other, client.seconds);
  if (!client.first_failure.empty()) {
    std::printf("%-5s         first failure: %s\n", name, client.first_failure.c_str());
  }
  std::printf("%-5s h2load : %9.0f req/s     (%ld of %d succeeded)\n", name, h2load.req_per_s,
              h2load.succeeded, n);
  if (h2load.req_per_s <= 0) std::printf("h2load output:\n%s\n", h2load.output.c_str());
  std::printf("%-5s ratio  : %9.2f  (target >= 0.60)\n", name,
              h2load.req_per_s > 0 ? client_rate / h2load.req_per_s : 0);
}

int Main(int argc, char** argv) {
  const int n = std::stoi(hb::Flag(argc, argv, "n", "50000"));
  const int c = std::stoi(hb::Flag(argc, argv, "c", "2"));
  const int m = std::stoi(hb::Flag(argc, argv, "m", "100"));
  const int sim_threads = std::stoi(hb::Flag(argc, argv, "sim-threads", "1"));
  std::string base = hb::Flag(argc, argv, "sim", "");

  std::unique_ptr<sim::Simulator> simulator;
  if (base.empty()) {
    sim::SimulatorOptions so;
    so.listen = "127.0.0.1:0";
    so.smtp_listen = "";
    so.threads = sim_threads;
    simulator = sim::MakeSimulator(so);
    if (Status s = simulator->Start(); !s.ok()) {
      std::fprintf(stderr, "simulator: %s\n", s.error().message.c_str());
      return 1;
    }
    base = "http://127.0.0.1:" + std::to_string(simulator->port());
  }
  const std::string engine = hb::Flag(argc, argv, "engine", "native");
  net::HttpClientOptions co;
  co.native_http2 = engine != "curl";
  co.max_connections_per_host = c;
  co.max_concurrent_streams = m;
  auto client = net::MakeHttpClient(co);
  auto apns =
      MakeFromConfig(providers::SimProviderConfigs(Channel::kIos, base, "")[0], client.get());
  auto fcm =
      MakeFromConfig(providers::SimProviderConfigs(Channel::kAndroid, base, "")[0], client.get());
  std::printf(
      "push bench: n=%d, %d connections x %d streams, %s HTTP/2 client, simulator %s (%s), %ld "
      "CPUs\n",
      n, c, m, co.native_http2 ? "native" : "libcurl", base.c_str(),
      simulator ? ("in-process, " + std::to_string(sim_threads) + " IO thread(s)").c_str()
                : "external",
      sysconf(_SC_NPROCESSORS_ONLN));

  const auto dir = hb::TempDir("herald-bench-push");
  const std::string apns_body = (dir / "apns.json").string();
  std::ofstream(apns_body) << R"({"aps":{"alert":{"title":"Benchmark","body":"Push number 1"}}})";
  const std::string fcm_body = (dir / "fcm.json").string();
  std::ofstream(fcm_body) << json{{"message",
                                   {{"token", kFcmToken},
                                    {"notification", {{"title", "Benchmark"}, {"body", "Push"}}},
                                    {"data", {{"delivery_id", "bench"}}},
                                    {"android", {{"priority", "HIGH"}, {"ttl", "600s"}}}}}}
                                 .dump();

  // Warm-up: connections up, the provider token minted and verified once.
  RunClient(*apns, Channel::kIos, kApnsToken, std::min(n, 2000), c * m);
  RunClient(*fcm, Channel::kAndroid, kFcmToken, std::min(n, 2000), c * m);

  ClientRun apns_run = RunClient(*apns, Channel::kIos, kApnsToken, n, c * m);
  H2loadRun apns_h2 = RunH2load(
      base + "/3/device/" + kApnsToken, apns_body,
      {"authorization: bearer " + ApnsBearer(), "apns-topic: " + std::string(sim::kDemoApnsTopic),
       "apns-push-type: alert", "content-type: application/json"},
      n, c, m);
  Report("apns", n, apns_run, apns_h2);

  ClientRun fcm_run = RunClient(*fcm, Channel::kAndroid, kFcmToken, n, c * m);
  const std::string fcm_url =
      base + "/v1/projects/" + std::string(sim::kDemoFcmProjectId) + "/messages:send";
  H2loadRun fcm_h2 = RunH2load(
      fcm_url, fcm_body,
      {"authorization: Bearer " + FcmAccessToken(*client, base), "content-type: application/json"},
      n, c, m);
  Report("fcm", n, fcm_run, fcm_h2);
  std::filesystem::remove_all(dir);
  return apns_run.accepted == n && fcm_run.accepted == n ? 0 : 1;
}

}  // namespace
}  // namespace herald

int main(int argc, char** argv) { return herald::Main(argc, argv); }

// bench_single_send: soft real-time (DESIGN N3). On an idle `herald serve` (its own process,
// delivering to `herald sim` in another), sends N notifications one after the other, each to one
// user with one iOS device, and measures from just before the POST to the moment the simulator
// received the push (its received_at; both processes share this machine's clock), and the API's
// own part in microseconds: from just before the POST to its 202 (authentication, the tenant's
// quota, validation, the durable write).
//
//   build/bench_single_send [--sends=300] [--herald=PATH]   (another build's binary, for A/B)
#include <curl/curl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "common/clock.h"

namespace herald {
namespace {

using nlohmann::json;

pid_t Spawn(const std::vector<std::string>& args) {
  pid_t pid = fork();
  if (pid == 0) {
    std::freopen("/dev/null", "w", stderr);
    std::freopen("/dev/null", "w", stdout);
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// A blocking request on a reused handle; returns the status and fills *body.
long Request(CURL* h, const std::string& method, const std::string& url, const std::string& bearer,
             const std::string& payload, std::string* body) {
  body->clear();
  curl_slist* headers = nullptr;
  if (!bearer.empty())
    headers = curl_slist_append(headers, ("Authorization: Bearer " + bearer).c_str());
  headers = curl_slist_append(headers, "Content-Type: application/json");
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, method == "GET" ? nullptr : payload.c_str());
  if (method == "GET") curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
  long status = 0;
  if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  return status;
}

bool WaitHealthy(CURL* h, const std::string& url) {
  std::string body;
  for (int i = 0; i < 200; ++i) {
    if (Request(h, "GET", url + "/healthz", "", "", &body) == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

int Main(int argc, char** argv) {
  const int sends = std::stoi(bench::Flag(argc, argv, "sends", "300"));
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const std::string herald_flag = bench::Flag(argc, argv, "herald", "");
  const std::filesystem::path herald =
      herald_flag.empty() ? std::filesystem::canonical("/proc/self/exe").parent_path() / "herald"
                          : std::filesystem::path(herald_flag);
  const int base = 21000 + getpid() % 1000;
  const std::string sim = "http://127.0.0.1:" + std::to_string(base);
  const std::string api = "http://127.0.0.1:" + std::to_string(base + 1000);
  const auto dir = bench::TempDir("bench-single-send");
  pid_t sim_pid = Spawn({herald, "sim", "--listen", "127.0.0.1:" + std::to_string(base),
                         "--smtp-listen", "127.0.0.1:" + std::to_string(base + 2000)});
  pid_t api_pid = Spawn({herald, "serve", "--data-dir", dir.string(), "--listen",
                         "127.0.0.1:" + std::to_string(base + 1000), "--sim", sim});
  CURL* h = curl_easy_init();
  int rc = 1;
  if (WaitHealthy(h, sim) && WaitHealthy(h, api)) {
    std::string admin;
    std::ifstream(dir / "admin_token") >> admin;
    std::string body;
    Request(h, "POST", api + "/v1/tenants", admin,
            R"({"name":"Bench","delivery_deadline_minutes":10,"default_consent_days":365})", &body);
    const std::string tenant = json::parse(body).value("id", "");
    Request(h, "POST", api + "/v1/tenants/" + tenant + "/keys", admin,
            R"({"name":"b","scopes":["users:write","notifications:send"]})", &body);
    const std::string key = json::parse(body).value("key", "");
    const std::string token = std::string(60, 'e') + "0001";
    Request(h, "PUT", api + "/v1/users/solo", key,
            R"({"opt_in":true,"devices":[{"channel":"ios","address":")" + token + R"("}]})", &body);
    std::vector<double> latencies;
    std::vector<double> accept_us;
    for (int i = 0; i < sends; ++i) {
      const UnixMillis before = NowMillis();
      const auto posted = std::chrono::steady_clock::now();
      const long status =
          Request(h, "POST", api + "/v1/notifications", key,
                  R"({"to":{"users":["solo"]},"body":"ping )" + std::to_string(i) + R"("})", &body);
      accept_us.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - posted)
              .count());
      if (status != 202) {
        std::fprintf(stderr, "send %d: HTTP %ld %s\n", i, status, body.c_str());
        break;
      }
      // Wait for the simulator to hold message i, then read its received_at.
      for (int tries = 0; tries < 2000; ++tries) {
        Request(h, "GET", sim + "/sim/messages?provider=apns&limit=1", "", "", &body);
        json m = json::parse(body, nullptr, false);
        if (m.is_object() && !m["messages"].empty() &&
            m["messages"][0].value("body", "") == "ping " + std::to_string(i)) {
          auto at = ParseRfc3339(m["messages"][0].value("received_at", ""));
          if (at) latencies.push_back(static_cast<double>(*at - before));
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // an idle server between sends
    }
    std::sort(latencies.begin(), latencies.end());
    std::sort(accept_us.begin(), accept_us.end());
    if (!accept_us.empty()) {
      auto q = [&](double p) { return accept_us[static_cast<size_t>(p * (accept_us.size() - 1))]; };
      std::printf("POST -> 202: p50 %.0f us, p90 %.0f us, p99 %.0f us\n", q(0.5), q(0.9), q(0.99));
    }
    if (!latencies.empty()) {
      auto q = [&](double p) { return latencies[static_cast<size_t>(p * (latencies.size() - 1))]; };
      std::printf("single-user sends: %zu of %d reached the simulator\n", latencies.size(), sends);
      std::printf(
          "POST -> provider received: p50 %.1f ms, p99 %.1f ms, max %.1f ms (target p99 < "
          "50 ms)\n",
          q(0.5), q(0.99), q(1.0));
      rc = latencies.size() == static_cast<size_t>(sends) ? 0 : 1;
    }
  } else {
    std::fprintf(stderr, "herald serve or herald sim did not start\n");
  }
  curl_easy_cleanup(h);
  kill(api_pid, SIGTERM);
  kill(sim_pid, SIGTERM);
  waitpid(api_pid, nullptr, 0);
  waitpid(sim_pid, nullptr, 0);
  std::filesystem::remove_all(dir);
  return rc;
}

}  // namespace
}  // namespace herald

int main(int argc, char** argv) { return herald::Main(argc, argv); }

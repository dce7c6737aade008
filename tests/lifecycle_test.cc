// Process lifecycle of `herald serve`: graceful SIGTERM with a request in flight, restarts on the
// same data directory, SIGKILL, the admin token from the environment, a busy listen port, and
// TLS.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "support/api_helpers.h"
#include "support/herald_process.h"
#include "support/stores.h"

namespace herald::e2e {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// ~20 MB of NDJSON: `users` lines padded with whitespace to `line_bytes` each.
std::string BigImport(int users, size_t line_bytes) {
  std::string out;
  out.reserve(static_cast<size_t>(users) * line_bytes);
  char id[32];
  for (int i = 0; i < users; ++i) {
    std::snprintf(id, sizeof id, "bulk-%06d", i);
    std::string line = std::string(R"({"external_id":")") + id +
                       R"(","opt_in":true,"groups":["bulk"],"name":"Bulk User")";
    line += std::string(line_bytes - line.size() - 2, ' ');
    line += "}\n";
    out += line;
  }
  return out;
}

// The tests that concern the store run on each store (support/stores.h).
class StoreLifecycleTest : public ::testing::TestWithParam<std::string> {};

TEST_P(StoreLifecycleTest, SigtermDuringALargeImportCompletesItRespondsAndExitsZero) {
  HeraldOptions options;
  ASSERT_TRUE(UseStore(options, GetParam()));
  HeraldProcess server(options);
  ASSERT_TRUE(server.Start()) << server.last_error();
  HttpClient admin = server.AdminClient();
  const TenantKey tenant = CreateTenantWithKey(admin, "Lifecycle Tenant");
  ASSERT_FALSE(tenant.key.empty());
  HttpClient c = server.Client();
  c.set_bearer(tenant.key);
  ASSERT_EQ(c.Put("/v1/users/before-stop", UserBody("Before Stop")).status, 201);

  constexpr int kUsers = 10'000;
  const std::string body = BigImport(kUsers, 2000);  // 20 MB
  const size_t first_part = body.size() / 4;

  std::promise<void> part_sent;
  std::promise<void> go_on;
  auto part_sent_future = part_sent.get_future();
  auto go_on_future = go_on.get_future().share();
  auto response = std::async(std::launch::async, [&]() -> HttpResponse {
    HttpConnection conn;
    HttpResponse failed;
    if (!conn.Connect("127.0.0.1", server.port())) {
      failed.error = conn.error();
      part_sent.set_value();
      return failed;
    }
    const std::string head =
        "POST /v1/users:import HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Authorization: Bearer " +
        tenant.key +
        "\r\nContent-Type: application/x-ndjson\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n";
    const bool ok =
        conn.SendAll(head) && conn.SendAll(std::string_view(body).substr(0, first_part));
    part_sent.set_value();
    if (!ok) {
      failed.error = conn.error();
      return failed;
    }
    go_on_future.wait();
    for (size_t at = first_part; at < body.size(); at += 256 * 1024) {
      if (!conn.SendAll(std::string_view(body).substr(at, 256 * 1024))) {
        failed.error = "sending the rest: " + conn.error();
        return failed;
      }
    }
    return conn.ReadResponse();
  });

  part_sent_future.wait();
  // The import is being processed (its first batch is visible) before the signal is sent.
  bool visible = false;
  for (const auto waiting = Clock::now(); !visible && SecondsSince(waiting) < 10;) {
    visible = c.Get("/v1/users/bulk-000000").status == 200;
    if (!visible) std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_TRUE(visible) << "the import's first users never appeared";
  const auto signalled = Clock::now();
  server.Signal(SIGTERM);
  // It stops accepting new connections while the import is still in flight.
  bool refused = false;
  while (!refused && SecondsSince(signalled) < 3) {
    HttpConnection probe;
    refused = !probe.Connect("127.0.0.1", server.port(), milliseconds(200));
    if (!refused) std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_TRUE(refused) << "new connections were still accepted 3 s after SIGTERM";
  EXPECT_TRUE(server.Running()) << "herald exited with a request in flight";
  go_on.set_value();

  const HttpResponse r = response.get();
  std::cout << "[ info ] in-flight import answered " << SecondsSince(signalled)
            << " s after SIGTERM\n";
  ASSERT_EQ(r.status, 200) << r.Describe() << "\nstderr:\n" << server.Stderr();
  const json j = r.Json();
  EXPECT_EQ(j["lines"], kUsers) << r.Describe();
  EXPECT_EQ(j["created"], kUsers) << r.Describe();
  EXPECT_EQ(j["refused"], 0) << r.Describe();
  EXPECT_EQ(j["complete"], true) << r.Describe();
  EXPECT_EQ(Lower(r.Header("connection")), "close");

  const auto status = server.WaitForExit(std::chrono::seconds(20));
  ASSERT_TRUE(status.has_value()) << "herald did not exit after SIGTERM";
  EXPECT_EQ(*status, 0) << server.Stderr();
  EXPECT_NE(server.Stderr().find("herald stopped"), std::string::npos) << server.Stderr();

  // Everything acknowledged before the stop is there after a restart.
  ASSERT_TRUE(server.Start()) << server.last_error();
  HttpClient again = server.Client();
  again.set_bearer(tenant.key);
  EXPECT_EQ(again.Get("/v1/users/before-stop").Json()["name"], "Before Stop");
  EXPECT_EQ(again.Get("/v1/users/bulk-000000").status, 200);
  EXPECT_EQ(again.Get("/v1/users/bulk-009999").status, 200);
  EXPECT_EQ(again.Get("/v1/groups/bulk").Json()["member_count"], kUsers);
  EXPECT_EQ(server.Stop(), 0) << server.Stderr();
}

TEST_P(StoreLifecycleTest, AcknowledgedWritesSurviveSigkill) {
  HeraldOptions options;
  ASSERT_TRUE(UseStore(options, GetParam()));
  HeraldProcess server(options);
  ASSERT_TRUE(server.Start()) << server.last_error();
  HttpClient admin = server.AdminClient();
  const TenantKey tenant = CreateTenantWithKey(admin, "Kill Tenant");
  HttpClient c = server.Client();
  c.set_bearer(tenant.key);
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(c.Put("/v1/users/k-" + std::to_string(i), UserBody("K", json::array(), {"k"})).status,
              201);
  }
  ASSERT_EQ(c.Delete("/v1/users/k-7").status, 204);
  server.Kill();
  EXPECT_EQ(server.exit_status(), -SIGKILL);

  ASSERT_TRUE(server.Start()) << server.last_error();
  HttpClient again = server.Client();
  again.set_bearer(tenant.key);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(again.Get("/v1/users/k-" + std::to_string(i)).status, i == 7 ? 404 : 200) << i;
  }
  EXPECT_EQ(again.Get("/v1/groups/k").Json()["member_count"], 19);
  EXPECT_EQ(server.Stop(), 0) << server.Stderr();
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreLifecycleTest, ::testing::ValuesIn(Stores()), StoreName);

TEST(LifecycleTest, AdminTokenFromTheEnvironmentReplacesTheFileToken) {
  HeraldProcess server;
  ASSERT_TRUE(server.Start()) << server.last_error();
  const std::string file_token = server.AdminToken();
  ASSERT_GE(file_token.size(), 20u);
  HttpClient by_file = server.Client();
  by_file.set_bearer(file_token);
  ASSERT_EQ(by_file.Get("/v1/tenants").status, 200);
  ASSERT_EQ(server.Stop(), 0);

  const std::string env_token = "env-admin-token-0123456789abcdef";
  server.options().env["HERALD_ADMIN_TOKEN"] = env_token;
  ASSERT_TRUE(server.Start()) << server.last_error();
  HttpClient by_env = server.Client();
  by_env.set_bearer(env_token);
  const auto created = by_env.Post("/v1/tenants", {{"name", "Env Admin"}});
  EXPECT_EQ(created.status, 201) << created.Describe();
  EXPECT_EQ(by_env.Get("/v1/tenants").status, 200);

  HttpClient stale = server.Client();
  stale.set_bearer(file_token);
  EXPECT_TRUE(IsError(stale.Get("/v1/tenants"), 401, "invalid_credentials"));
  EXPECT_TRUE(IsError(stale.Post("/v1/tenants", {{"name", "Stale"}}), 401, "invalid_credentials"));
  EXPECT_EQ(by_env.Get("/v1/tenants").Json()["tenants"].size(), 1u);
  EXPECT_EQ(server.Stop(), 0) << server.Stderr();
}

TEST(LifecycleTest, ListenOnABusyPortExitsNonZeroWithAClearMessage) {
  const int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(holder, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(holder, 8), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(holder, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const uint16_t port = ntohs(addr.sin_port);

  HeraldOptions options;
  options.port = port;
  HeraldProcess server(options);
  const auto start = Clock::now();
  EXPECT_FALSE(server.Start()) << "herald answered on a port another socket listens on";
  EXPECT_LT(SecondsSince(start), 5.0) << "herald did not give up promptly";
  ASSERT_TRUE(server.exit_status().has_value());
  EXPECT_NE(*server.exit_status(), 0);
  EXPECT_GT(*server.exit_status(), 0) << "herald died of a signal instead of exiting";
  const std::string err = server.Stderr();
  EXPECT_NE(err.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << err;
  EXPECT_NE(Lower(err).find("in use"), std::string::npos) << err;
  ::close(holder);
}

TEST(LifecycleTest, TlsServesHttpsAndRefusesPlainHttpOnTheSamePort) {
  HeraldOptions options;
  options.tls = true;
  HeraldProcess server(options);
  const std::string cert = (server.root() / "cert.pem").string();
  const std::string key = (server.root() / "key.pem").string();
  ASSERT_EQ(
      RunCommand({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-nodes", "-subj", "/CN=localhost", "-days", "1", "-keyout", key, "-out", cert}),
      0)
      << "openssl could not make a self-signed certificate";
  server.options().args = {"--tls-cert", cert, "--tls-key", key};
  ASSERT_TRUE(server.Start()) << server.last_error();
  const std::string base = "https://127.0.0.1:" + std::to_string(server.port());

  std::string out;
  ASSERT_EQ(
      RunCommand({"curl", "-sk", "--max-time", "5", "-w", "\n%{http_code}", base + "/healthz"},
                 &out),
      0)
      << out;
  EXPECT_EQ(out.substr(out.rfind('\n') + 1), "200") << out;
  EXPECT_EQ(json::parse(out.substr(0, out.rfind('\n')), nullptr, false).value("status", ""), "ok")
      << out;
  // The API itself, over TLS.
  out.clear();
  ASSERT_EQ(RunCommand({"curl", "-sk", "--max-time", "5", "-w", "\n%{http_code}", "-H",
                        "Authorization: Bearer " + server.AdminToken(), base + "/v1/tenants"},
                       &out),
            0)
      << out;
  EXPECT_EQ(out.substr(out.rfind('\n') + 1), "200") << out;

  // Plain HTTP to the TLS port gets no 200 (no HTTP answer at all).
  const std::string plain =
      RawExchange("127.0.0.1", server.port(), "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                  std::chrono::seconds(3));
  EXPECT_NE(ParseRawResponse(plain).status, 200) << plain;
  EXPECT_EQ(plain.find("200 OK"), std::string::npos) << plain;
  EXPECT_EQ(plain.find("\"ok\""), std::string::npos) << plain;

  // And HTTPS still works afterwards.
  out.clear();
  EXPECT_EQ(RunCommand({"curl", "-sk", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                        base + "/healthz"},
                       &out),
            0);
  EXPECT_EQ(out, "200");
  EXPECT_EQ(server.Stop(), 0) << server.Stderr();
}

TEST(LifecycleTest, SigtermWithSilentAndIdleKeepAliveConnectionsExitsPromptly) {
  HeraldProcess server;
  ASSERT_TRUE(server.Start()) << server.last_error();
  std::vector<HttpConnection> silent(10);
  for (auto& s : silent) ASSERT_TRUE(s.Connect("127.0.0.1", server.port())) << s.error();
  HttpClient idle = server.Client();  // keep-alive: stays open after its answer
  ASSERT_EQ(idle.Get("/healthz").status, 200);

  const auto signalled = Clock::now();
  server.Signal(SIGTERM);
  const auto status = server.WaitForExit(std::chrono::seconds(20));
  ASSERT_TRUE(status.has_value()) << "herald did not exit";
  EXPECT_EQ(*status, 0) << server.Stderr();
  // Neither the 10 s header timeout nor the 10 s shutdown grace is waited out.
  EXPECT_LT(SecondsSince(signalled), 3.0);
  for (auto& s : silent) EXPECT_TRUE(s.WaitForClose(milliseconds(500)));
}

}  // namespace
}  // namespace herald::e2e

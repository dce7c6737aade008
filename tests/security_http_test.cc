// Attacks on the HTTP layer of the real `herald serve` (issue 8, items 1 and 6): request
// smuggling through Transfer-Encoding, Host confusion, and connection floods. Each test performs
// the attack as the probe did and asserts what the fixed server does instead.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/resource.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/api_helpers.h"
#include "support/herald_process.h"

namespace herald::e2e {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Status lines ("HTTP/1.1 400 ...") in a raw exchange: one per response the server sent.
int CountResponses(const std::string& raw) {
  int n = 0;
  for (size_t at = raw.find("HTTP/1."); at != std::string::npos; at = raw.find("HTTP/1.", at + 1)) {
    ++n;
  }
  return n;
}

// Rows of the audit table the server wrote for unauthenticated calls, read from its database.
int64_t AnonymousAuditRows(const HeraldProcess& server) {
  sqlite3* db = nullptr;
  const std::string path = (server.data_dir() / "herald.db").string();
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return -1;
  }
  sqlite3_busy_timeout(db, 2000);
  sqlite3_stmt* q = nullptr;
  int64_t n = -1;
  if (sqlite3_prepare_v2(db,
                         "SELECT COUNT(*) FROM audit WHERE tenant_id = '' AND actor = 'anonymous'",
                         -1, &q, nullptr) == SQLITE_OK &&
      sqlite3_step(q) == SQLITE_ROW) {
    n = sqlite3_column_int64(q, 0);
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  return n;
}

// Holds `n` connections that sent only the start of a request head.
std::vector<std::unique_ptr<HttpConnection>> HoldPartialConnections(uint16_t port, int n) {
  std::vector<std::unique_ptr<HttpConnection>> held;
  for (int i = 0; i < n; ++i) {
    auto c = std::make_unique<HttpConnection>();
    EXPECT_TRUE(c->Connect("127.0.0.1", port)) << c->error();
    EXPECT_TRUE(c->SendAll("GET /v1/users/x HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
    held.push_back(std::move(c));
  }
  std::this_thread::sleep_for(300ms);  // the server has accepted them all
  return held;
}

HttpResponse GetOnce(uint16_t port, const std::string& target) {
  HttpClient c("127.0.0.1", port, /*keep_alive=*/false);
  c.set_timeout(5s);
  return c.Get(target);
}

// GET /v1/users/x until it is answered 503, for at most 5 s. The server's two I/O threads
// accept in parallel, so a probe can overtake the last held connections and be admitted before
// they are counted; and a held connection that arrived while the start-up's last health check
// was still open was past the limit itself, and the server closed it after its short head
// timeout: those are replaced.
HttpResponse ProbeUntilRefused(uint16_t port, std::vector<std::unique_ptr<HttpConnection>>& held) {
  HttpResponse r = GetOnce(port, "/v1/users/x");
  for (int i = 0; i < 50 && r.status != 503; ++i) {
    std::this_thread::sleep_for(100ms);
    for (auto& h : held) {
      if (h->WaitForClose(1ms)) h = std::move(HoldPartialConnections(port, 1).front());
    }
    r = GetOnce(port, "/v1/users/x");
  }
  return r;
}

class SmugglingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start()) << server_.last_error();
    HttpClient admin = server_.AdminClient();
    tenant_ = CreateTenantWithKey(admin, "Smuggling Target");
    ASSERT_FALSE(tenant_.key.empty());
    HttpClient c = Client();
    ASSERT_EQ(c.Put("/v1/groups/victims", json{{"name", "Victims"}}).status, 201);
  }
  HttpClient Client() {
    HttpClient c = server_.Client();
    c.set_bearer(tenant_.key);
    return c;
  }
  HeraldProcess server_;
  TenantKey tenant_;
};

TEST_F(SmugglingTest, ABodyThatIsARequestIsNeverRunAsOne) {
  // The probe's exact bytes: a POST whose "body" is a GET; the GET came back as a 200.
  const std::string probe =
      "POST /v1/notifications HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: smuggled-1\r\nConnection: close\r\n\r\n";
  const std::string raw = RawExchange("127.0.0.1", server_.port(), probe);
  EXPECT_EQ(CountResponses(raw), 1) << raw;
  EXPECT_EQ(raw.find("smuggled-1"), std::string::npos) << raw;
  EXPECT_TRUE(
      IsError(ParseRawResponse(raw), 400, "invalid_transfer_encoding", "Transfer-Encoding"));
  EXPECT_NE(raw.find("Connection: close"), std::string::npos) << raw;
}

TEST_F(SmugglingTest, ASmuggledDeleteDeletesNothing) {
  for (const std::string coding : {"gzip", "chunked, identity", "xchunked"}) {
    const std::string attack =
        "POST /v1/notifications HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + coding +
        "\r\n\r\nDELETE /v1/groups/victims HTTP/1.1\r\nHost: x\r\n" + "Authorization: Bearer " +
        tenant_.key + "\r\nConnection: close\r\n\r\n";
    const std::string raw = RawExchange("127.0.0.1", server_.port(), attack);
    EXPECT_EQ(CountResponses(raw), 1) << coding << ": " << raw;
    EXPECT_EQ(ParseRawResponse(raw).status, 400) << coding << ": " << raw;
  }
  HttpClient c = Client();
  EXPECT_EQ(c.Get("/v1/groups/victims").status, 200) << "the smuggled DELETE ran";
}

TEST_F(SmugglingTest, RequestsWithoutOrWithTwoHostHeadersAre400) {
  for (const std::string head :
       {"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: evil.example/x\r\nConnection: close\r\n\r\n"}) {
    const std::string raw = RawExchange("127.0.0.1", server_.port(), head);
    EXPECT_TRUE(IsError(ParseRawResponse(raw), 400, "invalid_host", "Host")) << head << raw;
  }
  const std::string fine = RawExchange(
      "127.0.0.1", server_.port(), "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(ParseRawResponse(fine).status, 200) << fine;
}

TEST(ConnectionCeilingTest, PastTheCeilingNewClientsGet503AndHealthChecksAreAnswered) {
  HeraldProcess server(
      HeraldOptions{.args = {"--max-connections", "40", "--max-connections-per-client", "0"}});
  ASSERT_TRUE(server.Start()) << server.last_error();
  {
    auto held = HoldPartialConnections(server.port(), 40);
    // The probe saw every new connection reset here, /healthz included, with no log.
    const HttpResponse refused = ProbeUntilRefused(server.port(), held);
    EXPECT_TRUE(IsError(refused, 503, "too_many_connections")) << refused.Describe();
    EXPECT_EQ(refused.Header("retry-after"), "1");
    EXPECT_EQ(GetOnce(server.port(), "/healthz").status, 200);
    EXPECT_EQ(GetOnce(server.port(), "/readyz").status, 200);
    // Many at once past the ceiling: each gets its 503, none is reset.
    for (int i = 0; i < 100; ++i) {
      const HttpResponse r = GetOnce(server.port(), "/v1/tenants");
      ASSERT_EQ(r.status, 503) << i << ": " << r.Describe();
    }
    EXPECT_EQ(GetOnce(server.port(), "/healthz").status, 200);
  }
  std::this_thread::sleep_for(300ms);  // the held connections are gone: room again
  const HttpResponse metrics = GetOnce(server.port(), "/metrics");
  ASSERT_EQ(metrics.status, 200) << metrics.Describe();
  EXPECT_GE(MetricSum(metrics.body, "herald_http_refusals_total", "code=\"too_many_connections\""),
            101);
  EXPECT_NE(server.Stderr().find("connections refused at the ceiling"), std::string::npos)
      << server.Stderr();
}

TEST(ConnectionCeilingTest, OneAddressCannotTakeEveryConnection) {
  HeraldProcess server(HeraldOptions{.args = {"--max-connections-per-client", "10"}});
  ASSERT_TRUE(server.Start()) << server.last_error();
  auto held = HoldPartialConnections(server.port(), 10);
  const HttpResponse refused = ProbeUntilRefused(server.port(), held);
  EXPECT_TRUE(IsError(refused, 503, "too_many_connections_from_client")) << refused.Describe();
  EXPECT_EQ(GetOnce(server.port(), "/healthz").status, 200) << "health checks are always answered";
  held.pop_back();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(GetOnce(server.port(), "/v1/users/x").status, 401) << "a freed slot serves again";
}

TEST(ConnectionCeilingTest, TheDescriptorLimitIsRaisedAtStart) {
  rlimit original{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &original), 0);
  if (original.rlim_max <= 1024) {
    FAIL() << "this machine's hard descriptor limit (" << original.rlim_max
           << ") leaves nothing to raise";
  }
  rlimit lowered = original;
  lowered.rlim_cur = 1024;  // the child inherits it
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);
  HeraldProcess server;
  const bool started = server.Start();
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &original), 0);
  ASSERT_TRUE(started) << server.last_error();
  std::ifstream limits("/proc/" + std::to_string(server.pid()) + "/limits");
  std::string line;
  bool seen = false;
  while (std::getline(limits, line)) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream fields(line.substr(std::string("Max open files").size()));
    std::string soft, hard;
    fields >> soft >> hard;
    EXPECT_EQ(soft, hard) << line;
    seen = true;
  }
  EXPECT_TRUE(seen);
}

TEST(ConnectionCeilingTest, TimedOutConnectionsAreCountedNotAudited) {
  HeraldProcess server(HeraldOptions{.args = {"--header-timeout-ms", "300"}});
  ASSERT_TRUE(server.Start()) << server.last_error();
  ASSERT_EQ(GetOnce(server.port(), "/healthz").status, 200);
  const int64_t before = AnonymousAuditRows(server);
  ASSERT_GE(before, 0);
  {
    auto held = HoldPartialConnections(server.port(), 30);
    std::this_thread::sleep_for(700ms);  // every head timed out: 408 each
    for (auto& c : held) EXPECT_EQ(c->ReadResponse().status, 408);
  }
  HttpClient admin = server.AdminClient();
  ASSERT_EQ(admin.Get("/v1/tenants").status, 200);  // a write that flushes the audit queue
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(AnonymousAuditRows(server), before) << "timed-out connections wrote audit rows";
  const HttpResponse metrics = GetOnce(server.port(), "/metrics");
  EXPECT_GE(MetricSum(metrics.body, "herald_http_refusals_total", "code=\"request_timeout\""), 30);
}

TEST(ConnectionCeilingTest, UnauthenticatedTrafficHasABoundedAuditBudget) {
  // (Failed authentications are not slowed down here, so that all 600 reach the audit step.)
  HeraldProcess server(HeraldOptions{.args = {"--auth-failures-per-minute", "100000"}});
  ASSERT_TRUE(server.Start()) << server.last_error();
  const int64_t before = AnonymousAuditRows(server);
  ASSERT_GE(before, 0);
  HttpClient c = server.Client();
  c.set_bearer("hk_nope_" + std::string(43, 'x'));
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 600; ++i) {
    ASSERT_EQ(c.Get("/v1/users/u" + std::to_string(i)).status, 401);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  HttpClient admin = server.AdminClient();
  ASSERT_EQ(admin.Get("/v1/tenants").status, 200);
  std::this_thread::sleep_for(300ms);
  const int64_t written = AnonymousAuditRows(server) - before;
  // The budget: 50 a second, bursting to 50.
  EXPECT_LE(written, static_cast<int64_t>(50 + 50 * (seconds + 1))) << seconds << " s";
  EXPECT_GT(written, 0) << "a sample of unauthenticated calls is kept";
  const HttpResponse metrics = GetOnce(server.port(), "/metrics");
  EXPECT_GE(MetricSum(metrics.body, "herald_audit_dropped_total", "unauthenticated"),
            600 - written);
}

}  // namespace
}  // namespace herald::e2e

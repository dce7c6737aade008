// The HTTP/2 client (h2_client.h) through MakeHttpClient, against TestH2Server (a server whose
// misbehaviour each test picks) and, for the TLS fallback, `openssl s_server`.
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "net/h2_test_server.h"
#include "net/http_client.h"
#include "net/test_peers.h"

namespace herald::net {
namespace {

using namespace std::chrono_literals;
using h2test::TestH2Server;

class Responses {
 public:
  explicit Responses(size_t n) : responses_(n) {}
  std::function<void(HttpResponse)> Slot(size_t i) {
    return [this, i](HttpResponse r) {
      std::lock_guard lock(mu_);
      responses_[i] = std::move(r);
      if (++done_ == responses_.size()) cv_.notify_all();
    };
  }
  bool WaitAll(std::chrono::seconds limit) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return done_ == responses_.size(); });
  }
  size_t done() {
    std::lock_guard lock(mu_);
    return done_;
  }
  const HttpResponse& operator[](size_t i) const { return responses_[i]; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<HttpResponse> responses_;
  size_t done_ = 0;
};

HttpRequest H2c(const std::string& url, std::string body = {}) {
  HttpRequest request;
  request.method = body.empty() ? "GET" : "POST";
  request.url = url;
  request.h2c = true;
  request.body = std::move(body);
  return request;
}

HttpResponse Await(std::future<HttpResponse> future) {
  if (future.wait_for(30s) != std::future_status::ready) {
    ADD_FAILURE() << "no completion within 30 s";
    return {};
  }
  return future.get();
}

template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

TEST(H2ClientTest, ManyRequestsMultiplexOverFewConnections) {
  TestH2Server server;
  HttpClientOptions options;
  options.max_connections_per_host = 2;
  auto client = MakeHttpClient(options);
  constexpr size_t kRequests = 3000;
  Responses responses(kRequests);
  for (size_t i = 0; i < kRequests; ++i) {
    client->Send(H2c(server.base() + "/echo", "body-" + std::to_string(i)), responses.Slot(i));
  }
  ASSERT_TRUE(responses.WaitAll(60s));
  for (size_t i = 0; i < kRequests; ++i) {
    ASSERT_EQ(responses[i].status, 200) << i << ": " << responses[i].error;
    ASSERT_EQ(responses[i].body, "body-" + std::to_string(i));
    ASSERT_EQ(responses[i].http_version, 2);
    ASSERT_TRUE(responses[i].sent);
  }
  EXPECT_EQ(server.connections.load(), 2);
  EXPECT_EQ(client->in_flight(), 0u);
}

TEST(H2ClientTest, ANewConnectionOpensOnlyWhenTheOthersAreFull) {
  TestH2Server server;  // 100 streams per connection
  HttpClientOptions options;
  options.max_connections_per_host = 4;
  auto client = MakeHttpClient(options);
  Responses responses(80);
  for (size_t i = 0; i < 80; ++i) client->Send(H2c(server.base() + "/x"), responses.Slot(i));
  ASSERT_TRUE(responses.WaitAll(30s));
  EXPECT_EQ(server.connections.load(), 1);
  // Beyond one connection's streams (our own cap of 10 here), a second one opens.
  options.max_concurrent_streams = 10;
  Responses more(15);  // outlives the client, which completes the hanging requests
  auto capped = MakeHttpClient(options);
  for (size_t i = 0; i < 15; ++i) capped->Send(H2c(server.base() + "/hang"), more.Slot(i));
  EXPECT_TRUE(WaitFor([&] { return server.requests.load() == 80 + 15; }));
  EXPECT_EQ(server.connections.load(), 1 + 2);
}

TEST(H2ClientTest, EmptyBodyResponsesAreNotFollowedByResets) {
  TestH2Server server;
  auto client = MakeHttpClient();
  constexpr size_t kRequests = 500;
  Responses responses(kRequests);
  for (size_t i = 0; i < kRequests; ++i) {
    client->Send(H2c(server.base() + "/empty", "{}"), responses.Slot(i));
  }
  ASSERT_TRUE(responses.WaitAll(30s));
  for (size_t i = 0; i < kRequests; ++i) {
    ASSERT_EQ(responses[i].status, 200) << responses[i].error;
    ASSERT_EQ(responses[i].curl_code, 0);
    ASSERT_TRUE(responses[i].body.empty());
    ASSERT_EQ(responses[i].Header("content-length"), "0");
  }
  // One more round trip, so that any reset the client sent has reached the server.
  EXPECT_EQ(Await(client->Send(H2c(server.base() + "/x"))).status, 200);
  EXPECT_EQ(server.resets_received.load(), 0);
}

TEST(H2ClientTest, LargeBodiesBothWaysRespectFlowControl) {
  TestH2Server server;  // default 64 KiB stream windows on the server's side
  auto client = MakeHttpClient();
  std::string upload(8 << 20, '\0');
  for (size_t i = 0; i < upload.size(); ++i) upload[i] = static_cast<char>(i * 7);
  Responses responses(4);
  client->Send(H2c(server.base() + "/echo", upload), responses.Slot(0));
  client->Send(H2c(server.base() + "/big/" + std::to_string(12 << 20)), responses.Slot(1));
  client->Send(H2c(server.base() + "/echo", upload.substr(0, 100'000)), responses.Slot(2));
  client->Send(H2c(server.base() + "/big/" + std::to_string(5 << 20)), responses.Slot(3));
  ASSERT_TRUE(responses.WaitAll(60s));
  EXPECT_EQ(responses[0].status, 200) << responses[0].error;
  EXPECT_TRUE(responses[0].body == upload) << responses[0].body.size();
  EXPECT_EQ(responses[1].body.size(), size_t{12} << 20) << responses[1].error;
  EXPECT_EQ(responses[1].body.substr(0, 3), "abc");
  EXPECT_EQ(responses[1].body.back(), static_cast<char>('a' + ((12 << 20) - 1) % 26));
  EXPECT_EQ(responses[2].body.size(), 100'000u);
  EXPECT_EQ(responses[3].body.size(), size_t{5} << 20);
}

TEST(H2ClientTest, TimeoutResetsTheStreamAndTheConnectionStaysUsable) {
  TestH2Server server;
  auto client = MakeHttpClient();
  HttpRequest hang = H2c(server.base() + "/hang", "x");
  hang.timeout_ms = 300;
  const auto start = std::chrono::steady_clock::now();
  HttpResponse r = Await(client->Send(hang));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.curl_code, 28);
  EXPECT_TRUE(r.sent);
  EXPECT_EQ(r.status, 0);
  EXPECT_GE(elapsed, 280ms);
  EXPECT_LT(elapsed, 2s);
  EXPECT_TRUE(WaitFor([&] { return server.cancels_received.load() == 1; }));
  r = Await(client->Send(H2c(server.base() + "/x")));
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(server.connections.load(), 1);
  EXPECT_EQ(client->in_flight(), 0u);
}

TEST(H2ClientTest, RequestExpiringWhileQueuedWasNotSent) {
  TestH2Server::Options so;
  so.max_concurrent_streams = 1;
  TestH2Server server(so);
  HttpClientOptions options;
  options.max_connections_per_host = 1;
  auto client = MakeHttpClient(options);
  // The first request takes the only stream once the server's SETTINGS arrived.
  HttpRequest settle = H2c(server.base() + "/x");
  ASSERT_EQ(Await(client->Send(settle)).status, 200);
  HttpRequest hang = H2c(server.base() + "/hang");
  hang.timeout_ms = 2000;
  auto first = client->Send(hang);
  HttpRequest queued = H2c(server.base() + "/x");
  queued.timeout_ms = 200;
  HttpResponse r = Await(client->Send(queued));
  EXPECT_TRUE(r.timed_out);
  EXPECT_FALSE(r.sent);
  EXPECT_EQ(r.curl_code, 28);
  HttpResponse f = Await(std::move(first));
  EXPECT_TRUE(f.timed_out);
  EXPECT_TRUE(f.sent);
}

TEST(H2ClientTest, GoawayMidFlightRetriesUnprocessedStreamsTransparently) {
  TestH2Server::Options so;
  so.goaway_after = 150;  // every connection goes away after its 150th request
  TestH2Server server(so);
  HttpClientOptions options;
  options.max_connections_per_host = 2;
  auto client = MakeHttpClient(options);
  constexpr size_t kRequests = 2000;
  Responses responses(kRequests);
  for (size_t i = 0; i < kRequests; ++i) {
    client->Send(H2c(server.base() + "/echo", std::to_string(i)), responses.Slot(i));
  }
  ASSERT_TRUE(responses.WaitAll(60s));
  for (size_t i = 0; i < kRequests; ++i) {
    ASSERT_EQ(responses[i].status, 200) << i << ": " << responses[i].error;
    ASSERT_EQ(responses[i].body, std::to_string(i));
  }
  EXPECT_GE(server.goaways.load(), 10);
  EXPECT_GE(server.connections.load(), 13);  // 2000 / 150
  EXPECT_TRUE(WaitFor([&] { return server.open_connections.load() <= 2; }))
      << "connections that went away are closed";
}

TEST(H2ClientTest, RefusedStreamsAreRetried) {
  TestH2Server::Options so;
  so.refuse_every = 3;
  TestH2Server server(so);
  auto client = MakeHttpClient();
  constexpr size_t kRequests = 300;
  Responses responses(kRequests);
  for (size_t i = 0; i < kRequests; ++i) {
    client->Send(H2c(server.base() + "/echo", std::to_string(i)), responses.Slot(i));
  }
  ASSERT_TRUE(responses.WaitAll(30s));
  for (size_t i = 0; i < kRequests; ++i) {
    ASSERT_EQ(responses[i].status, 200) << i << ": " << responses[i].error;
    ASSERT_EQ(responses[i].body, std::to_string(i));
  }
  EXPECT_GE(server.refused.load(), 100);
}

TEST(H2ClientTest, ConnectionLostUnderRequestsFailsThemAsSent) {
  TestH2Server server;
  auto client = MakeHttpClient();
  constexpr size_t kHanging = 10;
  Responses responses(kHanging + 1);
  for (size_t i = 0; i < kHanging; ++i) {
    client->Send(H2c(server.base() + "/hang", "payload"), responses.Slot(i));
  }
  ASSERT_TRUE(WaitFor([&] { return server.requests.load() == static_cast<int>(kHanging); }));
  client->Send(H2c(server.base() + "/drop"), responses.Slot(kHanging));
  ASSERT_TRUE(responses.WaitAll(10s));
  for (size_t i = 0; i <= kHanging; ++i) {
    EXPECT_EQ(responses[i].status, 0);
    EXPECT_NE(responses[i].curl_code, 0);
    EXPECT_FALSE(responses[i].error.empty());
    EXPECT_TRUE(responses[i].sent) << "the server may have acted on it";
    EXPECT_FALSE(responses[i].timed_out);
  }
  HttpResponse r = Await(client->Send(H2c(server.base() + "/x")));
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(server.connections.load(), 2);
}

TEST(H2ClientTest, UnreachableOriginFailsEveryQueuedRequestUnsent) {
  auto client = MakeHttpClient();
  const std::string base = "http://127.0.0.1:" + std::to_string(peers::PickFreePort());
  Responses responses(50);
  for (size_t i = 0; i < 50; ++i) client->Send(H2c(base + "/x", "x"), responses.Slot(i));
  ASSERT_TRUE(responses.WaitAll(10s));
  for (size_t i = 0; i < 50; ++i) {
    EXPECT_EQ(responses[i].curl_code, 7) << responses[i].error;
    EXPECT_FALSE(responses[i].sent);
  }
}

TEST(H2ClientTest, DestructionCompletesStreamsAndQueueWithShutDown) {
  TestH2Server::Options so;
  so.max_concurrent_streams = 5;
  TestH2Server server(so);
  HttpClientOptions options;
  options.max_connections_per_host = 1;
  auto client = MakeHttpClient(options);
  ASSERT_EQ(Await(client->Send(H2c(server.base() + "/x"))).status, 200);  // SETTINGS known
  constexpr size_t kRequests = 40;                                        // 5 on streams, 35 queued
  Responses responses(kRequests);
  Responses resubmitted(kRequests);
  HttpClient* raw = client.get();
  for (size_t i = 0; i < kRequests; ++i) {
    HttpRequest request = H2c(server.base() + "/hang", "x");
    request.timeout_ms = 60'000;
    raw->Send(std::move(request), [&, raw, i](HttpResponse r) {
      // A completion that sends again during shutdown gets "client shut down" too.
      raw->Send(H2c(server.base() + "/x"), resubmitted.Slot(i));
      responses.Slot(i)(std::move(r));
    });
  }
  ASSERT_TRUE(WaitFor([&] { return server.requests.load() == 1 + 5; }));
  EXPECT_EQ(client->in_flight(), kRequests);
  const auto start = std::chrono::steady_clock::now();
  client.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  ASSERT_EQ(responses.done(), kRequests);
  ASSERT_EQ(resubmitted.done(), kRequests);
  size_t sent = 0;
  for (size_t i = 0; i < kRequests; ++i) {
    EXPECT_EQ(responses[i].error, "client shut down");
    EXPECT_NE(responses[i].curl_code, 0);
    EXPECT_EQ(responses[i].status, 0);
    EXPECT_EQ(resubmitted[i].error, "client shut down");
    sent += responses[i].sent ? 1 : 0;
  }
  EXPECT_EQ(sent, 5u) << "exactly the requests on streams were sent";
}

TEST(H2ClientTest, HttpsServerWithoutH2FallsBackToHttp1) {
  peers::TempDir dir;
  const auto key = dir.path() / "key.pem";
  const auto cert = dir.path() / "cert.pem";
  ASSERT_EQ(peers::RunCommand({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                               "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key.string(),
                               "-out", cert.string(), "-days", "2", "-subj", "/CN=localhost",
                               "-addext", "subjectAltName=IP:127.0.0.1"},
                              dir.path() / "openssl.log"),
            0);
  peers::PeerProcess s_server;  // HTTP/1.0 status page, no ALPN
  auto port = peers::StartOnFreePort(
      s_server,
      [&](uint16_t p) {
        return std::vector<std::string>{"openssl", "s_server",    "-accept", std::to_string(p),
                                        "-cert",   cert.string(), "-key",    key.string(),
                                        "-www",    "-quiet"};
      },
      dir.path() / "s_server.log");
  ASSERT_TRUE(port) << peers::ReadFile(dir.path() / "s_server.log");
  auto client = MakeHttpClient();
  HttpRequest request;
  request.method = "GET";
  request.url = "https://127.0.0.1:" + std::to_string(*port) + "/";
  request.ca_file = cert.string();
  for (int i = 0; i < 2; ++i) {  // the first finds out, the second goes to libcurl at once
    HttpResponse r = Await(client->Send(request));
    EXPECT_EQ(r.curl_code, 0) << r.error;
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.http_version, 2);
  }
  EXPECT_EQ(client->in_flight(), 0u);
}

TEST(H2ClientTest, CurlServesHttp2WhenTheNativeClientIsOff) {
  TestH2Server server;
  HttpClientOptions options;
  options.native_http2 = false;
  auto client = MakeHttpClient(options);
  HttpResponse r = Await(client->Send(H2c(server.base() + "/echo", "via curl")));
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.http_version, 2);
  EXPECT_EQ(r.body, "via curl");
}

}  // namespace
}  // namespace herald::net

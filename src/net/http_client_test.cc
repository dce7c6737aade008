// HttpClient against real peers on loopback: Python's http.server (HTTP/1.1, tests/net/), nghttpd
// (HTTP/2, h2c and TLS). Every peer is a child process that its fixture starts and kills.
#include "net/http_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "net/test_peers.h"

namespace herald::net {
namespace {

using namespace std::chrono_literals;
using peers::EstablishedConnections;
using peers::PeerProcess;
using peers::PickFreePort;
using peers::StartOnFreePort;
using peers::TempDir;

template <typename T>
T Await(std::future<T> future, std::chrono::seconds limit = 30s) {
  if (future.wait_for(limit) != std::future_status::ready) {
    ADD_FAILURE() << "no completion within " << limit.count() << " s";
    return T{};
  }
  return future.get();
}

// Gathers the responses of many callback-style requests.
class Collector {
 public:
  explicit Collector(size_t n) : responses_(n) {}

  std::function<void(HttpResponse)> Slot(size_t i) {
    return [this, i](HttpResponse r) {
      std::lock_guard lock(mu_);
      responses_[i] = std::move(r);
      threads_.push_back(std::this_thread::get_id());
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
  const std::vector<HttpResponse>& responses() const { return responses_; }
  const std::vector<std::thread::id>& threads() const { return threads_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<HttpResponse> responses_;
  std::vector<std::thread::id> threads_;
  size_t done_ = 0;
};

class HttpClientTest : public ::testing::Test {
 protected:
  // The Python HTTP/1.1 peer; its base URL.
  std::string StartHttp1Peer() {
    const auto port_file = dir_.path() / "http1.port";
    const auto script = peers::SourceRoot() / "tests" / "net" / "http1_peer.py";
    EXPECT_TRUE(
        http1_.Start({"python3", script.string(), port_file.string()}, dir_.path() / "http1.log"));
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (std::chrono::steady_clock::now() < deadline && http1_.Running()) {
      const std::string text = peers::ReadFile(port_file);
      if (!text.empty()) {
        http1_port_ = static_cast<uint16_t>(std::stoi(text));
        if (peers::PortAcceptsConnections(http1_port_)) {
          return "http://127.0.0.1:" + std::to_string(http1_port_);
        }
      }
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "http1_peer.py did not start: " << peers::ReadFile(dir_.path() / "http1.log");
    return {};
  }

  // nghttpd serving docroot/ (hello.txt) and echoing uploads; TLS when key and cert are given.
  std::string StartNghttpd(const std::string& key = {}, const std::string& cert = {}) {
    const auto docroot = dir_.path() / "docroot";
    std::filesystem::create_directories(docroot);
    peers::WriteFile(docroot / "hello.txt", "hello from nghttpd\n");
    const bool tls = !key.empty();
    auto port = StartOnFreePort(
        nghttpd_,
        [&](uint16_t p) {
          std::vector<std::string> argv = {"nghttpd",        "-a",           "127.0.0.1", "-d",
                                           docroot.string(), "--echo-upload"};
          if (!tls) argv.emplace_back("--no-tls");
          argv.push_back(std::to_string(p));
          if (tls) {
            argv.push_back(key);
            argv.push_back(cert);
          }
          return argv;
        },
        dir_.path() / "nghttpd.log");
    if (!port) {
      ADD_FAILURE() << "nghttpd did not start: " << peers::ReadFile(dir_.path() / "nghttpd.log");
      return {};
    }
    nghttpd_port_ = *port;
    return std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(*port);
  }

  TempDir dir_;
  PeerProcess http1_;
  PeerProcess nghttpd_;
  uint16_t http1_port_ = 0;
  uint16_t nghttpd_port_ = 0;
};

TEST_F(HttpClientTest, Http1GetRoundTripLowerCasesHeaderNames) {
  const std::string base = StartHttp1Peer();
  ASSERT_FALSE(base.empty());
  auto client = MakeHttpClient();
  ASSERT_NE(client, nullptr);

  HttpRequest request;
  request.method = "GET";
  request.url = base + "/things/1";
  request.headers = {{"X-Reply-Header", "X-Custom-Thing: Some Value"}};
  HttpResponse r = Await(client->Send(request));

  EXPECT_EQ(r.curl_code, 0) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.http_version, 11);
  EXPECT_TRUE(r.sent);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.body, "GET /things/1\n");
  EXPECT_EQ(r.Header("x-custom-thing"), "Some Value");
  EXPECT_EQ(r.Header("x-echo-method"), "GET");
  EXPECT_EQ(r.Header("X-Echo-Method"), "");  // names are stored lower-case
  EXPECT_GT(r.total_ms, 0);
  EXPECT_EQ(client->in_flight(), 0u);
}

TEST_F(HttpClientTest, Http1PostPutDeleteCarryMethodBodyAndStatus) {
  const std::string base = StartHttp1Peer();
  ASSERT_FALSE(base.empty());
  auto client = MakeHttpClient();
  ASSERT_NE(client, nullptr);

  HttpRequest post;
  post.url = base + "/submit";
  post.headers = {{"Content-Type", "application/json"}, {"X-Reply-Status", "201"}};
  post.body = R"({"k":"v"})";
  HttpResponse r = Await(client->Send(post));
  EXPECT_EQ(r.curl_code, 0) << r.error;
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "POST /submit\n{\"k\":\"v\"}");

  HttpRequest put = post;
  put.method = "PUT";
  put.headers = {{"X-Reply-Status", "409"}};
  r = Await(client->Send(put));
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.Header("x-echo-method"), "PUT");
  EXPECT_EQ(r.body, "PUT /submit\n{\"k\":\"v\"}");

  HttpRequest del;
  del.method = "DELETE";
  del.url = base + "/things/9";
  r = Await(client->Send(del));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "DELETE /things/9\n");

  // A GET after a POST on the same (reused) easy handle must not carry the old body.
  HttpRequest get;
  get.method = "GET";
  get.url = base + "/after";
  r = Await(client->Send(get));
  EXPECT_EQ(r.body, "GET /after\n");
  EXPECT_EQ(r.Header("x-echo-method"), "GET");
}

TEST_F(HttpClientTest, Http1KeepAliveReusesOneConnection) {
  const std::string base = StartHttp1Peer();
  ASSERT_FALSE(base.empty());
  auto client = MakeHttpClient();
  ASSERT_NE(client, nullptr);
  std::string first_count;
  for (int i = 0; i < 5; ++i) {
    HttpRequest request;
    request.url = base + "/n";
    request.body = std::to_string(i);
    HttpResponse r = Await(client->Send(request));
    ASSERT_EQ(r.status, 200) << r.error;
    if (i == 0) first_count = std::string(r.Header("x-connection-count"));
    EXPECT_EQ(r.Header("x-connection-count"), first_count) << "request " << i;
  }
  EXPECT_EQ(EstablishedConnections(http1_port_), 1);
}

TEST_F(HttpClientTest, H2cGetAndPostRoundTrip) {
  const std::string base = StartNghttpd();
  ASSERT_FALSE(base.empty());
  auto client = MakeHttpClient();
  ASSERT_NE(client, nullptr);

  HttpRequest get;
  get.method = "GET";
  get.url = base + "/hello.txt";
  get.h2c = true;
  HttpResponse r = Await(client->Send(get));
  EXPECT_EQ(r.curl_code, 0) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.http_version, 2);
  EXPECT_EQ(r.body, "hello from nghttpd\n");
  EXPECT_EQ(r.Header("content-type"), "text/plain");
  EXPECT_TRUE(r.sent);

  HttpRequest post;
  post.url = base + "/3/device/abc";
  post.h2c = true;
  post.headers = {{"apns-topic", "com.example.app"}, {"content-type", "application/json"}};
  post.body = R"({"aps":{"alert":"hi"}})";
  r = Await(client->Send(post));
  EXPECT_EQ(r.curl_code, 0) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.http_version, 2);
  EXPECT_EQ(r.body, post.body);
  EXPECT_EQ(r.Header("nghttpd-response"), "echo");
  EXPECT_EQ(r.Header("server").substr(0, 7), "nghttpd");

  get.url = base + "/missing.txt";
  r = Await(client->Send(get));
  EXPECT_EQ(r.curl_code, 0) << r.error;
  EXPECT_EQ(r.status, 404);
}

TEST_F(HttpClientTest, TwoThousandConcurrentH2RequestsShareFewConnections) {
  const std::string base = StartNghttpd();
  ASSERT_FALSE(base.empty());
  HttpClientOptions options;
  options.max_connections_per_host = 4;
  auto client = MakeHttpClient(options);
  ASSERT_NE(client, nullptr);

  constexpr size_t kRequests = 2000;
  Collector collector(kRequests);
  for (size_t i = 0; i < kRequests; ++i) {
    HttpRequest request;
    request.url = base + "/echo";
    request.h2c = true;
    request.body = "request-" + std::to_string(i);
    client->Send(std::move(request), collector.Slot(i));
  }
  int most_connections = 0;
  while (collector.done() < kRequests) {
    most_connections = std::max(most_connections, EstablishedConnections(nghttpd_port_));
    if (collector.WaitAll(0s)) break;
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_TRUE(collector.WaitAll(60s));
  most_connections = std::max(most_connections, EstablishedConnections(nghttpd_port_));

  for (size_t i = 0; i < kRequests; ++i) {
    const HttpResponse& r = collector.responses()[i];
    ASSERT_EQ(r.curl_code, 0) << i << ": " << r.error;
    ASSERT_EQ(r.status, 200) << i;
    ASSERT_EQ(r.http_version, 2) << i;
    ASSERT_EQ(r.body, "request-" + std::to_string(i));
  }
  EXPECT_GE(most_connections, 1);
  // A connection the server is closing (after its GOAWAY) may still be established while its
  // replacement opens: at most one over the limit, and only then.
  EXPECT_LE(most_connections, options.max_connections_per_host + 1);
  EXPECT_EQ(client->in_flight(), 0u);
}

TEST_F(HttpClientTest, CallbacksRunOnTheLoopThreadWhileManyThreadsSend) {
  const std::string base = StartNghttpd();
  ASSERT_FALSE(base.empty());
  auto client = MakeHttpClient();
  ASSERT_NE(client, nullptr);

  constexpr size_t kThreads = 4;
  constexpr size_t kPerThread = 250;
  Collector collector(kThreads * kPerThread);
  std::vector<std::thread> senders;
  std::vector<std::thread::id> sender_ids(kThreads);
  for (size_t t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      sender_ids[t] = std::this_thread::get_id();
      for (size_t i = 0; i < kPerThread; ++i) {
        HttpRequest request;
        request.url = base + "/echo";
        request.h2c = true;
        request.body = std::to_string(t * kPerThread + i);
        client->Send(std::move(request), collector.Slot(t * kPerThread + i));
      }
    });
  }
  for (auto& s : senders) s.join();
  ASSERT_TRUE(collector.WaitAll(60s));
  for (size_t i = 0; i < collector.responses().size(); ++i) {
    ASSERT_EQ(collector.responses()[i].status, 200) << collector.responses()[i].error;
    ASSERT_EQ(collector.responses()[i].body, std::to_string(i));
  }
  const auto& threads = collector.threads();
  EXPECT_TRUE(std::all_of(threads.begin(), threads.end(), [&](auto id) {
    return id == threads[0];
  })) << "every callback runs on the one event-loop thread";
  for (auto id : sender_ids) EXPECT_NE(id, threads[0]);
  EXPECT_NE(threads[0], std::this_thread::get_id());
}

TEST_F(HttpClientTest, TimeoutFiresAgainstAServerThatNeverAnswers) {
  const std::string base = StartHttp1Peer();
  ASSERT_FALSE(base.empty());
  auto client = MakeHttpClient();
  ASSERT_NE(client, nullptr);
  HttpRequest request;
  request.method = "GET";
  request.url = base + "/hang";
  request.timeout_ms = 300;
  const auto start = std::chrono::steady_clock::now();
  HttpResponse r = Await(client->Send(request));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.curl_code, 28);  // CURLE_OPERATION_TIMEDOUT
  EXPECT_FALSE(r.error.empty());
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.sent) << "the request was written before the peer went silent";
  EXPECT_GE(elapsed, 280ms);
  EXPECT_LT(elapsed, 3s);
}

TEST_F(HttpClientTest, RequestExpiringInTheClientQueueIsNotSent) {
  const std::string base = StartHttp1Peer();
  ASSERT_FALSE(base.empty());
  HttpClientOptions options;
  options.max_active_transfers = 1;
  auto client = MakeHttpClient(options);
  ASSERT_NE(client, nullptr);
  HttpRequest hang;
  hang.method = "GET";
  hang.url = base + "/hang";
  hang.timeout_ms = 1500;
  auto first = client->Send(hang);
  HttpRequest queued;
  queued.method = "GET";
  queued.url = base + "/quick";
  queued.timeout_ms = 200;
  HttpResponse r = Await(client->Send(queued));
  EXPECT_TRUE(r.timed_out);
  EXPECT_FALSE(r.sent);
  EXPECT_NE(r.curl_code, 0);
  EXPECT_TRUE(Await(std::move(first)).timed_out);
}

TEST_F(HttpClientTest, ConnectionRefusedIsAnErrorAndNotSent) {
  auto client = MakeHttpClient();
  ASSERT_NE(client, nullptr);
  for (bool h2c : {false, true}) {
    // Several at once: h2c requests to one origin wait for a single connection attempt.
    constexpr size_t kRequests = 20;
    Collector collector(kRequests);
    const std::string url = "http://127.0.0.1:" + std::to_string(PickFreePort()) + "/x";
    for (size_t i = 0; i < kRequests; ++i) {
      HttpRequest request;
      request.url = url;
      request.body = "never delivered";
      request.h2c = h2c;
      client->Send(std::move(request), collector.Slot(i));
    }
    ASSERT_TRUE(collector.WaitAll(30s));
    for (const HttpResponse& r : collector.responses()) {
      EXPECT_EQ(r.curl_code, 7) << r.error;  // CURLE_COULDNT_CONNECT
      EXPECT_FALSE(r.sent);
      EXPECT_FALSE(r.timed_out);
      EXPECT_EQ(r.status, 0);
      EXPECT_FALSE(r.error.empty());
    }
  }
}

TEST_F(HttpClientTest, ManyOriginsShareATightTransferLimit) {
  const std::string h1 = StartHttp1Peer();
  const std::string h2 = StartNghttpd();
  ASSERT_FALSE(h1.empty());
  ASSERT_FALSE(h2.empty());
  HttpClientOptions options;
  options.max_active_transfers = 3;
  auto client = MakeHttpClient(options);
  ASSERT_NE(client, nullptr);
  constexpr size_t kRequests = 300;
  Collector collector(kRequests);
  for (size_t i = 0; i < kRequests; ++i) {
    HttpRequest request;
    request.url = (i % 2 == 0 ? h1 : h2) + "/r" + std::to_string(i);
    request.h2c = i % 2 == 1;
    request.body = std::to_string(i);
    client->Send(std::move(request), collector.Slot(i));
  }
  ASSERT_TRUE(collector.WaitAll(60s));
  for (size_t i = 0; i < kRequests; ++i) {
    const HttpResponse& r = collector.responses()[i];
    ASSERT_EQ(r.status, 200) << i << ": " << r.error;
    ASSERT_EQ(r.http_version, i % 2 == 0 ? 11 : 2);
    const std::string expected =
        i % 2 == 0 ? "POST /r" + std::to_string(i) + "\n" + std::to_string(i) : std::to_string(i);
    ASSERT_EQ(r.body, expected);
  }
}

TEST_F(HttpClientTest, TlsToSelfSignedPeerNeedsItsCertificateAsCaFile) {
  const auto key = dir_.path() / "key.pem";
  const auto cert = dir_.path() / "cert.pem";
  ASSERT_EQ(peers::RunCommand({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                               "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key.string(),
                               "-out", cert.string(), "-days", "2", "-subj", "/CN=localhost",
                               "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"},
                              dir_.path() / "openssl.log"),
            0)
      << peers::ReadFile(dir_.path() / "openssl.log");
  const std::string base = StartNghttpd(key.string(), cert.string());
  ASSERT_FALSE(base.empty());
  auto client = MakeHttpClient();
  ASSERT_NE(client, nullptr);

  HttpRequest request;
  request.method = "GET";
  request.url = base + "/hello.txt";
  request.ca_file = cert.string();
  HttpResponse r = Await(client->Send(request));
  EXPECT_EQ(r.curl_code, 0) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.http_version, 2) << "https offers h2 through ALPN";
  EXPECT_EQ(r.body, "hello from nghttpd\n");

  HttpRequest untrusted = request;
  untrusted.ca_file.clear();
  r = Await(client->Send(untrusted));
  EXPECT_EQ(r.curl_code, 60) << r.error;  // CURLE_PEER_FAILED_VERIFICATION
  EXPECT_FALSE(r.sent);
  EXPECT_EQ(r.status, 0);

  HttpRequest unverified = untrusted;
  unverified.verify_tls = false;
  r = Await(client->Send(unverified));
  EXPECT_EQ(r.curl_code, 0) << r.error;
  EXPECT_EQ(r.status, 200);
}

TEST_F(HttpClientTest, DestructionCompletesEveryPendingRequest) {
  const std::string base = StartHttp1Peer();
  ASSERT_FALSE(base.empty());
  HttpClientOptions options;
  options.max_connections_per_host = 4;
  options.max_active_transfers = 10;  // 4 on the wire, 6 waiting in curl, the rest queued
  auto client = MakeHttpClient(options);
  ASSERT_NE(client, nullptr);

  constexpr size_t kRequests = 30;
  Collector collector(kRequests);
  for (size_t i = 0; i < 25; ++i) {
    HttpRequest request;
    request.method = "GET";
    request.url = base + "/hang";
    request.timeout_ms = 60'000;
    client->Send(std::move(request), collector.Slot(i));
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (EstablishedConnections(http1_port_) < 4 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(EstablishedConnections(http1_port_), 4);
  for (size_t i = 25; i < kRequests; ++i) {  // still in the submission queue at destruction
    HttpRequest request;
    request.url = base + "/late";
    client->Send(std::move(request), collector.Slot(i));
  }
  EXPECT_EQ(client->in_flight(), kRequests);
  const auto start = std::chrono::steady_clock::now();
  client.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);

  ASSERT_EQ(collector.done(), kRequests) << "destruction returns after every callback ran";
  size_t sent = 0;
  for (const HttpResponse& r : collector.responses()) {
    EXPECT_NE(r.curl_code, 0);
    EXPECT_EQ(r.error, "client shut down");
    EXPECT_EQ(r.status, 0);
    EXPECT_FALSE(r.timed_out);
    sent += r.sent ? 1 : 0;
  }
  EXPECT_LE(sent, 4u) << "only requests on a connection can have been sent";
}

}  // namespace
}  // namespace herald::net

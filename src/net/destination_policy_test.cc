// The SSRF guard: the destination policy's rules, and the outbound client applying them to the
// address it actually connects to (libcurl and the HTTP/2 client alike), speaking no protocol
// but HTTP(S) and SMTP(S), and following no redirect.
#include "net/destination_policy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "net/http_client.h"

namespace herald::net {
namespace {

using namespace std::chrono_literals;

IpEndpoint Ep(const std::string& literal, uint16_t port) {
  IpEndpoint e;
  EXPECT_TRUE(IpEndpoint::FromLiteral(literal, port, &e)) << literal;
  return e;
}

TEST(DestinationPolicyTest, EveryNonPublicRangeIsRefusedAndPublicAddressesAreNot) {
  const DestinationPolicy policy;
  for (const std::string refused : {"127.0.0.1",
                                    "127.255.0.9",
                                    "10.1.2.3",
                                    "172.16.0.1",
                                    "172.31.255.255",
                                    "192.168.0.1",
                                    "169.254.169.254",
                                    "100.64.0.1",
                                    "0.0.0.0",
                                    "224.0.0.1",
                                    "255.255.255.255",
                                    "::1",
                                    "::",
                                    "fe80::1",
                                    "fd12:3456::1",
                                    "fc00::1",
                                    "ff02::1",
                                    "::ffff:127.0.0.1",
                                    "::ffff:10.0.0.1",
                                    "64:ff9b::a9fe:a9fe",
                                    "2001:db8::1"}) {
    std::string why;
    EXPECT_FALSE(policy.Allows(Ep(refused, 443), "", &why)) << refused;
    EXPECT_NE(why.find("not an allowed provider host"), std::string::npos) << refused << why;
  }
  for (const std::string public_address : {"8.8.8.8", "17.188.143.2", "172.32.0.1", "100.128.0.1",
                                           "2607:f8b0:4005::200e", "::ffff:8.8.8.8"}) {
    EXPECT_TRUE(policy.Allows(Ep(public_address, 443), "", nullptr)) << public_address;
  }
}

TEST(DestinationPolicyTest, AllowRulesNameHostsAddressesOrNetworksWithOptionalPorts) {
  auto policy = DestinationPolicy::Parse("127.0.0.1:9090, 10.2.0.0/16,sim.internal, [::1]:8443");
  ASSERT_TRUE(policy.ok()) << policy.error().message;
  EXPECT_TRUE(policy->Allows(Ep("127.0.0.1", 9090), "", nullptr));
  EXPECT_FALSE(policy->Allows(Ep("127.0.0.1", 9091), "", nullptr)) << "another port";
  EXPECT_TRUE(policy->Allows(Ep("::ffff:127.0.0.1", 9090), "", nullptr)) << "v4 inside v6";
  EXPECT_TRUE(policy->Allows(Ep("10.2.200.7", 1), "", nullptr));
  EXPECT_FALSE(policy->Allows(Ep("10.3.0.1", 1), "", nullptr));
  EXPECT_TRUE(policy->Allows(Ep("192.168.7.7", 443), "SIM.internal", nullptr)) << "by name";
  EXPECT_FALSE(policy->Allows(Ep("192.168.7.7", 443), "other.internal", nullptr));
  EXPECT_TRUE(policy->Allows(Ep("::1", 8443), "", nullptr));
  for (const std::string bad : {"10.0.0.0/33", "1.2.3.4:0", "1.2.3.4:70000", "host:x", "a b",
                                "[::1", "name/8", "::1/129"}) {
    auto r = DestinationPolicy::Parse(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, "invalid_allow_rule") << bad;
    }
  }
}

TEST(DestinationPolicyTest, HeraldsOwnEndpointIsRefusedEvenWhenAllowed) {
  auto policy = DestinationPolicy::Parse("127.0.0.0/8");
  ASSERT_TRUE(policy.ok());
  policy->DenyOwnEndpoint(Ep("127.0.0.1", 8080));
  std::string why;
  EXPECT_FALSE(policy->Allows(Ep("127.0.0.1", 8080), "", &why));
  EXPECT_NE(why.find("Herald's own API"), std::string::npos) << why;
  EXPECT_FALSE(policy->Allows(Ep("127.0.0.2", 8080), "", nullptr)) << "loopback reaches it too";
  EXPECT_FALSE(policy->Allows(Ep("::ffff:127.0.0.1", 8080), "", nullptr));
  EXPECT_TRUE(policy->Allows(Ep("127.0.0.1", 8081), "", nullptr));
  // Listening on every address: each local address on that port is Herald's own.
  DestinationPolicy wildcard;
  wildcard.DenyOwnEndpoint(Ep("0.0.0.0", 8080));
  EXPECT_FALSE(wildcard.Allows(Ep("127.0.0.1", 8080), "", nullptr));
}

TEST(DestinationPolicyTest, StoredUrlsMustBeHttpsUnlessTheHostIsAllowed) {
  auto policy = DestinationPolicy::Parse("127.0.0.1:9090");
  ASSERT_TRUE(policy.ok());
  auto check = [&](const std::string& url) {
    return policy->CheckUrl(url, "providers[0].base_url", {"https"}, "http");
  };
  EXPECT_TRUE(check("https://api.push.apple.com").ok());
  EXPECT_TRUE(check("http://127.0.0.1:9090").ok()) << "an allowed host may use http";
  EXPECT_TRUE(check("HTTPS://API.example.com:8443/v1").ok());
  for (const std::string refused :
       {"http://api.push.apple.com", "gopher://127.0.0.1:9090", "file:///etc/passwd",
        "ftp://example.com", "https://127.0.0.1:9091", "https://localhost", "https://a.localhost",
        "https://[::1]", "https://10.0.0.1", "https://user@example.com", "https://exa mple.com",
        "example.com", "https://", "https://example.com:0", "https://example.com:99999"}) {
    const Status s = check(refused);
    EXPECT_FALSE(s.ok()) << refused;
    if (!s.ok()) {
      EXPECT_EQ(s.error().field, "providers[0].base_url") << refused;
    }
  }
  // SMTP submission may use STARTTLS on smtp:// to any public host.
  EXPECT_TRUE(policy->CheckUrl("smtp://smtp.example.com:587", "url", {"smtps"}, "smtp", true).ok());
  EXPECT_FALSE(policy->CheckUrl("smtp://192.168.1.1:25", "url", {"smtps"}, "smtp", true).ok());
}

// A TCP listener on a loopback port that counts the connections it accepts and answers each
// with `reply` (if any) before closing it.
class CountingListener {
 public:
  explicit CountingListener(std::string reply = {}) : reply_(std::move(reply)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~CountingListener() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  void Run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      ++accepted_;
      if (!reply_.empty()) {
        char buf[4096];
        pollfd in{c, POLLIN, 0};
        if (::poll(&in, 1, 2000) > 0) (void)::recv(c, buf, sizeof buf, 0);
        (void)::send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
      }
      ::close(c);
    }
  }

  std::string reply_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::unique_ptr<HttpClient> ClientWith(std::shared_ptr<DestinationPolicy> policy) {
  HttpClientOptions options;
  options.destinations = std::move(policy);
  options.connect_timeout_ms = 2000;
  return MakeHttpClient(options);
}

HttpResponse Get(HttpClient& client, const std::string& url, bool h2c = false) {
  HttpRequest r;
  r.method = "GET";
  r.url = url;
  r.h2c = h2c;
  r.timeout_ms = 3000;
  auto f = client.Send(std::move(r));
  if (f.wait_for(10s) != std::future_status::ready) return HttpResponse{};
  return f.get();
}

TEST(DestinationPolicyClientTest, ANameThatResolvesToLoopbackIsRefusedAtConnectTime) {
  CountingListener listener;
  auto client = ClientWith(std::make_shared<DestinationPolicy>());
  const std::string url = "http://localhost:" + std::to_string(listener.port()) + "/";
  for (bool h2c : {false, true}) {  // libcurl's HTTP/1.1 and Herald's own HTTP/2 client
    const HttpResponse r = Get(*client, url, h2c);
    EXPECT_TRUE(r.destination_refused) << h2c << " " << r.error;
    EXPECT_EQ(r.curl_code, 7) << h2c;
    EXPECT_EQ(r.error.rfind(std::string(kDestinationRefused), 0), 0u) << r.error;
    EXPECT_FALSE(r.sent);
  }
  SmtpMessage m;
  m.url = "smtp://localhost:" + std::to_string(listener.port());
  m.mail_from = "a@example.com";
  m.rcpt_to = {"b@example.com"};
  m.data = "Subject: x\r\n\r\nx\r\n";
  m.timeout_ms = 3000;
  const SmtpResult mail = client->SendMail(std::move(m)).get();
  EXPECT_TRUE(mail.destination_refused) << mail.error;
  EXPECT_EQ(listener.accepted(), 0) << "a refused destination saw a connection";
}

TEST(DestinationPolicyClientTest, AnAllowedHostIsReached) {
  CountingListener listener("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
  auto policy = std::make_shared<DestinationPolicy>();
  ASSERT_TRUE(policy->Allow("127.0.0.1:" + std::to_string(listener.port())).ok());
  auto client = ClientWith(policy);
  const HttpResponse r = Get(*client, "http://127.0.0.1:" + std::to_string(listener.port()) + "/");
  EXPECT_EQ(r.status, 204) << r.error;
  EXPECT_FALSE(r.destination_refused);
  EXPECT_EQ(listener.accepted(), 1);
}

TEST(DestinationPolicyClientTest, OnlyHttpAndSmtpAreSpokenWhateverTheUrlSays) {
  CountingListener listener;
  auto client = MakeHttpClient();  // no policy: the protocol limit holds on its own
  const std::string at = "127.0.0.1:" + std::to_string(listener.port());
  for (const std::string& url :
       {"gopher://" + at + "/_INFO", "dict://" + at + "/stat", "ftp://" + at + "/",
        "telnet://" + at, std::string("file:///etc/passwd")}) {
    const HttpResponse r = Get(*client, url);
    EXPECT_NE(r.curl_code, 0) << url;
    EXPECT_EQ(r.status, 0) << url;
    EXPECT_TRUE(r.body.empty()) << url << " read " << r.body.size() << " bytes";
  }
  EXPECT_EQ(listener.accepted(), 0);
}

TEST(DestinationPolicyClientTest, RedirectsAreNotFollowed) {
  CountingListener inside;
  CountingListener redirector(
      "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:" + std::to_string(inside.port()) +
      "/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  auto client = MakeHttpClient();
  const HttpResponse r = Get(*client, "http://127.0.0.1:" + std::to_string(redirector.port()));
  EXPECT_EQ(r.status, 302) << r.error;
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(inside.accepted(), 0) << "the redirect was followed";
}

}  // namespace
}  // namespace herald::net

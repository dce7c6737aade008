// Request smuggling and Host confusion (RFC 9112 §6.1, §3.2), over real sockets: a head whose
// body length cannot be known is refused and its connection closed, so the bytes after it are
// never run as a request of their own.
#include <gtest/gtest.h>

#include <string>

#include "http/server_test_support.h"

namespace herald::http {
namespace {

using namespace std::chrono_literals;
using namespace herald::http::test_support;

// A request with `framing` headers whose body is a whole second request: the attack.
std::string Smuggling(const std::string& framing) {
  return "POST /v1/notifications HTTP/1.1\r\nHost: x\r\n" + framing +
         "\r\n"
         "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: smuggled-1\r\nConnection: "
         "close\r\n\r\n";
}

TEST_F(ServerTest, TransferEncodingsOtherThanAFinalChunkedAre400AndNothingIsSmuggled) {
  StartServer();
  for (const std::string coding : {"gzip", "chunked, identity", "xchunked", "chunked, chunked",
                                   "identity", "chunked,", ", chunked", "chunked ; foo=bar"}) {
    auto client = Connect();
    ASSERT_TRUE(client->Send(Smuggling("Transfer-Encoding: " + coding + "\r\n")));
    const auto reply = client->Read();
    ASSERT_TRUE(reply) << coding;
    ExpectError(*reply, 400, "invalid_transfer_encoding", "Transfer-Encoding");
    EXPECT_EQ(Lower(reply->Header("connection")), "close") << coding;
    EXPECT_TRUE(client->ClosedWithin(3s)) << coding;
  }
  // Not one of the smuggled requests reached the handler.
  EXPECT_TRUE(handler_->Handled().empty());
}

TEST_F(ServerTest, AnUnknownCodingBeforeAFinalChunkedIs501) {
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(
      "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  ExpectError(*reply, 501, "unsupported_transfer_encoding", "Transfer-Encoding");
  EXPECT_TRUE(client->ClosedWithin(3s));
  EXPECT_TRUE(handler_->Handled().empty());
}

TEST_F(ServerTest, TransferEncodingSplitOverTwoFieldsIsReadAsOneList) {
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(
      client->Send(Smuggling("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n")));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  // Beast's parser refuses this one itself (malformed_request); either way: 400 and closed.
  EXPECT_EQ(reply->status, 400) << reply->body;
  EXPECT_TRUE(client->ClosedWithin(3s));
  EXPECT_TRUE(handler_->Handled().empty());
}

TEST_F(ServerTest, TransferEncodingInHttp10Is400) {
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(
      "POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  ExpectError(*reply, 400, "invalid_transfer_encoding", "Transfer-Encoding");
  EXPECT_TRUE(handler_->Handled().empty());
}

TEST_F(ServerTest, ChunkedAloneStillWorksInAnyCase) {
  handler_->handle = [](const Request& request) {
    Response response;
    response.body = request.body;
    return response;
  };
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: ChUnKeD\r\n\r\n2\r\nok\r\n0\r\n\r\n"));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, "ok");
}

TEST_F(ServerTest, ContentLengthWithTransferEncodingIsStill400) {
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(Smuggling("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n")));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 400);
  EXPECT_TRUE(client->ClosedWithin(3s));
  EXPECT_TRUE(handler_->Handled().empty());
}

TEST_F(ServerTest, MissingDuplicateOrMalformedHostIs400) {
  StartServer();
  for (const std::string head :
       {"GET /a HTTP/1.1\r\n\r\n", "GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "GET /a HTTP/1.1\r\nHost: \r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: evil.example/path\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: user@evil.example\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: a b\r\n\r\n", "GET /a HTTP/1.1\r\nHost: a:80x\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: [::1\r\n\r\n", "GET /a HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"}) {
    auto client = Connect();
    ASSERT_TRUE(client->Send(head));
    const auto reply = client->Read();
    ASSERT_TRUE(reply) << head;
    ExpectError(*reply, 400, "invalid_host", "Host");
    EXPECT_TRUE(client->ClosedWithin(3s)) << head;
  }
  EXPECT_TRUE(handler_->Handled().empty());
}

TEST_F(ServerTest, WellFormedHostsAndHttp10WithoutHostAreServed) {
  StartServer();
  for (const std::string head :
       {"GET /a HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        "GET /a HTTP/1.0\r\n\r\n"}) {
    auto client = Connect();
    ASSERT_TRUE(client->Send(head));
    const auto reply = client->Read();
    ASSERT_TRUE(reply) << head;
    EXPECT_EQ(reply->status, 200) << head << reply->body;
  }
  EXPECT_EQ(handler_->Handled().size(), 5u);
}

TEST_F(ServerTest, FramingRefusalsAreTheServersOwnAndNamedByTheirCode) {
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(Smuggling("Transfer-Encoding: gzip\r\n")));
  ASSERT_TRUE(client->Read());
  const auto records = handler_->Records(1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].response.refusal, "invalid_transfer_encoding");
  EXPECT_EQ(records[0].response.route, "");
}

}  // namespace
}  // namespace herald::http

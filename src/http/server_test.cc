// Drives the server over real sockets: a small blocking client (POSIX sockets, OpenSSL for TLS)
// that speaks raw HTTP/1.1, so malformed input can be sent as easily as good input.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "http/server_test_support.h"

namespace herald::http {
namespace {

using namespace std::chrono_literals;
using namespace herald::http::test_support;

TEST_F(ServerTest, RoundTripDeliversMethodPathQueryHeadersAndBody) {
  handler_->handle = [](const Request& request) {
    Response response;
    response.status = 201;
    response.content_type = "text/plain";
    response.body = "got:" + request.body;
    response.headers = {{"X-Extra", "yes"}, {"Content-Length", "999"}};
    return response;
  };
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(Post("/v1/a%20b/c?x=1&name=hello%20world&plus=a+b&x=2&flag", "payload",
                                "X-Custom-Header: Value\r\n")));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 201);
  EXPECT_EQ(reply->body, "got:payload");
  EXPECT_EQ(reply->Header("content-length"), "11");
  EXPECT_EQ(reply->Header("content-type"), "text/plain");
  EXPECT_EQ(reply->Header("x-extra"), "yes");
  EXPECT_EQ(reply->Header("server"), "herald");

  const auto handled = handler_->Handled();
  ASSERT_EQ(handled.size(), 1u);
  const Request& request = handled[0];
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.target, "/v1/a%20b/c?x=1&name=hello%20world&plus=a+b&x=2&flag");
  EXPECT_EQ(request.path, "/v1/a b/c");
  EXPECT_EQ(
      request.query,
      (Params{{"x", "1"}, {"name", "hello world"}, {"plus", "a b"}, {"x", "2"}, {"flag", ""}}));
  ASSERT_NE(request.Query("x"), nullptr);
  EXPECT_EQ(*request.Query("x"), "1");
  EXPECT_EQ(request.Query("missing"), nullptr);
  EXPECT_EQ(request.Header("x-custom-header"), "Value");
  EXPECT_EQ(request.Header("host"), "test");
  EXPECT_EQ(request.body, "payload");
  EXPECT_EQ(request.remote, "127.0.0.1");
  EXPECT_EQ(reply->Header("x-request-id"), request.request_id);
}

TEST_F(ServerTest, ChunkedBodyIsAssembledForTheHandler) {
  handler_->handle = [](const Request& request) {
    Response response;
    response.body = request.body;
    return response;
  };
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(
      client->Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, "hello world");
}

TEST_F(ServerTest, RequestIdIsEchoedWhenSaneAndMintedOtherwise) {
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(Get("/a", "X-Request-Id: abc-123_X.y\r\n")));
  const auto echoed = client->Read();
  ASSERT_TRUE(echoed);
  EXPECT_EQ(echoed->Header("x-request-id"), "abc-123_X.y");

  ASSERT_TRUE(client->Send(Get("/b", "X-Request-Id: not sane!\r\n")));
  const auto replaced = client->Read();
  ASSERT_TRUE(replaced);
  const std::string minted = replaced->Header("x-request-id");
  EXPECT_EQ(minted.size(), 16u);
  EXPECT_EQ(minted.find_first_not_of("0123456789abcdef"), std::string::npos) << minted;

  ASSERT_TRUE(client->Send(Get("/c")));
  const auto fresh = client->Read();
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->Header("x-request-id").size(), 16u);
  EXPECT_NE(fresh->Header("x-request-id"), minted);

  const auto handled = handler_->Handled();
  ASSERT_EQ(handled.size(), 3u);
  EXPECT_EQ(handled[0].request_id, "abc-123_X.y");
  EXPECT_EQ(handled[1].request_id, minted);
}

TEST_F(ServerTest, KeepAliveServesRequestsOnOneConnectionUntilConnectionClose) {
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(Get("/first")));
  const auto first = client->Read();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->body, "GET /first");
  EXPECT_NE(Lower(first->Header("connection")), "close");

  ASSERT_TRUE(client->Send(Get("/second", "Connection: close\r\n")));
  const auto second = client->Read();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, "GET /second");
  EXPECT_EQ(Lower(second->Header("connection")), "close");
  EXPECT_TRUE(client->ClosedWithin(2s));
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(Get("/one") + Post("/two", "x") + Get("/three")));
  for (const char* expected : {"GET /one", "POST /two", "GET /three"}) {
    const auto reply = client->Read();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->body, expected);
  }
}

TEST_F(ServerTest, HeadResponseAnnouncesLengthWithoutBody) {
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send("HEAD /thing HTTP/1.1\r\nHost: t\r\n\r\n"));
  const auto head = client->Read(/*head_request=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("content-length"), std::to_string(std::string("HEAD /thing").size()));
  // The connection is still in step: the next response is read cleanly.
  ASSERT_TRUE(client->Send(Get("/after")));
  const auto after = client->Read();
  ASSERT_TRUE(after);
  EXPECT_EQ(after->body, "GET /after");
}

TEST_F(ServerTest, OversizedContentLengthGets413AndTheConnectionCloses) {
  handler_->plan = [](const Request&) { return BodyPlan{false, 100}; };
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(Post("/big", std::string(1000, 'x'))));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  ExpectError(*reply, 413, "body_too_large");
  EXPECT_NE(reply->body.find("100 bytes"), std::string::npos) << reply->body;
  EXPECT_TRUE(client->ClosedWithin(3s));
  EXPECT_TRUE(handler_->Handled().empty());
}

TEST_F(ServerTest, OversizedChunkedBodyGets413) {
  handler_->plan = [](const Request&) { return BodyPlan{false, 100}; };
  StartServer();
  auto client = Connect();
  const std::string chunk = "3c\r\n" + std::string(60, 'y') + "\r\n";
  ASSERT_TRUE(client->Send("POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
                           chunk + chunk + chunk + "0\r\n\r\n"));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  ExpectError(*reply, 413, "body_too_large");
  EXPECT_TRUE(client->ClosedWithin(3s));
  EXPECT_TRUE(handler_->Handled().empty());
}

TEST_F(ServerTest, ExpectContinueGets100BeforeTheBody) {
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(
      "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
  const auto interim = client->Read();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(client->Send("data"));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  ASSERT_EQ(handler_->Handled().size(), 1u);
  EXPECT_EQ(handler_->Handled()[0].body, "data");
}

TEST_F(ServerTest, MalformedRequestGets400AndCloses) {
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send("THIS IS NOT HTTP\r\n\r\n"));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  ExpectError(*reply, 400, "malformed_request");
  EXPECT_TRUE(client->ClosedWithin(3s));
  const auto records = handler_->Records(1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].response.status, 400);
  EXPECT_EQ(records[0].response.route, "");
  EXPECT_EQ(records[0].response.actor, "anonymous");
}

TEST_F(ServerTest, OversizedHeadGets431) {
  options_.max_header_bytes = 1024;
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(Get("/", "X-Big: " + std::string(2000, 'a') + "\r\n")));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  ExpectError(*reply, 431, "headers_too_large");
  EXPECT_TRUE(client->ClosedWithin(3s));
}

TEST_F(ServerTest, SilentConnectionIsClosedAfterHeaderTimeout) {
  options_.header_timeout_ms = 200;
  StartServer();
  auto client = Connect();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(client->ClosedWithin(3s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
  EXPECT_TRUE(handler_->Records(0).empty());  // nothing was sent, so nothing is recorded
}

TEST_F(ServerTest, PartialHeadGets408) {
  options_.header_timeout_ms = 200;
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send("GET /slow HTTP/1.1\r\nHost: t\r\n"));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  ExpectError(*reply, 408, "request_timeout");
  EXPECT_TRUE(client->ClosedWithin(3s));
  const auto records = handler_->Records(1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].response.status, 408);
}

TEST_F(ServerTest, IdleKeepAliveConnectionIsClosedAfterIdleTimeout) {
  options_.idle_timeout_ms = 200;
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(Get("/")));
  ASSERT_TRUE(client->Read());
  EXPECT_TRUE(client->ClosedWithin(3s));
}

TEST_F(ServerTest, StreamedBodyArrivesCompleteAndInOrder) {
  auto log = std::make_shared<StreamLog>();
  handler_->plan = [](const Request&) { return BodyPlan{true, 16u << 20}; };
  handler_->open_stream =
      [log](const Request&) -> std::variant<Response, std::unique_ptr<BodySink>> {
    return std::make_unique<CollectingSink>(log);
  };
  StartServer();
  std::string body(5 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 7 + i / 4096) % 251);
  auto client = Connect();
  ASSERT_TRUE(client->Send(Post("/import", body)));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, "bytes=" + std::to_string(body.size()));

  std::lock_guard lock(log->mu);
  EXPECT_TRUE(log->data == body) << "the streamed body differs from what was sent";
  EXPECT_GE(log->pieces.size(), 20u);  // 5 MiB in pieces of at most 256 KiB
  for (size_t piece : log->pieces) EXPECT_LE(piece, 256u * 1024);
  EXPECT_EQ(log->finishes, std::vector<bool>{true});
}

TEST_F(ServerTest, ChunkedStreamedBodyArrivesComplete) {
  auto log = std::make_shared<StreamLog>();
  handler_->plan = [](const Request&) { return BodyPlan{true, 1 << 20}; };
  handler_->open_stream =
      [log](const Request&) -> std::variant<Response, std::unique_ptr<BodySink>> {
    return std::make_unique<CollectingSink>(log);
  };
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(
      client->Send("POST /import HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n"));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  std::lock_guard lock(log->mu);
  EXPECT_EQ(log->data, "{\"a\":1}");
  EXPECT_EQ(log->finishes, std::vector<bool>{true});
}

TEST_F(ServerTest, StreamedBodyOverTheLimitGets413AndFinishesIncomplete) {
  auto log = std::make_shared<StreamLog>();
  handler_->plan = [](const Request&) { return BodyPlan{true, 1000}; };
  handler_->open_stream =
      [log](const Request&) -> std::variant<Response, std::unique_ptr<BodySink>> {
    return std::make_unique<CollectingSink>(log);
  };
  StartServer();
  auto client = Connect();
  const std::string chunk = "258\r\n" + std::string(600, 'z') + "\r\n";  // 600 bytes a chunk
  ASSERT_TRUE(
      client->Send("POST /import HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
                   chunk + chunk + "0\r\n\r\n"));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  ExpectError(*reply, 413, "body_too_large");
  EXPECT_NE(reply->body.find("1000 bytes"), std::string::npos) << reply->body;
  const auto records = handler_->Records(1);
  std::lock_guard lock(log->mu);
  EXPECT_EQ(log->finishes, std::vector<bool>{false});
}

// A sink that already acted on part of a body (an import that stored its first lines) must not
// be contradicted by an error status for the whole request.
class PartialSink : public BodySink {
 public:
  bool Write(std::string_view piece) override {
    stored_ += piece.size();
    return true;
  }
  Response Finish(bool complete) override {
    Response r;
    r.status = 200;
    r.content_type = "text/plain";
    r.body = std::string(complete ? "complete" : "partial") + " stored=" + std::to_string(stored_);
    return r;
  }

 private:
  size_t stored_ = 0;
};

TEST_F(ServerTest, ASinkThatStoredPartOfABodyAnswersForItWhenTheReadFails) {
  handler_->plan = [](const Request&) { return BodyPlan{true, 1000}; };
  handler_->open_stream = [](const Request&) -> std::variant<Response, std::unique_ptr<BodySink>> {
    return std::make_unique<PartialSink>();
  };
  StartServer();
  auto client = Connect();
  const std::string chunk = "258\r\n" + std::string(600, 'z') + "\r\n";
  ASSERT_TRUE(
      client->Send("POST /import HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
                   chunk + chunk + "0\r\n\r\n"));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body.rfind("partial stored=", 0), 0u) << reply->body;
  EXPECT_TRUE(client->ClosedWithin(3s)) << "the unread rest of the body cannot be skipped";
}

TEST_F(ServerTest, SinkThatStopsReadingAnswersFromFinish) {
  auto log = std::make_shared<StreamLog>();
  handler_->plan = [](const Request&) { return BodyPlan{true, 16u << 20}; };
  handler_->open_stream =
      [log](const Request&) -> std::variant<Response, std::unique_ptr<BodySink>> {
    return std::make_unique<CollectingSink>(log, /*stop_after=*/1);
  };
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(Post("/import", std::string(1 << 20, 'q'))));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 422);
  EXPECT_EQ(Lower(reply->Header("connection")), "close");
  std::lock_guard lock(log->mu);
  EXPECT_EQ(log->pieces.size(), 1u);
  EXPECT_EQ(log->finishes, std::vector<bool>{false});
}

TEST_F(ServerTest, OpenStreamRefusalIsSent) {
  handler_->plan = [](const Request&) { return BodyPlan{true, 1 << 20}; };
  handler_->open_stream = [](const Request&) -> std::variant<Response, std::unique_ptr<BodySink>> {
    Response refusal;
    refusal.status = 401;
    refusal.body = R"({"error":{"code":"unauthenticated","message":"No key.","field":""}})";
    refusal.route = "/v1/users:import";
    return refusal;
  };
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(Post("/v1/users:import", std::string(5000, 'n'))));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  ExpectError(*reply, 401, "unauthenticated");
  EXPECT_EQ(Lower(reply->Header("connection")), "close");  // the body was left unread
  EXPECT_TRUE(client->ClosedWithin(3s));
  const auto records = handler_->Records(1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].response.route, "/v1/users:import");
}

TEST_F(ServerTest, RecordIsCalledForEveryResponseIncludingRefusals) {
  handler_->plan = [](const Request& head) {
    return BodyPlan{false, head.path == "/small" ? 10u : 1000u};
  };
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(Get("/ok", "X-Request-Id: first\r\n")));
  ASSERT_TRUE(client->Read());
  ASSERT_TRUE(client->Send(Post("/small", std::string(50, 's'), "X-Request-Id: second\r\n")));
  const auto refused = client->Read();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 413);

  const auto records = handler_->Records(2);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].request.request_id, "first");
  EXPECT_EQ(records[0].response.status, 200);
  EXPECT_EQ(records[0].response.route, "/ok");
  EXPECT_EQ(records[0].response.actor, "tester");
  EXPECT_GE(records[0].latency_us, 0);
  EXPECT_EQ(records[1].request.request_id, "second");
  EXPECT_EQ(records[1].request.path, "/small");
  EXPECT_EQ(records[1].response.status, 413);
  EXPECT_EQ(records[1].response.route, "");
  EXPECT_EQ(records[1].response.actor, "anonymous");
}

TEST_F(ServerTest, HandlerExceptionBecomes500AndTheConnectionSurvives) {
  handler_->handle = [](const Request& request) -> Response {
    if (request.path == "/boom") throw std::runtime_error("boom");
    return Response{};
  };
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(Get("/boom")));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  ExpectError(*reply, 500, "internal_error");
  ASSERT_TRUE(client->Send(Get("/fine")));
  const auto next = client->Read();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200);
}

TEST_F(ServerTest, HandlersRunOnWorkersAndRecordOnTheIoThread) {
  options_.io_threads = 1;
  std::mutex mu;
  std::thread::id plan_thread;
  std::thread::id handle_thread;
  handler_->plan = [&](const Request&) {
    std::lock_guard lock(mu);
    plan_thread = std::this_thread::get_id();
    return BodyPlan{};
  };
  handler_->handle = [&](const Request&) {
    std::lock_guard lock(mu);
    handle_thread = std::this_thread::get_id();
    return Response{};
  };
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(Get("/")));
  ASSERT_TRUE(client->Read());
  ASSERT_EQ(handler_->Records(1).size(), 1u);
  std::lock_guard lock(mu);
  EXPECT_NE(plan_thread, handle_thread);
  EXPECT_NE(handle_thread, std::thread::id());
}

TEST_F(ServerTest, SlowHandlerDoesNotHoldUpOtherConnections) {
  options_.io_threads = 1;
  handler_->handle = [](const Request& request) {
    if (request.path == "/slow") std::this_thread::sleep_for(500ms);
    return Response{};
  };
  StartServer();
  auto slow = Connect();
  ASSERT_TRUE(slow->Send(Get("/slow")));
  std::this_thread::sleep_for(50ms);
  const auto start = std::chrono::steady_clock::now();
  auto quick = Connect();
  ASSERT_TRUE(quick->Send(Get("/quick")));
  ASSERT_TRUE(quick->Read());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 300ms);
  ASSERT_TRUE(slow->Read());
}

TEST_F(ServerTest, PeerResetMidRequestDoesNotDisturbTheServer) {
  auto log = std::make_shared<StreamLog>();
  handler_->plan = [](const Request& head) { return BodyPlan{head.path == "/stream", 1 << 20}; };
  handler_->open_stream =
      [log](const Request&) -> std::variant<Response, std::unique_ptr<BodySink>> {
    return std::make_unique<CollectingSink>(log);
  };
  StartServer();
  {
    auto buffered = Connect();
    ASSERT_TRUE(
        buffered->Send("POST /buffered HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n"
                       "only a little"));
    auto streamed = Connect();
    ASSERT_TRUE(
        streamed->Send("POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n"
                       "only a little"));
    std::this_thread::sleep_for(100ms);
    buffered->Reset();
    streamed->Reset();
  }
  for (int i = 0; i < 100; ++i) {
    {
      std::lock_guard lock(log->mu);
      if (!log->finishes.empty()) break;
    }
    std::this_thread::sleep_for(20ms);
  }
  {
    std::lock_guard lock(log->mu);
    EXPECT_EQ(log->finishes, std::vector<bool>{false});
  }
  auto client = Connect();
  ASSERT_TRUE(client->Send(Get("/still-alive")));
  const auto reply = client->Read();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->body, "GET /still-alive");
}

TEST_F(ServerTest, ConnectionsPastTheLimitAreAnswered503AndClosed) {
  options_.max_connections = 2;
  StartServer();
  auto first = Connect();
  auto second = Connect();
  for (auto* client : {first.get(), second.get()}) {
    ASSERT_TRUE(client->Send(Get("/")));
    ASSERT_TRUE(client->Read());
  }
  auto third = Connect();
  ASSERT_TRUE(third->Send(Get("/")));
  const auto refused = third->Read();
  ASSERT_TRUE(refused);
  ExpectError(*refused, 503, "too_many_connections");
  EXPECT_EQ(refused->Header("retry-after"), "1");
  EXPECT_TRUE(third->ClosedWithin(3s));
  first.reset();  // a slot frees up once the server sees the close
  std::this_thread::sleep_for(200ms);
  auto fourth = Connect();
  ASSERT_TRUE(fourth->Send(Get("/")));
  const auto served = fourth->Read();
  ASSERT_TRUE(served);
  EXPECT_EQ(served->status, 200);
}

TEST_F(ServerTest, GracefulStopLetsInFlightRequestFinishAndClosesIdleConnections) {
  options_.shutdown_grace_ms = 5000;
  std::promise<void> started;
  handler_->handle = [&started](const Request& request) {
    Response response;
    if (request.path == "/slow") {
      started.set_value();
      std::this_thread::sleep_for(300ms);
      response.body = "slow done";
    }
    return response;
  };
  StartServer();
  const uint16_t port = server_->port();
  auto idle = Connect();
  ASSERT_TRUE(idle->Send(Get("/quick")));
  ASSERT_TRUE(idle->Read());

  std::optional<HttpReply> slow_reply;
  std::thread slow_client([&] {
    auto client = TestClient::Connect(port);
    if (client == nullptr || !client->Send(Get("/slow"))) return;
    slow_reply = client->Read();
  });
  ASSERT_EQ(started.get_future().wait_for(5s), std::future_status::ready);
  const auto stop_began = std::chrono::steady_clock::now();
  server_->Stop();
  const auto stop_took = std::chrono::steady_clock::now() - stop_began;
  slow_client.join();

  ASSERT_TRUE(slow_reply);
  EXPECT_EQ(slow_reply->status, 200);
  EXPECT_EQ(slow_reply->body, "slow done");
  EXPECT_EQ(Lower(slow_reply->Header("connection")), "close");
  EXPECT_GE(stop_took, 200ms);  // it waited for the in-flight request...
  EXPECT_LT(stop_took, 3s);     // ...but not for the idle keep-alive connection
  EXPECT_TRUE(idle->ClosedWithin(1s));
  EXPECT_EQ(TestClient::Connect(port), nullptr);  // no longer accepting
  server_->Stop();                                // idempotent
}

TEST_F(ServerTest, StopGivesUpOnRequestsPastTheGracePeriod) {
  options_.shutdown_grace_ms = 100;
  std::promise<void> started;
  handler_->handle = [&started](const Request&) {
    started.set_value();
    std::this_thread::sleep_for(600ms);
    return Response{};
  };
  StartServer();
  auto client = Connect();
  ASSERT_TRUE(client->Send(Get("/too-slow")));
  ASSERT_EQ(started.get_future().wait_for(5s), std::future_status::ready);
  const auto stop_began = std::chrono::steady_clock::now();
  server_->Stop();
  const auto stop_took = std::chrono::steady_clock::now() - stop_began;
  EXPECT_GE(stop_took, 400ms);  // a running handler call cannot be interrupted...
  EXPECT_LT(stop_took, 3s);
  EXPECT_FALSE(client->Read());  // ...but its response is dropped and the connection closed
  EXPECT_TRUE(handler_->Records(0).empty());
}

TEST_F(ServerTest, ListenOnABusyPortFails) {
  StartServer();
  ServerOptions options = options_;
  options.listen = "127.0.0.1:" + std::to_string(server_->port());
  auto second = MakeServer(options, handler_);
  const Status status = second->Start();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().kind, ErrorKind::kUnavailable);
  EXPECT_EQ(status.error().code, "listen_failed");
  EXPECT_NE(status.error().message.find("in use"), std::string::npos) << status.error().message;
}

TEST_F(ServerTest, ListenAcceptsLocalhostAndRejectsNonsense) {
  options_.listen = "localhost:0";
  server_ = MakeServer(options_, handler_);
  ASSERT_TRUE(server_->Start().ok());
  auto client = Connect();
  ASSERT_TRUE(client->Send(Get("/")));
  EXPECT_TRUE(client->Read());

  for (const char* bad : {"nonsense", "127.0.0.1:99999", "example.com:80", "::1:80"}) {
    ServerOptions options = options_;
    options.listen = bad;
    const Status status = MakeServer(options, handler_)->Start();
    ASSERT_FALSE(status.ok()) << bad;
    EXPECT_EQ(status.error().code, "listen_invalid") << bad;
  }
}

// A self-signed certificate for "localhost" and its key, written as PEM files.
class TlsFiles {
 public:
  TlsFiles() {
    char pattern[] = "/tmp/herald_http_test_XXXXXX";
    dir_ = ::mkdtemp(pattern);
    cert_ = dir_ + "/cert.pem";
    key_ = dir_ + "/key.pem";
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                              std::pair{NID_subject_alt_name, "DNS:localhost"}}) {
      X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, nullptr, nid, value);
      X509_add_ext(cert, extension, -1);
      X509_EXTENSION_free(extension);
    }
    X509_sign(cert, key, EVP_sha256());
    FILE* cert_out = std::fopen(cert_.c_str(), "w");
    PEM_write_X509(cert_out, cert);
    std::fclose(cert_out);
    FILE* key_out = std::fopen(key_.c_str(), "w");
    PEM_write_PrivateKey(key_out, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(key_out);
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  ~TlsFiles() { std::filesystem::remove_all(dir_); }

  const std::string& dir() const { return dir_; }
  const std::string& cert() const { return cert_; }
  const std::string& key() const { return key_; }

 private:
  std::string dir_;
  std::string cert_;
  std::string key_;
};

TEST_F(ServerTest, TlsRoundTrip) {
  TlsFiles files;
  options_.tls_cert_file = files.cert();
  options_.tls_key_file = files.key();
  StartServer();

  SSL_CTX* context = SSL_CTX_new(TLS_client_method());
  ASSERT_NE(context, nullptr);
  ASSERT_EQ(SSL_CTX_load_verify_locations(context, files.cert().c_str(), nullptr), 1);
  SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
  {
    auto client = TestClient::Connect(server_->port(), context);
    ASSERT_NE(client, nullptr) << "TLS handshake failed";
    ASSERT_TRUE(client->Send(Post("/secure?x=1", "secret")));
    const auto reply = client->Read();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->status, 200);
    EXPECT_EQ(reply->body, "POST /secure");
    ASSERT_TRUE(client->Send(Get("/again")));  // keep-alive over TLS
    const auto again = client->Read();
    ASSERT_TRUE(again);
    EXPECT_EQ(again->body, "GET /again");
  }
  // Plain HTTP on the HTTPS port gets nothing back.
  auto plain = Connect();
  ASSERT_TRUE(plain->Send(Get("/")));
  EXPECT_FALSE(plain->Read());
  SSL_CTX_free(context);
  ASSERT_EQ(handler_->Handled().size(), 2u);
}

TEST_F(ServerTest, BadTlsFilesFailStart) {
  TlsFiles files;
  const std::string garbage = files.dir() + "/garbage.pem";
  FILE* out = std::fopen(garbage.c_str(), "w");
  std::fputs("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", out);
  std::fclose(out);
  const std::pair<std::string, std::string> bad_pairs[] = {
      {files.dir() + "/missing.pem", files.key()},
      {garbage, files.key()},
      {files.cert(), garbage},
      {files.cert(), ""},
  };
  for (const auto& [cert, key] : bad_pairs) {
    options_.tls_cert_file = cert;
    options_.tls_key_file = key;
    auto server = MakeServer(options_, handler_);
    const Status status = server->Start();
    ASSERT_FALSE(status.ok()) << cert << " " << key;
    EXPECT_EQ(status.error().kind, ErrorKind::kUnavailable);
    EXPECT_EQ(status.error().code, "tls_config_invalid");
  }
}

}  // namespace
}  // namespace herald::http

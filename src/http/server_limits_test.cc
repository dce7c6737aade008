// Connection ceilings, over real sockets: past max_connections (or a client's share) a new
// connection is never reset; it waits in a small reserve where only health checks are served,
// everything else gets 503, and a full reserve refuses its oldest to make room.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/server_test_support.h"

namespace herald::http {
namespace {

using namespace std::chrono_literals;
using namespace herald::http::test_support;

TEST_F(ServerTest, HealthChecksAreServedPastTheCeiling) {
  options_.max_connections = 1;
  StartServer();
  auto regular = Connect();
  ASSERT_TRUE(regular->Send(Get("/")));
  ASSERT_TRUE(regular->Read());
  for (const std::string path : {"/healthz", "/readyz"}) {
    auto health = Connect();
    ASSERT_TRUE(health->Send(Get(path)));
    const auto reply = health->Read();
    ASSERT_TRUE(reply) << path;
    EXPECT_EQ(reply->status, 200) << path;
    EXPECT_EQ(Lower(reply->Header("connection")), "close") << "a reserve connection serves once";
    EXPECT_TRUE(health->ClosedWithin(3s));
  }
}

TEST_F(ServerTest, ASilentConnectionInTheReserveGets503WithinASecond) {
  options_.max_connections = 1;
  StartServer();
  auto regular = Connect();
  ASSERT_TRUE(regular->Send(Get("/")));
  ASSERT_TRUE(regular->Read());
  auto silent = Connect();
  const auto start = std::chrono::steady_clock::now();
  const auto reply = silent->Read();
  ASSERT_TRUE(reply);
  ExpectError(*reply, 503, "too_many_connections");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  const auto records = handler_->Records(2);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].response.refusal, "too_many_connections");
}

TEST_F(ServerTest, AFullReserveRefusesItsOldestToLetAHealthCheckIn) {
  options_.max_connections = 1;
  options_.reserve_connections = 2;
  StartServer();
  auto regular = Connect();
  ASSERT_TRUE(regular->Send(Get("/")));
  ASSERT_TRUE(regular->Read());
  // An attacker fills the reserve with connections that say nothing.
  std::vector<std::unique_ptr<TestClient>> squatters;
  squatters.reserve(2);
  for (int i = 0; i < 2; ++i) squatters.push_back(Connect());
  std::this_thread::sleep_for(100ms);
  auto health = Connect();
  ASSERT_TRUE(health->Send(Get("/healthz")));
  const auto reply = health->Read();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  const auto evicted = squatters[0]->Read();
  ASSERT_TRUE(evicted) << "the oldest squatter was refused, not reset";
  ExpectError(*evicted, 503, "too_many_connections");
}

TEST_F(ServerTest, OneClientAddressIsCappedBeforeTheTotal) {
  options_.max_connections = 100;
  options_.max_connections_per_client = 2;
  StartServer();
  std::vector<std::unique_ptr<TestClient>> mine;
  for (int i = 0; i < 2; ++i) {
    mine.push_back(Connect());
    ASSERT_TRUE(mine.back()->Send(Get("/")));
    ASSERT_TRUE(mine.back()->Read());
  }
  auto third = Connect();
  ASSERT_TRUE(third->Send(Get("/v1/anything")));
  const auto reply = third->Read();
  ASSERT_TRUE(reply);
  ExpectError(*reply, 503, "too_many_connections_from_client");
  EXPECT_NE(reply->body.find("2 connections"), std::string::npos) << reply->body;
  mine.pop_back();
  std::this_thread::sleep_for(200ms);
  auto again = Connect();
  ASSERT_TRUE(again->Send(Get("/")));
  const auto served = again->Read();
  ASSERT_TRUE(served);
  EXPECT_EQ(served->status, 200);
}

}  // namespace
}  // namespace herald::http

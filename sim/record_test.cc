#include "sim/record.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "sim/faults.h"

namespace herald::sim {
namespace {

RecordedMessage Msg(Provider p, std::string address, std::string body) {
  return RecordedMessage{p, std::move(address), "id", "", "", std::move(body), 1};
}

TEST(MessageRecordTest, CountsUniqueAddressesAndDuplicateDeliveryIds) {
  MessageRecord record(100);
  record.Accept(Msg(Provider::kSmtp, "A@x.com", "1"), "d1");
  record.Accept(Msg(Provider::kSmtp, "a@x.com", "2"), "d1");
  record.Accept(Msg(Provider::kSmtp, "b@x.com", "3"), "");
  record.Accept(Msg(Provider::kSmtp, "b@x.com", "4"), "");
  record.Accept(Msg(Provider::kFcm, "a@x.com", "5"), "d1");  // other provider, own sets
  record.Refuse(Provider::kSmtp, 3);
  ProviderStats s = record.Stats(Provider::kSmtp);
  EXPECT_EQ(s.accepted, 4u);
  EXPECT_EQ(s.unique_addresses, 2u);
  EXPECT_EQ(s.duplicates, 1u);
  EXPECT_EQ(s.refused, 3u);
  EXPECT_EQ(record.Stats(Provider::kFcm).duplicates, 0u);
}

TEST(MessageRecordTest, KeepsTheNewestWithinItsBoundButCountsAll) {
  MessageRecord record(3);
  for (int i = 0; i < 5; ++i) record.Accept(Msg(Provider::kTwilio, "+1555", std::to_string(i)), "");
  auto all = record.Query(std::nullopt, "", 100);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all.front().body, "2");
  EXPECT_EQ(all.back().body, "4");
  EXPECT_EQ(record.Stats(Provider::kTwilio).accepted, 5u);
  EXPECT_EQ(record.Query(Provider::kTwilio, "1555", 1).at(0).body, "4");  // '+' optional
  EXPECT_TRUE(record.Query(Provider::kVonage, "", 10).empty());
  record.Clear();
  EXPECT_TRUE(record.Query(std::nullopt, "", 10).empty());
  EXPECT_EQ(record.Stats(Provider::kTwilio).accepted, 0u);
}

TEST(MessageRecordTest, ConcurrentAcceptsAreAllCounted) {
  MessageRecord record(1000);
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&record, t] {
      for (int i = 0; i < 5000; ++i) {
        record.Accept(Msg(Provider::kApns, std::to_string(i % 100), ""),
                      std::to_string(t * 10000 + i % 2500));
      }
    });
  }
  for (auto& t : threads) t.join();
  ProviderStats s = record.Stats(Provider::kApns);
  EXPECT_EQ(s.accepted, 20000u);
  EXPECT_EQ(s.unique_addresses, 100u);
  EXPECT_EQ(s.duplicates, 10000u);  // each thread sends each of its 2500 ids twice
  EXPECT_EQ(record.Query(std::nullopt, "", 5000).size(), 1000u);
}

TEST(FaultConfigTest, ParsesValidatesAndNormalizes) {
  auto c = ParseFaultConfig(Provider::kSmtp, R"({"outage":true,"error_rate":0.25,"status":503,
      "latency_ms":10,"timeout_after_accept_rate":0,"throttle_rate":1,
      "invalid_addresses":["X@Example.COM"]})");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->outage);
  EXPECT_DOUBLE_EQ(c->error_rate, 0.25);
  EXPECT_EQ(c->status, 503);
  EXPECT_TRUE(c->IsInvalid(Provider::kSmtp, "x@example.com"));
  EXPECT_FALSE(c->IsInvalid(Provider::kSmtp, "y@example.com"));
  auto bad = ParseFaultConfig(Provider::kApns, R"({"status":99})");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().field, "status");
  EXPECT_FALSE(ParseFaultConfig(Provider::kApns, R"({"latency_ms":-1})").ok());
  EXPECT_FALSE(ParseFaultConfig(Provider::kApns, R"({"invalid_addresses":[""]})").ok());
}

TEST(FaultConfigTest, RollsFollowTheRates) {
  FaultConfig always;
  always.throttle_rate = 1;
  always.error_rate = 1;
  EXPECT_EQ(RollFaults(always), FaultRoll::kThrottle);  // throttle is rolled first
  always.throttle_rate = 0;
  EXPECT_EQ(RollFaults(always), FaultRoll::kError);
  EXPECT_EQ(RollFaults(FaultConfig{}), FaultRoll::kNone);
  FaultConfig hold;
  hold.timeout_after_accept_rate = 1;
  EXPECT_TRUE(RollTimeoutAfterAccept(hold));
  EXPECT_FALSE(RollTimeoutAfterAccept(FaultConfig{}));
}

TEST(FaultTableTest, SnapshotsSurviveChanges) {
  FaultTable table;
  FaultConfig c;
  c.latency_ms = 7;
  table.Set(Provider::kVonage, c);
  auto snapshot = table.Get(Provider::kVonage);
  table.ClearAll();
  EXPECT_EQ(snapshot->latency_ms, 7);
  EXPECT_EQ(table.Get(Provider::kVonage)->latency_ms, 0);
}

}  // namespace
}  // namespace herald::sim

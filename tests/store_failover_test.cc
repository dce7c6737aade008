// The store survives the loss of its primary (issue 9): `herald serve` on a pg_auto_failover
// formation (testing/pg_ha_cluster.h: a monitor and three synchronous nodes on loopback) sends a
// 10k-device notification to the provider simulator; the primary's whole node is SIGKILLed in
// the middle. Herald follows the promoted standby through its multi-host URI, and the
// simulator's record shows every device reached with duplicates under 1 %; while no primary
// answers, API writes get 503 with Retry-After, never a 500. Prints the failover time as Herald
// saw it: from the first refused write to the first accepted one after.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "support/api_helpers.h"
#include "support/herald_process.h"
#include "support/sim_process.h"
#include "testing/pg_ha_cluster.h"

namespace herald::e2e {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string Token(int i) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016x", i);
  return std::string(48, 'f') + buf;
}

TEST(StoreFailoverTest, KillingThePrimaryMidSendLosesNothingAndWritesGet503Meanwhile) {
  constexpr int kUsers = 5'000;  // 10k devices
  pgtest::PgHaCluster ha;
  ASSERT_TRUE(ha.Start()) << ha.last_error();
  SimProcess sim;
  ASSERT_TRUE(sim.WaitReady());
  // --store-require-standby: each write is answered once a standby has it, also in the moment
  // after the promotion when the new primary runs alone (such writes wait for the standby that
  // follows it, or are 503).
  HeraldProcess server(HeraldOptions{.args = {"--sim", sim.url(), "--sim-smtp", sim.smtp(),
                                              "--store", ha.Uri(), "--store-require-standby"}});
  ASSERT_TRUE(server.Start()) << server.last_error() << server.Stderr();
  HttpClient admin = server.AdminClient();
  const TenantKey tenant = CreateTenantWithKey(admin, "Failover Tenant");
  ASSERT_FALSE(tenant.key.empty());
  HttpClient c = server.Client();
  c.set_bearer(tenant.key);
  c.set_timeout(120s);
  std::string audience;
  for (int i = 0; i < kUsers; ++i) {
    json line = {{"external_id", "u" + std::to_string(i)},
                 {"opt_in", true},
                 {"groups", {"all"}},
                 {"devices",
                  {{{"channel", "ios"}, {"address", Token(i)}},
                   {{"channel", "android"}, {"address", "fcm-" + std::to_string(i)}}}}};
    audience += line.dump() + "\n";
  }
  ASSERT_EQ(c.Import(audience).status, 200);
  ASSERT_EQ(sim.Client().Put("/sim/faults/apns", {{"latency_ms", 3}}).status, 200);
  ASSERT_EQ(sim.Client().Put("/sim/faults/fcm", {{"latency_ms", 3}}).status, 200);
  auto accepted = [&] {
    json s = sim.Stats();
    return s["apns"]["accepted"].get<uint64_t>() + s["fcm"]["accepted"].get<uint64_t>();
  };

  HttpResponse sent =
      c.Post("/v1/notifications", {{"to", {{"groups", {"all"}}}}, {"body", "Failover sale"}});
  ASSERT_EQ(sent.status, 202) << sent.Describe();
  const std::string id = sent.Json().value("id", "");
  for (auto until = Clock::now() + 60s; Clock::now() < until && accepted() < 2000;) {
    std::this_thread::sleep_for(5ms);
  }
  const uint64_t before_kill = accepted();
  ASSERT_LT(before_kill, 2u * kUsers) << "the send finished before the kill; nothing was tested";
  const int old_primary = ha.Primary();
  ASSERT_GE(old_primary, 0) << ha.last_error();
  ASSERT_TRUE(ha.KillNode(old_primary)) << ha.last_error();

  // Writes through the API until one is accepted again: each answer is 2xx or 503.
  HttpClient w = server.Client();
  w.set_bearer(tenant.key);
  w.set_timeout(30s);
  Clock::time_point first_refused{}, first_accepted_after{};
  int refused = 0;
  for (int i = 0; Clock::now() - first_refused < 90s || first_refused == Clock::time_point{}; ++i) {
    HttpResponse r = w.Put("/v1/users/probe-" + std::to_string(i), UserBody("Probe"));
    if (r.status == 201) {
      if (first_refused != Clock::time_point{}) {
        first_accepted_after = Clock::now();
        break;
      }
    } else {
      ASSERT_EQ(r.status, 503) << r.Describe();
      EXPECT_EQ(r.Header("retry-after"), "1");
      if (first_refused == Clock::time_point{}) first_refused = Clock::now();
      ++refused;
    }
    std::this_thread::sleep_for(50ms);
    if (i > 4000) break;
  }
  ASSERT_NE(first_refused, Clock::time_point{}) << "no write was ever refused: was it killed?";
  ASSERT_NE(first_accepted_after, Clock::time_point{}) << "no write was accepted after the kill";
  const auto failover =
      std::chrono::duration_cast<std::chrono::milliseconds>(first_accepted_after - first_refused);

  json n;
  for (auto until = Clock::now() + 180s; Clock::now() < until;) {
    n = c.Get("/v1/notifications/" + id).Json();
    if (n.value("status", "") == "completed") break;
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_EQ(n.value("status", ""), "completed") << n.dump();
  EXPECT_EQ(n["deliveries"], 2 * kUsers);
  EXPECT_EQ(n["counts"]["sent"], 2 * kUsers);
  json s = sim.Stats();
  EXPECT_EQ(s["apns"]["unique_addresses"], kUsers);  // every device reached
  EXPECT_EQ(s["fcm"]["unique_addresses"], kUsers);
  const uint64_t duplicates =
      s["apns"]["duplicates"].get<uint64_t>() + s["fcm"]["duplicates"].get<uint64_t>();
  EXPECT_LT(duplicates, 2u * kUsers / 100);
  EXPECT_EQ(server.Stop(), 0) << server.Stderr();
  std::printf(
      "[ info ] primary (node %d) killed after %llu of %d sent; failover as Herald saw it: "
      "%lld ms (%d writes answered 503 meanwhile); %llu duplicates\n",
      old_primary, static_cast<unsigned long long>(before_kill), 2 * kUsers,
      static_cast<long long>(failover.count()), refused,
      static_cast<unsigned long long>(duplicates));
}

TEST(StoreFailoverTest, RequireStandbyWithSqliteIsRefusedAtStart) {
  HeraldProcess server(HeraldOptions{.args = {"--store-require-standby"}});
  ASSERT_FALSE(server.Start());
  EXPECT_EQ(server.exit_status(), 2);
  EXPECT_NE(server.Stderr().find("--store-require-standby needs a PostgreSQL store"),
            std::string::npos)
      << server.Stderr();
}

}  // namespace
}  // namespace herald::e2e

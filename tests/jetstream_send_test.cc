// Herald on a NATS JetStream queue (issue 10): two `herald serve` processes share one PostgreSQL
// store and one 3-node JetStream cluster (`--queue nats://...`); a send accepted by one of them
// reaches every device exactly once through the simulator, whichever process dispatches. And
// the configurations that cannot work are refused at start with a sentence saying why.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "support/api_helpers.h"
#include "support/herald_process.h"
#include "support/sim_process.h"
#include "testing/nats/nats_test_cluster.h"
#include "testing/pg_test_server.h"

namespace herald::e2e {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

TEST(JetStreamSendTest, TwoProcessesOnOneStreamDeliverEveryDeviceOnce) {
  natstest::NatsTestCluster* nats = natstest::NatsTestCluster::Shared();
  ASSERT_NE(nats, nullptr) << "no NATS cluster (scripts/install-deps installs nats-server)";
  pgtest::PgTestServer* pg = pgtest::PgTestServer::Shared();
  ASSERT_NE(pg, nullptr) << "no PostgreSQL test server";
  SimProcess sim;
  ASSERT_TRUE(sim.WaitReady());
  const std::string store = pg->FreshSchemaUri("jetstream");
  HeraldOptions options;
  options.args = {"--sim",   sim.url(), "--sim-smtp", sim.smtp(),
                  "--store", store,     "--queue",    nats->Urls()};
  options.ready_timeout = 60s;  // the first start creates the stream's 32 R3 consumers
  options.env = {{"HERALD_ADMIN_TOKEN", "jetstream-admin-token-0123456789abcdef"}};
  HeraldProcess first(options);
  ASSERT_TRUE(first.Start()) << first.last_error() << first.Stderr();
  HeraldProcess second(options);  // same store, same stream, same master key
  second.ShareMasterKey(first);
  ASSERT_TRUE(second.Start()) << second.last_error() << second.Stderr();

  HttpClient admin = first.AdminClient();
  TenantKey tenant = CreateTenantWithKey(admin, "JetStream Tenant");
  ASSERT_FALSE(tenant.key.empty());
  HttpClient c = first.Client();
  c.set_bearer(tenant.key);
  c.set_timeout(60s);
  constexpr int kUsers = 500;
  HttpResponse imported = c.Import(PushAudience(kUsers, "j"));
  ASSERT_EQ(imported.status, 200) << imported.Describe();
  HttpResponse sent =
      c.Post("/v1/notifications", {{"to", {{"groups", {"all"}}}}, {"body", "On the stream"}});
  ASSERT_EQ(sent.status, 202) << sent.Describe();
  const std::string id = sent.Json().value("id", "");
  json n;
  for (auto until = Clock::now() + 90s; Clock::now() < until;) {
    n = c.Get("/v1/notifications/" + id).Json();
    if (n.value("status", "") == "completed") break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(n.value("status", ""), "completed") << n.dump();
  EXPECT_EQ(n["counts"].value("sent", 0), 2 * kUsers) << n.dump();
  json stats = sim.Stats();
  EXPECT_EQ(stats["apns"]["unique_addresses"].get<int>(), kUsers);
  EXPECT_EQ(stats["fcm"]["unique_addresses"].get<int>(), kUsers);
  EXPECT_EQ(stats["apns"]["duplicates"].get<int>() + stats["fcm"]["duplicates"].get<int>(), 0);
}

TEST(JetStreamSendTest, AJetStreamQueueWithSqliteIsRefusedAtStart) {
  HeraldOptions options;
  options.args = {"--queue", "nats://127.0.0.1:1"};
  HeraldProcess server(options);
  EXPECT_FALSE(server.Start());
  EXPECT_EQ(server.exit_status().value_or(0), 2);
  EXPECT_NE(server.Stderr().find("needs a PostgreSQL store"), std::string::npos) << server.Stderr();
}

TEST(JetStreamSendTest, AnUnreachableClusterIsAClearErrorAtStart) {
  pgtest::PgTestServer* pg = pgtest::PgTestServer::Shared();
  ASSERT_NE(pg, nullptr) << "no PostgreSQL test server";
  HeraldOptions options;
  options.args = {"--store", pg->FreshSchemaUri("jsdown"), "--queue", "nats://127.0.0.1:1"};
  HeraldProcess server(options);
  EXPECT_FALSE(server.Start());
  EXPECT_EQ(server.exit_status().value_or(0), 1);
  EXPECT_NE(server.Stderr().find("Cannot reach any NATS server"), std::string::npos)
      << server.Stderr();
}

}  // namespace
}  // namespace herald::e2e

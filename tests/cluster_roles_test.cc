// Herald's roles in processes of their own (issue 10): `--roles api`, `--roles fanout,dispatch`
// and `--roles reaper` processes share one PostgreSQL store and one JetStream cluster. A send
// accepted by an API process that dies the moment it answered 202 is still fanned out by the
// fan-out processes and delivered to every device once; the consent reaper is one process at a
// time, and when that one is killed another takes its duty over and erases on time. And the
// role combinations that cannot work are refused at start with a sentence saying why.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/api_helpers.h"
#include "support/herald_process.h"
#include "support/sim_process.h"
#include "testing/nats/nats_test_cluster.h"
#include "testing/pg_test_server.h"

namespace herald::e2e {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using SysClock = std::chrono::system_clock;
using namespace std::chrono_literals;

constexpr const char* kAdminToken = "roles-admin-token-0123456789abcdef0123";

// 1 while the process performs the consent reaper's duty, else 0 (-1: no answer).
double ReaperDutyHeld(HeraldProcess& p) {
  HttpClient c = p.Client();
  HttpResponse r = c.Get("/metrics");
  if (r.status != 200) return -1;
  return MetricSum(r.body, "herald_duty_held", "duty=\"consent-reaper\"");
}

class ClusterRolesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    nats_ = natstest::NatsTestCluster::Shared();
    ASSERT_NE(nats_, nullptr) << "no NATS cluster (scripts/install-deps installs nats-server)";
    pg_ = pgtest::PgTestServer::Shared();
    ASSERT_NE(pg_, nullptr) << "no PostgreSQL test server";
    sim_ = std::make_unique<SimProcess>();
    ASSERT_TRUE(sim_->WaitReady());
    store_ = pg_->FreshSchemaUri("roles");
  }

  // A process with `roles`, sharing the store, the stream and the master key of the first.
  HeraldProcess& Add(const std::string& roles) {
    HeraldOptions options;
    options.args = {"--sim", sim_->url(), "--sim-smtp",  sim_->smtp(), "--store",
                    store_,  "--queue",   nats_->Urls(), "--roles",    roles};
    options.ready_timeout = 60s;  // the first start creates the stream's consumers
    options.env = {{"HERALD_ADMIN_TOKEN", kAdminToken}};
    processes_.push_back(std::make_unique<HeraldProcess>(options));
    HeraldProcess& p = *processes_.back();
    if (processes_.size() > 1) p.ShareMasterKey(*processes_.front());
    EXPECT_TRUE(p.Start()) << p.last_error() << p.Stderr();
    return p;
  }

  natstest::NatsTestCluster* nats_ = nullptr;
  pgtest::PgTestServer* pg_ = nullptr;
  std::unique_ptr<SimProcess> sim_;
  std::string store_;
  std::vector<std::unique_ptr<HeraldProcess>> processes_;
};

TEST_F(ClusterRolesTest, ASendWhoseApiProcessDiesAtOnceIsFannedOutAndDeliveredOnce) {
  HeraldProcess& api = Add("api");
  HeraldProcess& api2 = Add("api");
  Add("fanout,dispatch");
  Add("fanout,dispatch");
  ASSERT_FALSE(HasFailure());

  HttpClient admin = api.AdminClient();
  TenantKey tenant = CreateTenantWithKey(admin, "Roles Tenant");
  ASSERT_FALSE(tenant.key.empty());
  HttpClient c = api.Client();
  c.set_bearer(tenant.key);
  c.set_timeout(60s);
  constexpr int kUsers = 1'000;
  HttpResponse imported = c.Import(PushAudience(kUsers, "r"));
  ASSERT_EQ(imported.status, 200) << imported.Describe();
  ASSERT_EQ(imported.Json().value("created", 0), kUsers) << imported.Describe().substr(0, 400);
  HttpResponse sent =
      c.Post("/v1/notifications", {{"to", {{"groups", {"all"}}}}, {"body", "Roles apart"}});
  ASSERT_EQ(sent.status, 202) << sent.Describe();
  api.Kill();  // the accepting process is gone a moment after its 202
  const std::string id = sent.Json().value("id", "");

  HttpClient c2 = api2.Client();
  c2.set_bearer(tenant.key);
  json n;
  for (auto until = Clock::now() + 90s; Clock::now() < until;) {
    n = c2.Get("/v1/notifications/" + id).Json();
    if (n.value("status", "") == "completed") break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(n.value("status", ""), "completed") << n.dump();
  EXPECT_EQ(n["counts"].value("sent", 0), 2 * kUsers) << n.dump();
  json stats = sim_->Stats();
  EXPECT_EQ(stats["apns"]["unique_addresses"].get<int>(), kUsers);
  EXPECT_EQ(stats["fcm"]["unique_addresses"].get<int>(), kUsers);
  EXPECT_EQ(stats["apns"]["duplicates"].get<int>() + stats["fcm"]["duplicates"].get<int>(), 0);
  // The API process without the dispatch role sent nothing, and the processes without the api
  // role answer no API call.
  HttpClient worker = processes_[2]->Client();
  worker.set_bearer(tenant.key);
  EXPECT_EQ(worker.Get("/v1/notifications/" + id).status, 404);
  EXPECT_EQ(worker.Get("/healthz").status, 200);
}

TEST_F(ClusterRolesTest, TheReaperIsOneProcessAndAnotherTakesOverWhenItIsKilled) {
  HeraldProcess& api = Add("api");
  HeraldProcess& reaper_a = Add("reaper");
  HeraldProcess& reaper_b = Add("reaper");
  ASSERT_FALSE(HasFailure());
  // One of the two holds the duty (the other asks again every second).
  double a = -1, b = -1;
  for (auto until = Clock::now() + 10s; Clock::now() < until; std::this_thread::sleep_for(50ms)) {
    a = ReaperDutyHeld(reaper_a);
    b = ReaperDutyHeld(reaper_b);
    if (a + b == 1) break;
  }
  ASSERT_EQ(a + b, 1) << "reaper a: " << a << ", reaper b: " << b;
  HeraldProcess& holder = a == 1 ? reaper_a : reaper_b;
  HeraldProcess& standby = a == 1 ? reaper_b : reaper_a;

  HttpClient admin = api.AdminClient();
  TenantKey tenant = CreateTenantWithKey(admin, "Reaper Tenant");
  HttpClient c = api.Client();
  c.set_bearer(tenant.key);
  const auto until = SysClock::now() + 4s;
  HttpResponse put =
      c.Put("/v1/users/short",
            json{{"name", "Short"}, {"opt_in", true}, {"consent_until", Rfc3339(until)}});
  ASSERT_EQ(put.status, 201) << put.Describe();
  holder.Kill();
  const auto killed = Clock::now();
  for (auto deadline = Clock::now() + 10s; Clock::now() < deadline;
       std::this_thread::sleep_for(50ms)) {
    if (ReaperDutyHeld(standby) == 1) break;
  }
  ASSERT_EQ(ReaperDutyHeld(standby), 1) << standby.Stderr();
  std::printf(
      "[ info ] the consent reaper's duty was taken over %lld ms after its holder died\n",
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count()));
  // The user is erased by the new holder, within a second of the consent's end.
  int status = 200;
  while (SysClock::now() < until + 1s && status != 404) {
    status = c.Get("/v1/users/short").status;
    if (status != 404) std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(status, 404) << "the user outlived its consent by more than 1 s";
}

TEST(ClusterRolesRefusalTest, RolesThatCannotWorkAreRefusedAtStart) {
  {
    HeraldOptions options;
    options.args = {"--roles", "api,sender"};
    HeraldProcess server(options);
    EXPECT_FALSE(server.Start());
    EXPECT_EQ(server.exit_status().value_or(0), 2);
    EXPECT_NE(server.Stderr().find("unknown role \"sender\""), std::string::npos)
        << server.Stderr();
  }
  {
    HeraldOptions options;
    options.args = {"--roles", "api,fanout"};  // the local queue would have nobody to take it
    HeraldProcess server(options);
    EXPECT_FALSE(server.Start());
    EXPECT_EQ(server.exit_status().value_or(0), 2);
    EXPECT_NE(server.Stderr().find("fanout and dispatch run in one process"), std::string::npos)
        << server.Stderr();
  }
  // Two processes dispatching from local queues on one PostgreSQL store would each rebuild its
  // queue from every open delivery: the second is refused.
  pgtest::PgTestServer* pg = pgtest::PgTestServer::Shared();
  ASSERT_NE(pg, nullptr);
  HeraldOptions options;
  options.args = {"--store", pg->FreshSchemaUri("twolocal")};
  HeraldProcess first(options);
  ASSERT_TRUE(first.Start()) << first.Stderr();
  HeraldProcess second(options);
  second.ShareMasterKey(first);
  EXPECT_FALSE(second.Start());
  EXPECT_EQ(second.exit_status().value_or(0), 1);
  EXPECT_NE(second.Stderr().find("another Herald process dispatches from a local queue"),
            std::string::npos)
      << second.Stderr();
  // An API-only process beside it is fine.
  options.args.insert(options.args.end(), {"--roles", "api"});
  HeraldProcess api(options);
  api.ShareMasterKey(first);
  EXPECT_TRUE(api.Start()) << api.Stderr();
}

}  // namespace
}  // namespace herald::e2e

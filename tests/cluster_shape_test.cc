// The shape `make cluster` starts (testing/cluster/cluster_shape.h): every part comes up, the
// API answers through haproxy, a send through it reaches every device once, and when one API
// process is killed the load balancer moves to the other without a client seeing anything but
// 2xx or 503 with Retry-After.
#include "testing/cluster/cluster_shape.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "support/api_helpers.h"
#include "support/herald_process.h"

namespace herald::e2e {
namespace {

using clustertest::ClusterShape;
using clustertest::ClusterShapeOptions;
using clustertest::Role;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// 2xx, or 503 with Retry-After: what a client of the cluster may see while a part fails.
::testing::AssertionResult Acceptable(const HttpResponse& r) {
  if (r.status >= 200 && r.status < 300) return ::testing::AssertionSuccess();
  if (r.status == 503 && !r.Header("Retry-After").empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << r.Describe();
}

TEST(ClusterShapeTest, ASendThroughTheLoadBalancerSurvivesTheLossOfAnApiProcess) {
  ClusterShapeOptions options;
  options.herald = HeraldBinary();
  ClusterShape shape(options);
  ASSERT_TRUE(shape.Start()) << shape.last_error();
  EXPECT_EQ(shape.count(Role::kApi), 2);
  EXPECT_EQ(shape.count(Role::kWorker), 2);
  EXPECT_EQ(shape.count(Role::kReaper), 1);

  HttpClient admin("127.0.0.1", shape.port());
  admin.set_bearer(shape.admin_token());
  TenantKey tenant = CreateTenantWithKey(admin, "Shape Tenant");
  ASSERT_FALSE(tenant.key.empty());
  HttpClient c("127.0.0.1", shape.port());
  c.set_bearer(tenant.key);
  c.set_timeout(60s);
  constexpr int kUsers = 300;
  HttpResponse imported = c.Import(PushAudience(kUsers, "s"));
  ASSERT_EQ(imported.status, 200) << imported.Describe();

  ASSERT_TRUE(shape.Kill(Role::kApi, 0));
  // The client goes on through haproxy: a refused connection is retried on the other process,
  // and the health check takes the dead one out within a second.
  for (int i = 0; i < 50; ++i) {
    EXPECT_TRUE(Acceptable(c.Get("/v1/users/s" + std::to_string(i)))) << "request " << i;
  }
  HttpResponse sent =
      c.Request("POST", "/v1/notifications",
                json{{"to", {{"groups", {"all"}}}}, {"body", "Through haproxy"}}.dump(),
                {{"Idempotency-Key", "shape-send-1"}});
  ASSERT_EQ(sent.status, 202) << sent.Describe();
  const std::string id = sent.Json().value("id", "");
  json n;
  for (auto until = Clock::now() + 90s; Clock::now() < until;) {
    HttpResponse r = c.Get("/v1/notifications/" + id);
    EXPECT_TRUE(Acceptable(r));
    if (r.status == 200) n = r.Json();
    if (n.value("status", "") == "completed") break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(n.value("status", ""), "completed") << n.dump();
  EXPECT_EQ(n["counts"].value("sent", 0), 2 * kUsers) << n.dump();
  HttpClient sim("127.0.0.1", shape.sim_port());
  json stats = sim.Get("/sim/stats").Json()["providers"];
  EXPECT_EQ(stats["apns"]["unique_addresses"].get<int>(), kUsers);
  EXPECT_EQ(stats["fcm"]["unique_addresses"].get<int>(), kUsers);
  EXPECT_EQ(stats["apns"]["duplicates"].get<int>() + stats["fcm"]["duplicates"].get<int>(), 0);

  // The killed process comes back on its port and the balancer uses it again.
  ASSERT_TRUE(shape.Restart(Role::kApi, 0)) << shape.last_error();
  HttpClient direct("127.0.0.1", shape.process_port(Role::kApi, 0));
  direct.set_bearer(tenant.key);
  EXPECT_EQ(direct.Get("/v1/notifications/" + id).status, 200);
}

}  // namespace
}  // namespace herald::e2e

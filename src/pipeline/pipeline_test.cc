// The send pipeline end to end inside one process: a real SQLite store, the local queue, the
// fan-out, the dispatcher and the real provider clients delivering to an in-process provider
// simulator over loopback.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common/timer_queue.h"
#include "crypto/crypto.h"
#include "net/http_client.h"
#include "observe/metrics.h"
#include "pipeline/dispatcher.h"
#include "pipeline/fanout.h"
#include "pipeline/provider_directory.h"
#include "providers/sim_defaults.h"
#include "queue/queue.h"
#include "sim/simulator.h"
#include "store/sqlite/sqlite_store.h"

namespace herald {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string Token(int i) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016x", i);
  return std::string(48, 'a') + buf;  // 64 hex chars
}

// A queue that checks, at every Ack, that the acknowledged delivery's outcome is already in the
// store (read through the store's own read path), and counts the acknowledgements that were not.
class AckCheckingQueue final : public Queue {
 public:
  AckCheckingQueue(Queue* inner, Store* store, std::string tenant, std::string notification)
      : inner_(inner),
        store_(store),
        tenant_(std::move(tenant)),
        notification_(std::move(notification)) {}
  QueueOrder order() const override { return inner_->order(); }
  std::chrono::milliseconds lease_time() const override { return inner_->lease_time(); }
  bool outlives_process() const override { return inner_->outlives_process(); }
  Status Push(std::vector<DeliveryJob> jobs) override { return inner_->Push(std::move(jobs)); }
  Result<std::vector<Lease>> Take(size_t max, std::chrono::milliseconds wait) override {
    return inner_->Take(max, wait);
  }
  Status Ack(std::span<const Lease> leases) override {
    for (const Lease& lease : leases) {
      Result<Page<Delivery>> page = store_->ListDeliveries(
          tenant_, notification_, DeliveryStatus::kSent, PageRequest{"", 1000});
      bool stored = false;
      if (page.ok()) {
        for (const Delivery& d : page->items) stored |= d.id == DeliveryIdOf(lease.job.delivery);
      }
      (stored ? acked_stored_ : acked_unstored_).fetch_add(1);
    }
    return inner_->Ack(leases);
  }
  Status Retry(const Lease& lease, UnixMillis not_before) override {
    return inner_->Retry(lease, not_before);
  }
  Status Extend(std::span<const Lease> leases) override { return inner_->Extend(leases); }
  QueueStats Stats() const override { return inner_->Stats(); }
  void SetLimits(QueueOptions options) override { inner_->SetLimits(options); }
  void Close() override { inner_->Close(); }

  std::atomic<int> acked_stored_{0};
  std::atomic<int> acked_unstored_{0};

 private:
  Queue* inner_;
  Store* store_;
  std::string tenant_;
  std::string notification_;
};

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(crypto::InitCrypto());
    dir_ = std::filesystem::temp_directory_path() / ("herald_pipeline_" + crypto::RandomId("", 10));
    std::filesystem::create_directories(dir_);
    SqliteStoreOptions so;
    so.path = (dir_ / "herald.db").string();
    so.master_key = crypto::RandomKey();
    auto store = OpenSqliteStore(std::move(so));
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);

    sim::SimulatorOptions sim_options;
    sim_options.listen = "127.0.0.1:0";
    sim_options.smtp_listen = "127.0.0.1:0";
    sim_ = sim::MakeSimulator(sim_options);
    ASSERT_TRUE(sim_->Start().ok());
    sim_url_ = "http://127.0.0.1:" + std::to_string(sim_->port());
    sim_smtp_ = "127.0.0.1:" + std::to_string(sim_->smtp_port());
    client_ = net::MakeHttpClient();

    DirectoryOptions d;
    d.router.max_rounds = 1;
    d.fallback = [this](Channel c) {
      return providers::SimProviderConfigs(c, sim_url_, sim_smtp_);
    };
    directory_ = std::make_unique<ProviderDirectory>(store_.get(), client_.get(), &timers_, d);
    queue_ = MakeLocalQueue({});

    Tenant t;
    t.name = "Acme";
    t.delivery_deadline_minutes = 10;
    auto tenant = store_->CreateTenant(t);
    ASSERT_TRUE(tenant.ok());
    tenant_ = *tenant;
  }

  void TearDown() override {
    if (dispatcher_) dispatcher_->Stop(2s);
    if (fanout_) fanout_->Stop();
    dispatcher_.reset();
    fanout_.reset();
    queue_->Close();
    client_.reset();
    sim_->Stop();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void StartPipeline(DispatcherOptions options = {}) {
    options.retry.base_ms = 20;
    options.retry.cap_ms = 100;
    fanout_ = std::make_unique<Fanout>(store_.get(), queue_.get(), &metrics_);
    fanout_->Start();
    dispatcher_ = std::make_unique<Dispatcher>(store_.get(), queue_.get(), directory_.get(),
                                               &metrics_, options);
    dispatcher_->Start();
  }

  void PutUser(const std::string& id, std::vector<Device> devices, bool opt_in = true,
               std::vector<std::string> groups = {"g"}) {
    User u;
    u.tenant_id = tenant_.id;
    u.external_id = id;
    u.name = "Someone";
    u.opt_in = opt_in;
    u.consent_from = NowMillis() - 1000;
    u.consent_until = NowMillis() + 86'400'000;
    u.devices = std::move(devices);
    u.groups = std::move(groups);
    auto r = store_->PutUser(u);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }

  std::string Send(std::vector<std::string> groups, std::vector<std::string> users = {},
                   UnixMillis deadline_in = 600'000) {
    Notification n;
    n.tenant_id = tenant_.id;
    n.title = "Hello";
    n.body = "World";
    n.to_groups = std::move(groups);
    n.to_users = std::move(users);
    n.accepted_at = NowMillis();
    n.deadline = n.accepted_at + deadline_in;
    n.request_hash = "h";
    auto created = store_->CreateNotification(n);
    EXPECT_TRUE(created.ok());
    if (fanout_) fanout_->Submit(created->notification.id);
    return created->notification.id;
  }

  // Waits until the notification is completed (or the time is up) and returns it.
  Notification WaitCompleted(const std::string& id, std::chrono::milliseconds limit = 20s) {
    auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
      (void)store_->Flush();
      auto n = store_->GetNotification(tenant_.id, id);
      EXPECT_TRUE(n.ok());
      if (n->status == NotificationStatus::kCompleted || std::chrono::steady_clock::now() > until) {
        return *n;
      }
      std::this_thread::sleep_for(20ms);
    }
  }

  json SimGet(const std::string& path) {
    net::HttpRequest r;
    r.method = "GET";
    r.url = sim_url_ + path;
    net::HttpResponse resp = client_->Send(r).get();
    return json::parse(resp.body, nullptr, false);
  }
  void SimFault(const std::string& provider, const std::string& body) {
    net::HttpRequest r;
    r.method = "PUT";
    r.url = sim_url_ + "/sim/faults/" + provider;
    r.body = body;
    r.headers = {{"content-type", "application/json"}};
    ASSERT_EQ(client_->Send(r).get().status, 200);
  }

  std::vector<DeliveryEvent> Events(const std::string& user) {
    auto page = store_->ListUserEvents(tenant_.id, user, PageRequest{"", 1000});
    EXPECT_TRUE(page.ok());
    return page.ok() ? page->items : std::vector<DeliveryEvent>{};
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<sim::Simulator> sim_;
  std::string sim_url_, sim_smtp_;
  std::unique_ptr<net::HttpClient> client_;
  TimerQueue timers_;
  observe::Registry metrics_;
  std::unique_ptr<ProviderDirectory> directory_;
  std::unique_ptr<Queue> queue_;
  std::unique_ptr<Fanout> fanout_;
  std::unique_ptr<Dispatcher> dispatcher_;
  Tenant tenant_;
};

TEST_F(PipelineTest, ADeepQueueKeepsAQuarterPercentOfItselfInFlightWhateverTheLatency) {
  DispatcherOptions options;
  options.max_in_flight = 500;
  Dispatcher dispatcher(store_.get(), queue_.get(), directory_.get(), &metrics_, options);
  const size_t adaptive = dispatcher.in_flight_limit();  // the adaptive limit's start: 64
  EXPECT_EQ(adaptive, 64u);
  int64_t next = 1;
  const auto push = [&](size_t n) {
    std::vector<DeliveryJob> jobs(n);
    for (DeliveryJob& job : jobs) {
      job.delivery = next++;
      job.tenant = 1;
      job.deadline = NowMillis() + 600'000;
    }
    ASSERT_TRUE(queue_->Push(std::move(jobs)).ok());
  };
  push(10'000);
  EXPECT_EQ(dispatcher.in_flight_limit(), 64u) << "a shallow queue leaves the adaptive limit";
  push(70'000);
  EXPECT_EQ(dispatcher.in_flight_limit(), 200u) << "80,000 queued / 400";
  push(80'000);
  EXPECT_EQ(dispatcher.in_flight_limit(), 400u);
  push(80'000);
  EXPECT_EQ(dispatcher.in_flight_limit(), 500u) << "never above max_in_flight";
}

// A job leaves the queue only once its outcome is committed: a remote queue acknowledged
// earlier would lose the outcome of a process that dies in between.
TEST_F(PipelineTest, JobsAreAcknowledgedOnlyOnceTheirOutcomeIsStored) {
  constexpr int kUsers = 40;
  for (int i = 0; i < kUsers; ++i) {
    PutUser("a" + std::to_string(i),
            {Device{"", Channel::kEmail, "a" + std::to_string(i) + "@example.com"}});
  }
  std::string id = Send({"g"});  // no fan-out yet: its start resumes the send
  AckCheckingQueue checking(queue_.get(), store_.get(), tenant_.id, id);
  fanout_ = std::make_unique<Fanout>(store_.get(), &checking, &metrics_);
  fanout_->Start();
  dispatcher_ = std::make_unique<Dispatcher>(store_.get(), &checking, directory_.get(), &metrics_);
  dispatcher_->Start();
  Notification n = WaitCompleted(id);
  ASSERT_EQ(n.counts[static_cast<size_t>(DeliveryStatus::kSent)], kUsers);
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (checking.acked_stored_ + checking.acked_unstored_ < kUsers &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(10ms);
  }
  dispatcher_->Stop(2s);
  dispatcher_.reset();
  EXPECT_EQ(checking.acked_stored_.load(), kUsers);
  EXPECT_EQ(checking.acked_unstored_.load(), 0);
  EXPECT_EQ(queue_->Stats().in_flight, 0u);
}

TEST_F(PipelineTest, GroupSendReachesEveryDeviceOnceAndRecordsEveryStage) {
  constexpr int kUsers = 300;
  for (int i = 0; i < kUsers; ++i) {
    PutUser("u" + std::to_string(i),
            {Device{"", Channel::kIos, Token(i)},
             Device{"", Channel::kEmail, "user" + std::to_string(i) + "@example.com"}},
            true, i % 2 == 0 ? std::vector<std::string>{"g", "h"} : std::vector<std::string>{"g"});
  }
  StartPipeline();
  // Users in both groups and named directly are still reached once per device.
  std::string id = Send({"g", "h"}, {"u0", "u1", "nobody"});
  Notification n = WaitCompleted(id);
  ASSERT_EQ(n.status, NotificationStatus::kCompleted);
  EXPECT_EQ(n.deliveries, 2 * kUsers);
  EXPECT_EQ(n.counts[static_cast<size_t>(DeliveryStatus::kSent)], 2 * kUsers);
  json stats = SimGet("/sim/stats");
  EXPECT_EQ(stats["providers"]["apns"]["accepted"], kUsers);
  EXPECT_EQ(stats["providers"]["apns"]["unique_addresses"], kUsers);
  EXPECT_EQ(stats["providers"]["apns"]["duplicates"], 0);
  EXPECT_EQ(stats["providers"]["smtp"]["accepted"], kUsers);
  json msgs = SimGet("/sim/messages?provider=apns&address=" + Token(7));
  ASSERT_EQ(msgs["messages"].size(), 1u);
  EXPECT_EQ(msgs["messages"][0]["title"], "Hello");
  EXPECT_EQ(msgs["messages"][0]["body"], "World");

  std::vector<DeliveryEvent> events = Events("u7");
  ASSERT_EQ(events.size(), 6u);  // two devices × queued, dispatched, sent (newest first)
  int sent = 0;
  for (const DeliveryEvent& e : events) {
    EXPECT_EQ(e.notification_id, id);
    if (e.stage == DeliveryStatus::kSent) {
      ++sent;
      EXPECT_FALSE(e.provider.empty());
    }
  }
  EXPECT_EQ(sent, 2);
  EXPECT_EQ(events.back().stage, DeliveryStatus::kQueued);
}

TEST_F(PipelineTest, ConsentAndDevicesAreCheckedAgainAtTheMomentOfSending) {
  PutUser("stays", {Device{"", Channel::kIos, Token(1)}});
  PutUser("opts-out", {Device{"", Channel::kIos, Token(2)}});
  PutUser("deleted", {Device{"", Channel::kIos, Token(3)}});
  std::string id = Send({"g"});
  // The deliveries exist; then the users change before anything is dispatched.
  for (;;) {
    auto page = store_->FanOutPage(id, 100);
    ASSERT_TRUE(page.ok());
    ASSERT_TRUE(queue_->Push(page->jobs).ok());
    if (page->done) break;
  }
  PutUser("opts-out", {Device{"", Channel::kIos, Token(2)}}, false);
  ASSERT_TRUE(store_->DeleteUser(tenant_.id, "deleted").ok());
  StartPipeline();
  Notification n = WaitCompleted(id);
  ASSERT_EQ(n.status, NotificationStatus::kCompleted);
  EXPECT_EQ(n.counts[static_cast<size_t>(DeliveryStatus::kSent)], 1);
  EXPECT_EQ(n.counts[static_cast<size_t>(DeliveryStatus::kSuppressed)], 2);
  auto suppressed =
      store_->ListDeliveries(tenant_.id, id, DeliveryStatus::kSuppressed, PageRequest{});
  ASSERT_TRUE(suppressed.ok());
  std::vector<std::string> reasons;
  for (const Delivery& d : suppressed->items) reasons.push_back(d.external_id + ":" + d.reason);
  std::sort(reasons.begin(), reasons.end());
  EXPECT_EQ(reasons, (std::vector<std::string>{"deleted:user_gone", "opts-out:opted_out"}));
  EXPECT_EQ(SimGet("/sim/stats")["providers"]["apns"]["accepted"], 1);
}

TEST_F(PipelineTest, InvalidAddressFailsTheDeliveryAndDisablesTheDevice) {
  PutUser("gone", {Device{"", Channel::kIos, Token(9)}});
  SimFault("apns", R"({"invalid_addresses":[")" + Token(9) + R"("]})");
  StartPipeline();
  Notification n = WaitCompleted(Send({"g"}));
  EXPECT_EQ(n.counts[static_cast<size_t>(DeliveryStatus::kFailed)], 1);
  auto user = store_->GetUser(tenant_.id, "gone");
  ASSERT_TRUE(user.ok());
  ASSERT_EQ(user->devices.size(), 1u);
  EXPECT_TRUE(user->devices[0].disabled);
  // A later send leaves the disabled device out.
  Notification again = WaitCompleted(Send({"g"}));
  EXPECT_EQ(again.deliveries, 0);
}

TEST_F(PipelineTest, ARefusalThatEchoesTheAddressIsRecordedWithoutIt) {
  // SMTP servers answer "550 5.1.1 <ann@example.com>: ... User unknown"; events hold no PII.
  PutUser("mail", {Device{"", Channel::kEmail, "ann.lee@example.com"}});
  SimFault("smtp", R"({"invalid_addresses":["ann.lee@example.com"]})");
  StartPipeline();
  std::string id = Send({"g"});
  Notification n = WaitCompleted(id);
  EXPECT_EQ(n.counts[static_cast<size_t>(DeliveryStatus::kFailed)], 1);
  auto failed = store_->ListDeliveries(tenant_.id, id, DeliveryStatus::kFailed, PageRequest{});
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->items.size(), 1u);
  EXPECT_EQ(failed->items[0].provider, "smtp");
  EXPECT_NE(failed->items[0].reason.find("550 5.1.1"), std::string::npos)
      << failed->items[0].reason;
  for (const DeliveryEvent& e : Events("mail")) {
    EXPECT_EQ(e.reason.find("ann.lee"), std::string::npos) << e.reason;
    EXPECT_EQ(e.reason.find('@'), std::string::npos) << e.reason;
  }
}

TEST_F(PipelineTest, TransientErrorsAreRetriedUntilTheProviderTakesTheMessage) {
  PutUser("r", {Device{"", Channel::kIos, Token(4)}});
  SimFault("apns", R"({"error_rate":1.0})");
  StartPipeline();
  std::string id = Send({"g"});
  std::this_thread::sleep_for(300ms);  // a few rounds fail
  net::HttpRequest clear;
  clear.method = "DELETE";
  clear.url = sim_url_ + "/sim/faults";
  ASSERT_EQ(client_->Send(clear).get().status / 100, 2);
  Notification n = WaitCompleted(id);
  EXPECT_EQ(n.counts[static_cast<size_t>(DeliveryStatus::kSent)], 1);
  int retrying = 0;
  for (const DeliveryEvent& e : Events("r")) retrying += e.stage == DeliveryStatus::kRetrying;
  EXPECT_GE(retrying, 1);
}

TEST_F(PipelineTest, AnSmsProviderOutageFailsOverToTheSecondProviderAndRecordsTheHop) {
  PutUser("sms", {Device{"", Channel::kSms, "+821022223333"}});
  SimFault("twilio", R"({"outage":true})");
  StartPipeline();
  std::string id = Send({"g"});
  Notification n = WaitCompleted(id);
  EXPECT_EQ(n.counts[static_cast<size_t>(DeliveryStatus::kSent)], 1);
  auto sent = store_->ListDeliveries(tenant_.id, id, DeliveryStatus::kSent, PageRequest{});
  ASSERT_TRUE(sent.ok());
  ASSERT_EQ(sent->items.size(), 1u);
  EXPECT_EQ(sent->items[0].provider, "vonage");
  bool hop = false;
  for (const DeliveryEvent& e : Events("sms")) {
    if (e.stage == DeliveryStatus::kRetrying && e.provider == "twilio" &&
        e.reason.rfind("failover after ", 0) == 0) {
      hop = true;
    }
  }
  EXPECT_TRUE(hop);
  EXPECT_EQ(SimGet("/sim/stats")["providers"]["vonage"]["accepted"], 1);
}

TEST_F(PipelineTest, ADeliveryThatCannotBeSentBeforeItsDeadlineExpires) {
  PutUser("late", {Device{"", Channel::kIos, Token(5)}});
  SimFault("apns", R"({"outage":true})");
  StartPipeline();
  Notification n = WaitCompleted(Send({"g"}, {}, 400));
  EXPECT_EQ(n.status, NotificationStatus::kCompleted);
  EXPECT_EQ(n.counts[static_cast<size_t>(DeliveryStatus::kExpired)], 1);
}

TEST_F(PipelineTest, CancelStopsWhatHasNotBeenSent) {
  for (int i = 0; i < 50; ++i)
    PutUser("c" + std::to_string(i), {Device{"", Channel::kIos, Token(i)}});
  std::string id = Send({"g"});
  for (;;) {
    auto page = store_->FanOutPage(id, 20);
    ASSERT_TRUE(page.ok());
    ASSERT_TRUE(queue_->Push(page->jobs).ok());
    if (page->done) break;
  }
  auto cancelled = store_->CancelNotification(tenant_.id, id);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(*cancelled, 50);
  StartPipeline();
  std::this_thread::sleep_for(300ms);
  auto n = store_->GetNotification(tenant_.id, id);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->status, NotificationStatus::kCancelled);
  EXPECT_EQ(n->counts[static_cast<size_t>(DeliveryStatus::kCancelled)], 50);
  EXPECT_EQ(SimGet("/sim/stats")["providers"]["apns"]["accepted"], 0);
}

TEST_F(PipelineTest, UnfinishedWorkIsFoundAgainAfterARestart) {
  for (int i = 0; i < 40; ++i)
    PutUser("s" + std::to_string(i), {Device{"", Channel::kIos, Token(i)}});
  std::string id = Send({"g"});
  auto page = store_->FanOutPage(id, 10);  // a quarter fanned out, then "the process dies"
  ASSERT_TRUE(page.ok());
  ASSERT_FALSE(page->done);
  auto fanouts = store_->ListUnfinishedFanouts();
  ASSERT_TRUE(fanouts.ok());
  EXPECT_EQ(*fanouts, std::vector<std::string>{id});
  Store* store = store_.get();
  auto requeued = RebuildLocalQueue(*queue_, [store](int64_t after, int limit) {
    return store->ListUnfinishedDeliveries(after, limit);
  });
  ASSERT_TRUE(requeued.ok());
  EXPECT_EQ(*requeued, 10);
  StartPipeline();  // resumes the fan-out from the stored cursor
  Notification n = WaitCompleted(id);
  EXPECT_EQ(n.status, NotificationStatus::kCompleted);
  EXPECT_EQ(n.counts[static_cast<size_t>(DeliveryStatus::kSent)], 40);
  json stats = SimGet("/sim/stats");
  EXPECT_EQ(stats["providers"]["apns"]["accepted"], 40);
  EXPECT_EQ(stats["providers"]["apns"]["duplicates"], 0);
}

}  // namespace
}  // namespace herald

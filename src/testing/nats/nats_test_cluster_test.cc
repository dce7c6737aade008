// The NATS test cluster itself: three JetStream nodes that answer, survive the loss of one, and
// take a killed node back.
#include "testing/nats/nats_test_cluster.h"

#include <gtest/gtest.h>
#include <nats/nats.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

namespace herald::natstest {
namespace {

// A JetStream context on a connection to `url`, destroyed with it.
struct Js {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  explicit Js(const std::string& url) {
    if (natsConnection_ConnectTo(&nc, url.c_str()) != NATS_OK) return;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 2000;
    if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK) js = nullptr;
  }
  ~Js() {
    if (js != nullptr) jsCtx_Destroy(js);
    if (nc != nullptr) natsConnection_Destroy(nc);
  }
};

bool CreateStream(const std::string& url, const std::string& name) {
  Js c(url);
  if (c.js == nullptr) return false;
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name.c_str();
  const std::string subject = name + ".>";
  const char* subjects[] = {subject.c_str()};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Replicas = 3;
  cfg.Storage = js_FileStorage;
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const bool ok = js_AddStream(&si, c.js, &cfg, nullptr, &jerr) == NATS_OK;
  if (si != nullptr) jsStreamInfo_Destroy(si);
  return ok;
}

// Publishes to the stream, trying again for up to 15 s (a leader election after a kill).
bool PublishWithin15s(const std::string& url, const std::string& subject) {
  Js c(url);
  if (c.js == nullptr) return false;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < until) {
    jsPubAck* ack = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (js_Publish(&ack, c.js, subject.c_str(), "x", 1, nullptr, &jerr) == NATS_OK) {
      jsPubAck_Destroy(ack);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

TEST(NatsTestClusterTest, ThreeNodesServeJetStreamAndSurviveTheLossOfOne) {
  NatsTestCluster cluster(3);
  ASSERT_TRUE(cluster.Start()) << cluster.last_error();
  EXPECT_EQ(cluster.nodes(), 3);
  EXPECT_NE(cluster.Urls().find(','), std::string::npos);
  ASSERT_TRUE(CreateStream(cluster.Url(0), "T1"));
  EXPECT_TRUE(PublishWithin15s(cluster.Url(0), "T1.a"));
  const pid_t killed = cluster.pid(1);
  ASSERT_TRUE(cluster.Kill(1));
  EXPECT_NE(::kill(killed, 0), 0) << "the node's process is gone";
  EXPECT_TRUE(PublishWithin15s(cluster.Url(2), "T1.b")) << "two of three nodes keep a quorum";
  ASSERT_TRUE(cluster.Restart(1)) << cluster.last_error();
  EXPECT_TRUE(PublishWithin15s(cluster.Url(1), "T1.c"));
}

}  // namespace
}  // namespace herald::natstest

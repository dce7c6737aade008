// `herald sim` as a child process of an end-to-end test, on free loopback ports; SIGTERM and
// reaped on destruction (only the process it started).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "support/http_client.h"

namespace herald::e2e {

class SimProcess {
 public:
  SimProcess();
  ~SimProcess();
  SimProcess(const SimProcess&) = delete;
  SimProcess& operator=(const SimProcess&) = delete;

  // True once /healthz answers (within 10 s).
  bool WaitReady();
  HttpClient Client() const { return HttpClient("127.0.0.1", port_); }
  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string smtp() const { return "127.0.0.1:" + std::to_string(smtp_port_); }
  // /sim/stats' "providers" object.
  nlohmann::json Stats();

 private:
  uint16_t port_;
  uint16_t smtp_port_;
  pid_t pid_ = -1;
};

}  // namespace herald::e2e

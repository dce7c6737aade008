#include "support/sim_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "support/herald_process.h"

namespace herald::e2e {

using namespace std::chrono_literals;

SimProcess::SimProcess() : port_(PickFreePort()), smtp_port_(PickFreePort()) {
  const std::string bin = HeraldBinary();
  const std::string listen = "127.0.0.1:" + std::to_string(port_);
  const std::string smtp = "127.0.0.1:" + std::to_string(smtp_port_);
  pid_ = fork();
  if (pid_ == 0) {
    std::freopen("/dev/null", "w", stderr);
    execl(bin.c_str(), bin.c_str(), "sim", "--listen", listen.c_str(), "--smtp-listen",
          smtp.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
}

SimProcess::~SimProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
}

bool SimProcess::WaitReady() {
  for (auto until = std::chrono::steady_clock::now() + 10s;
       std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(50ms)) {
    if (Client().Get("/healthz").status == 200) return true;
  }
  return false;
}

nlohmann::json SimProcess::Stats() { return Client().Get("/sim/stats").Json()["providers"]; }

}  // namespace herald::e2e

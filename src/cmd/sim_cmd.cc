#include "cmd/sim_cmd.h"

#include <signal.h>

#include <cstdio>

#include "cmd/stop_signals.h"
#include "sim/demo_credentials.h"
#include "sim/simulator.h"

namespace herald::cmd {

int RunSim(const SimOptions& options) {
  const sigset_t stop_signals = BlockStopSignals();  // before any thread starts

  sim::SimulatorOptions so;
  so.listen = options.listen;
  so.smtp_listen = options.smtp_listen;
  so.tls_listen = options.tls_listen;
  so.tls_cert_file = options.tls_cert;
  so.tls_key_file = options.tls_key;
  so.smtp_starttls = options.smtp_starttls;
  so.threads = options.threads;
  so.trust_demo_apns_key = options.trust_demo_apns_key;
  auto simulator = sim::MakeSimulator(so);
  if (Status s = simulator->Start(); !s.ok()) {
    std::fprintf(stderr, "herald sim: %s\n", s.error().message.c_str());
    return 1;
  }
  auto host = [](const std::string& hostport) { return hostport.substr(0, hostport.rfind(':')); };
  std::printf("herald sim: HTTP (h2c + HTTP/1.1) on http://%s:%u\n", host(options.listen).c_str(),
              simulator->port());
  if (!options.tls_listen.empty()) {
    std::printf("herald sim: HTTPS (h2 + HTTP/1.1) on https://%s:%u\n",
                host(options.tls_listen).c_str(), simulator->tls_port());
  }
  if (!options.smtp_listen.empty()) {
    std::printf("herald sim: SMTP on %s:%u\n", host(options.smtp_listen).c_str(),
                simulator->smtp_port());
  }
  if (options.trust_demo_apns_key) {
    std::printf("herald sim: trusting the published demo APNs key id %.*s\n",
                static_cast<int>(sim::kDemoApnsKeyId.size()), sim::kDemoApnsKeyId.data());
  }
  std::printf("herald sim: stop with Ctrl-C (SIGINT) or SIGTERM\n");
  std::fflush(stdout);

  const int sig = WaitForStopSignal(stop_signals);
  std::printf("herald sim: %s received, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  std::fflush(stdout);
  simulator->Stop();
  return 0;
}

}  // namespace herald::cmd

// `herald sim`: the provider simulator (sim/simulator.h) as a process of its own.
#pragma once

#include <string>

namespace herald::cmd {

struct SimOptions {
  std::string listen = "127.0.0.1:9090";  // HTTP/1.1 + h2c: APNs, FCM, SendGrid, Twilio, Vonage
  std::string smtp_listen = "127.0.0.1:2525";  // SMTP submission ("" = none)
  std::string tls_listen;                      // HTTPS (ALPN h2 / http/1.1), "" = none
  std::string tls_cert;                        // PEM; self-signed when empty
  std::string tls_key;
  bool smtp_starttls = false;
  int threads = 2;
  bool trust_demo_apns_key = true;
};

// Runs until SIGTERM or SIGINT, then stops the simulator; returns the process exit code.
int RunSim(const SimOptions& options);

}  // namespace herald::cmd

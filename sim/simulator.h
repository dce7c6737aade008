// The provider simulator (`herald sim`): speaks the wire protocols of APNs (HTTP/2, h2c prior
// knowledge and TLS with ALPN), FCM HTTP v1 with its OAuth2 token endpoint, SendGrid v3, Twilio
// Programmable Messaging and the Vonage SMS API (HTTP/1.1 and HTTP/2 on one port), and SMTP
// submission (its own port) — on loopback, for tests, benchmarks and the demo. It records every
// accepted message, injects faults on demand, and exposes its record and controls under /sim/.
//
// HTTP routes (the same on HTTP/1.1, h2c with prior knowledge, and TLS with ALPN h2/http1.1):
//   POST /3/device/{token}                       APNs (ES256 provider token, see jwt_verify.h)
//   POST /token                                  FCM's OAuth2 token endpoint (jwt-bearer grant)
//   POST /v1/projects/{p}/messages:send          FCM HTTP v1
//   POST /v3/mail/send                           SendGrid v3
//   POST /2010-04-01/Accounts/{sid}/Messages.json Twilio
//   POST /sms/json                               Vonage
//   GET|DELETE /sim/messages?provider=&address=&limit=   the record (newest last; DELETE also
//                                                zeroes the stats)
//   GET /sim/stats                               per provider: accepted, refused,
//                                                unique_addresses, duplicates
//   GET|DELETE /sim/faults, GET|PUT|DELETE /sim/faults/{provider}   fault injection (faults.h)
//   PUT|DELETE /sim/apns/keys/{kid}              {"public_key_pem":...}: verify that kid's JWTs
//   GET /healthz
// SMTP on its own port: see smtp_server.h.
//
// Thread-safety: Start/Stop from one thread; everything else is internal. Start once; Stop
// (also run by the destructor) closes every connection and joins the IO threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"

namespace herald::sim {

struct SimulatorOptions {
  std::string listen = "127.0.0.1:9090";       // HTTP/1.1 + h2c (port 0 picks one)
  std::string smtp_listen = "127.0.0.1:2525";  // SMTP (port 0 picks one; "" = no SMTP)
  std::string tls_listen;     // optional HTTPS (h2 via ALPN + HTTP/1.1) listener, "" = none
  std::string tls_cert_file;  // PEM; when empty and tls_listen set, a self-signed cert is made
  std::string tls_key_file;
  bool smtp_starttls = false;  // offer STARTTLS on SMTP (always offered when TLS is configured)
  int threads = 1;             // IO threads running the one io_context
  size_t max_recorded = 5'000'000;  // messages kept for /sim/messages (stats count all)
  // Verify APNs tokens of the published demo key id (sim/demo_credentials.h) from the start,
  // as if its public key had been PUT to /sim/apns/keys/{kid}.
  bool trust_demo_apns_key = true;
};

class Simulator {
 public:
  virtual ~Simulator() = default;
  // Binds every listener (port 0 picks one) and starts the IO threads. Fails with
  // ErrorKind::kUnavailable when a port cannot be bound, kInternal when TLS cannot be set up.
  virtual Status Start() = 0;
  virtual void Stop() = 0;
  virtual uint16_t port() const = 0;
  virtual uint16_t smtp_port() const = 0;
  virtual uint16_t tls_port() const = 0;
  // PEM of the certificate the TLS listener serves (for clients' ca_file).
  virtual std::string tls_cert_pem() const = 0;
};

std::unique_ptr<Simulator> MakeSimulator(SimulatorOptions options);

}  // namespace herald::sim

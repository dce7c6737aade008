// The Provider interface: one third-party delivery service (APNs, FCM, SMTP, SendGrid, Twilio,
// Vonage) speaking its real wire protocol through net::HttpClient. One folder per provider
// (src/providers/<name>/), each registering a factory by name (Envoy-style).
//
// Thread-safety: Send may be called from any thread; `done` is called exactly once per call,
// from the HTTP client's event-loop thread (quick, non-blocking), with one result per message,
// in order.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "model/model.h"
#include "net/http_client.h"

namespace herald::providers {

// How one message ended at one provider.
enum class Outcome {
  kAccepted,        // taken; provider_message_id set
  kRetry,           // transient (5xx, timeout, connection): try again, maybe elsewhere
  kThrottled,       // 429 / quota: slow down, try later or elsewhere
  kInvalidAddress,  // the device is gone or wrong: disable it, do not retry
  kRejected,        // permanent refusal of this message (payload, config): do not retry
  kAuthError,       // our credentials are wrong: alert, try another provider
};
std::string_view ToString(Outcome o);

struct Message {
  std::string delivery_id;  // carried as the provider's request id where the protocol allows
  std::string tenant_id;
  Channel channel = Channel::kEmail;
  std::string address;  // plaintext, normalised (E.164, lower-case hex token, ...)
  std::string title;
  std::string body;
  UnixMillis deadline = 0;  // becomes apns-expiration, FCM ttl, ...
  int priority = 10;        // 10 = immediate, 5 = normal (APNs semantics)
};

struct SendResult {
  Outcome outcome = Outcome::kRetry;
  std::string provider;             // which provider answered
  std::string provider_message_id;  // when accepted
  int retry_after_ms = -1;          // from Retry-After (or the protocol's equivalent), -1 = none
  int http_status = 0;              // or the SMTP reply code
  std::string reason;               // the provider's reason code or message, for events
};

class Provider {
 public:
  virtual ~Provider() = default;
  virtual std::string_view name() const = 0;
  virtual Channel channel() const = 0;
  virtual void Send(std::vector<Message> batch,
                    std::function<void(std::vector<SendResult>)> done) = 0;
};

// Builds a provider from its JSON configuration object (the tenant's stored settings, one entry
// of the "providers" list: {"name":"apns", "team_id":..., "key_id":..., "private_key":...,
// "topic":..., "base_url":...}). kInvalid "invalid_provider_config" names the bad field.
Result<std::unique_ptr<Provider>> MakeProvider(std::string_view config_json,
                                               net::HttpClient* client);

}  // namespace herald::providers

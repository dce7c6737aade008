// Internal to src/providers: what every provider client shares — reading its JSON config,
// form and base64 encodings, Retry-After parsing, mapping transport failures, and collecting
// the answers of a batch sent as parallel requests.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "net/http_client.h"
#include "providers/provider.h"

namespace herald::providers {

using Json = nlohmann::json;

// Reads config members; errors are kInvalid "invalid_provider_config" naming the field.
class ConfigReader {
 public:
  explicit ConfigReader(const Json& config) : config_(config) {}
  std::string Required(std::string_view key);
  std::string Optional(std::string_view key, std::string fallback = {});
  bool Bool(std::string_view key, bool fallback);
  int Int(std::string_view key, int fallback, int min, int max);
  // The first problem met, if any.
  const std::optional<Error>& error() const { return error_; }

 private:
  const Json& config_;
  std::optional<Error> error_;
};

// Common transport settings every provider config may carry: base_url, timeout_ms,
// verify_tls, ca_file, h2c.
struct Transport {
  std::string base_url;
  int timeout_ms = 10'000;
  bool verify_tls = true;
  std::string ca_file;
  bool h2c = false;
  void Apply(net::HttpRequest& request) const;
};
Transport ReadTransport(ConfigReader& reader, std::string default_base_url);

std::string UrlEncode(std::string_view s);
std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& fields);
std::string Base64(std::string_view data);  // standard alphabet, padded (HTTP Basic auth)
// Appends `"title":"…","body":"…"` (no title member when it is empty), JSON-quoted: the alert
// members APNs and FCM share, written as text on their hot path.
void AppendTitleAndBody(std::string& out, std::string_view title, std::string_view body);
// Retry-After as seconds or an HTTP date; -1 when absent or unreadable.
int RetryAfterMs(const net::HttpResponse& response);
// A request that got no HTTP answer (connect failure, timeout, reset): retry; one the
// destination policy refused: auth_error (a configuration fault), reason "destination_refused".
SendResult TransportFailure(std::string_view provider, const net::HttpResponse& response);
// A UUID for a delivery id: the id itself when it is one (lower-cased), else a stable
// name-based UUID derived from it (so a resend carries the same apns-id).
std::string UuidFor(std::string_view delivery_id);

// Collects one result per message of a batch sent as parallel requests; calls `done` once,
// when the last arrives.
class BatchCollector {
 public:
  static std::shared_ptr<BatchCollector> Make(size_t n,
                                              std::function<void(std::vector<SendResult>)> done);
  void Set(size_t index, SendResult result);

 private:
  std::vector<SendResult> results_;
  std::atomic<size_t> left_{0};
  std::function<void(std::vector<SendResult>)> done_;
};

// Registers the provider factories (one per folder) — see registry.cc.
using ProviderFactory =
    std::function<Result<std::unique_ptr<Provider>>(const Json& config, net::HttpClient*)>;
// `now` is the clock the APNs provider token's age and `iat` are read from (tests move it).
Result<std::unique_ptr<Provider>> MakeApns(const Json& config, net::HttpClient* client,
                                           std::function<UnixMillis()> now = NowMillis);
Result<std::unique_ptr<Provider>> MakeFcm(const Json& config, net::HttpClient* client);
Result<std::unique_ptr<Provider>> MakeSmtp(const Json& config, net::HttpClient* client);
Result<std::unique_ptr<Provider>> MakeSendGrid(const Json& config, net::HttpClient* client);
Result<std::unique_ptr<Provider>> MakeTwilio(const Json& config, net::HttpClient* client);
Result<std::unique_ptr<Provider>> MakeVonage(const Json& config, net::HttpClient* client);

}  // namespace herald::providers

#include "providers/provider_util.h"

#include <openssl/evp.h>

#include <cstdio>
#include <ctime>

#include "crypto/crypto.h"
#include "observe/log.h"

namespace herald::providers {
namespace {

Error ConfigError(std::string field, std::string message) {
  return MakeError(ErrorKind::kInvalid, "invalid_provider_config", std::move(message),
                   std::move(field));
}

}  // namespace

std::string ConfigReader::Required(std::string_view key) {
  auto it = config_.find(key);
  if (it == config_.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
    if (!error_) {
      error_ = ConfigError(std::string(key), std::string(key) + " is required (a string).");
    }
    return {};
  }
  return it->get<std::string>();
}

std::string ConfigReader::Optional(std::string_view key, std::string fallback) {
  auto it = config_.find(key);
  if (it == config_.end() || it->is_null()) return fallback;
  if (!it->is_string()) {
    if (!error_) error_ = ConfigError(std::string(key), std::string(key) + " must be a string.");
    return fallback;
  }
  return it->get<std::string>();
}

bool ConfigReader::Bool(std::string_view key, bool fallback) {
  auto it = config_.find(key);
  if (it == config_.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) {
    if (!error_) error_ = ConfigError(std::string(key), std::string(key) + " must be a boolean.");
    return fallback;
  }
  return it->get<bool>();
}

int ConfigReader::Int(std::string_view key, int fallback, int min, int max) {
  auto it = config_.find(key);
  if (it == config_.end() || it->is_null()) return fallback;
  if (!it->is_number_integer() || it->get<int64_t>() < min || it->get<int64_t>() > max) {
    if (!error_) {
      error_ = ConfigError(std::string(key), std::string(key) + " must be an integer from " +
                                                 std::to_string(min) + " to " +
                                                 std::to_string(max) + ".");
    }
    return fallback;
  }
  return it->get<int>();
}

void Transport::Apply(net::HttpRequest& request) const {
  request.timeout_ms = timeout_ms;
  request.verify_tls = verify_tls;
  request.ca_file = ca_file;
  request.h2c = h2c;
}

Transport ReadTransport(ConfigReader& reader, std::string default_base_url) {
  Transport t;
  t.base_url = reader.Optional("base_url", std::move(default_base_url));
  while (!t.base_url.empty() && t.base_url.back() == '/') t.base_url.pop_back();
  t.timeout_ms = reader.Int("timeout_ms", 10'000, 100, 120'000);
  t.verify_tls = reader.Bool("verify_tls", true);
  t.ca_file = reader.Optional("ca_file");
  t.h2c = reader.Bool("h2c", false);
  return t;
}

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [k, v] : fields) {
    if (!out.empty()) out.push_back('&');
    out += UrlEncode(k) + "=" + UrlEncode(v);
  }
  return out;
}

void AppendTitleAndBody(std::string& out, std::string_view title, std::string_view body) {
  if (!title.empty()) {
    out += R"("title":)";
    out += observe::JsonQuote(title);
    out += ',';
  }
  out += R"("body":)";
  out += observe::JsonQuote(body);
}

std::string Base64(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()),
                                static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

int RetryAfterMs(const net::HttpResponse& response) {
  const std::string_view v = response.Header("retry-after");
  if (v.empty()) return -1;
  bool digits = true;
  int64_t seconds = 0;
  for (char c : v) {
    if (c < '0' || c > '9') {
      digits = false;
      break;
    }
    seconds = std::min<int64_t>(seconds * 10 + (c - '0'), 86'400);
  }
  if (digits) return static_cast<int>(seconds * 1000);
  std::tm tm{};
  const std::string text(v);
  if (strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm) == nullptr) return -1;
  const int64_t at = static_cast<int64_t>(timegm(&tm)) * 1000;
  const int64_t delta = at - NowMillis();
  return delta > 0 ? static_cast<int>(std::min<int64_t>(delta, 86'400'000)) : 0;
}

SendResult TransportFailure(std::string_view provider, const net::HttpResponse& response) {
  SendResult r;
  r.outcome = Outcome::kRetry;
  r.provider = std::string(provider);
  r.reason = response.timed_out ? "timeout" : "transport: " + response.error;
  if (response.sent) r.reason += " (request may have reached the provider)";
  if (response.destination_refused) {
    // The tenant's settings point where Herald may not connect: a configuration fault, like
    // wrong credentials (try another provider, alert), not an outage.
    r.outcome = Outcome::kAuthError;
    r.reason = "destination_refused: " + response.error;
  }
  return r;
}

std::string UuidFor(std::string_view id) {
  auto is_uuid = [](std::string_view s) {
    if (s.size() != 36) return false;
    for (size_t i = 0; i < s.size(); ++i) {
      const char c = s[i];
      if (i == 8 || i == 13 || i == 18 || i == 23) {
        if (c != '-') return false;
      } else if (!std::isxdigit(static_cast<unsigned char>(c))) {
        return false;
      }
    }
    return true;
  };
  if (is_uuid(id)) {
    std::string out(id);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  }
  auto h = crypto::Sha256(id);
  h[6] = static_cast<uint8_t>((h[6] & 0x0f) | 0x80);  // version 8: custom, name-based
  h[8] = static_cast<uint8_t>((h[8] & 0x3f) | 0x80);  // RFC 4122 variant
  const std::string hex = crypto::ToHex(h.data(), 16);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20, 12);
}

std::shared_ptr<BatchCollector> BatchCollector::Make(
    size_t n, std::function<void(std::vector<SendResult>)> done) {
  auto c = std::make_shared<BatchCollector>();
  c->results_.resize(n);
  c->left_ = n;
  c->done_ = std::move(done);
  if (n == 0) c->done_({});
  return c;
}

void BatchCollector::Set(size_t index, SendResult result) {
  results_[index] = std::move(result);
  if (left_.fetch_sub(1, std::memory_order_acq_rel) == 1) done_(std::move(results_));
}

Result<std::unique_ptr<Provider>> MakeProvider(std::string_view config_json,
                                               net::HttpClient* client) {
  const Json config = Json::parse(config_json, nullptr, false);
  if (!config.is_object()) {
    return ConfigError("", "A provider's configuration must be a JSON object.");
  }
  const std::string name = config.value("name", "");
  if (name == "apns") return MakeApns(config, client);
  if (name == "fcm") return MakeFcm(config, client);
  if (name == "smtp") return MakeSmtp(config, client);
  if (name == "sendgrid") return MakeSendGrid(config, client);
  if (name == "twilio") return MakeTwilio(config, client);
  if (name == "vonage") return MakeVonage(config, client);
  return ConfigError("name", "name must be one of apns, fcm, smtp, sendgrid, twilio, vonage.");
}

}  // namespace herald::providers

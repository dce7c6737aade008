// SMS through the Vonage SMS API (rest.nexmo.com/sms/json): form POST, credentials in the
// form, the delivery id as client-ref so delivery receipts can name it.
#include "providers/provider_util.h"

namespace herald::providers {
namespace {

class VonageProvider final : public Provider {
 public:
  VonageProvider(Transport t, std::string key, std::string secret, std::string from,
                 std::string callback, net::HttpClient* client)
      : transport_(std::move(t)),
        key_(std::move(key)),
        secret_(std::move(secret)),
        from_(std::move(from)),
        callback_(std::move(callback)),
        client_(client) {}
  std::string_view name() const override { return "vonage"; }
  Channel channel() const override { return Channel::kSms; }

  void Send(std::vector<Message> batch,
            std::function<void(std::vector<SendResult>)> done) override {
    auto collector = BatchCollector::Make(batch.size(), std::move(done));
    for (size_t i = 0; i < batch.size(); ++i) {
      const Message& m = batch[i];
      const std::string to =
          !m.address.empty() && m.address[0] == '+' ? m.address.substr(1) : m.address;
      std::vector<std::pair<std::string, std::string>> form = {
          {"api_key", key_},
          {"api_secret", secret_},
          {"from", from_},
          {"to", to},
          {"text", m.title.empty() ? m.body : m.title + "\n" + m.body},
          {"type", "unicode"},
          {"client-ref", m.delivery_id}};
      if (!callback_.empty()) form.emplace_back("callback", callback_);
      net::HttpRequest req;
      req.method = "POST";
      req.url = transport_.base_url + "/sms/json";
      transport_.Apply(req);
      req.headers = {{"content-type", "application/x-www-form-urlencoded"}};
      req.body = FormEncode(form);
      client_->Send(std::move(req), [collector, i](const net::HttpResponse& resp) {
        collector->Set(i, Map(resp));
      });
    }
  }

 private:
  static SendResult Map(const net::HttpResponse& resp) {
    if (resp.status == 0) return TransportFailure("vonage", resp);
    SendResult r;
    r.provider = "vonage";
    r.http_status = resp.status;
    r.retry_after_ms = RetryAfterMs(resp);
    if (resp.status == 429) {
      r.outcome = Outcome::kThrottled;
      r.reason = "HTTP 429";
      return r;
    }
    if (resp.status >= 500) {
      r.outcome = Outcome::kRetry;
      r.reason = "HTTP " + std::to_string(resp.status);
      return r;
    }
    if (resp.status == 401 || resp.status == 403) {
      r.outcome = Outcome::kAuthError;
      r.reason = "HTTP " + std::to_string(resp.status);
      return r;
    }
    const Json body = Json::parse(resp.body, nullptr, false);
    const Json* msg = nullptr;
    if (body.is_object() && body.contains("messages") && body["messages"].is_array() &&
        !body["messages"].empty() && body["messages"][0].is_object()) {
      msg = &body["messages"][0];
    }
    if (msg == nullptr) {
      r.outcome = Outcome::kRetry;
      r.reason = "unreadable Vonage answer (HTTP " + std::to_string(resp.status) + ")";
      return r;
    }
    const std::string status = msg->value("status", "");
    r.reason = status == "0" ? "" : "vonage status " + status + ": " + msg->value("error-text", "");
    if (status == "0") {
      r.outcome = Outcome::kAccepted;
      r.provider_message_id = msg->value("message-id", "");
    } else if (status == "1") {
      r.outcome = Outcome::kThrottled;
    } else if (status == "5") {
      r.outcome = Outcome::kRetry;
    } else if (status == "4" || status == "9") {
      r.outcome = Outcome::kAuthError;  // bad credentials; 9 = account quota (configuration)
    } else if (status == "7") {
      r.outcome = Outcome::kInvalidAddress;
    } else {
      r.outcome = Outcome::kRejected;  // 2, 3, 6, ...: malformed or refused request
    }
    return r;
  }

  Transport transport_;
  std::string key_, secret_, from_, callback_;
  net::HttpClient* client_;
};

}  // namespace

Result<std::unique_ptr<Provider>> MakeVonage(const Json& config, net::HttpClient* client) {
  ConfigReader reader(config);
  Transport t = ReadTransport(reader, "https://rest.nexmo.com");
  std::string key = reader.Required("api_key");
  std::string secret = reader.Required("api_secret");
  std::string from = reader.Required("from");
  std::string callback = reader.Optional("callback");
  if (reader.error()) return *reader.error();
  return std::unique_ptr<Provider>(new VonageProvider(std::move(t), std::move(key),
                                                      std::move(secret), std::move(from),
                                                      std::move(callback), client));
}

}  // namespace herald::providers

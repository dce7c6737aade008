// Email through the SendGrid v3 mail/send API: one request per message, the delivery id in
// custom_args so event webhooks can name it.
#include "providers/provider_util.h"

namespace herald::providers {
namespace {

class SendGridProvider final : public Provider {
 public:
  SendGridProvider(Transport t, std::string key, std::string from, net::HttpClient* client)
      : transport_(std::move(t)), key_(std::move(key)), from_(std::move(from)), client_(client) {}
  std::string_view name() const override { return "sendgrid"; }
  Channel channel() const override { return Channel::kEmail; }

  void Send(std::vector<Message> batch,
            std::function<void(std::vector<SendResult>)> done) override {
    auto collector = BatchCollector::Make(batch.size(), std::move(done));
    for (size_t i = 0; i < batch.size(); ++i) {
      const Message& m = batch[i];
      net::HttpRequest req;
      req.method = "POST";
      req.url = transport_.base_url + "/v3/mail/send";
      transport_.Apply(req);
      req.headers = {{"authorization", "Bearer " + key_}, {"content-type", "application/json"}};
      req.body = Json{{"personalizations", {{{"to", {{{"email", m.address}}}}}}},
                      {"from", {{"email", from_}}},
                      {"subject", m.title.empty() ? std::string(" ") : m.title},
                      {"content", {{{"type", "text/plain"}, {"value", m.body}}}},
                      {"custom_args", {{"delivery_id", m.delivery_id}}}}
                     .dump();
      client_->Send(std::move(req), [collector, i](const net::HttpResponse& resp) {
        collector->Set(i, Map(resp));
      });
    }
  }

 private:
  static SendResult Map(const net::HttpResponse& resp) {
    if (resp.status == 0) return TransportFailure("sendgrid", resp);
    SendResult r;
    r.provider = "sendgrid";
    r.http_status = resp.status;
    r.reason = "HTTP " + std::to_string(resp.status);
    if (resp.status == 202 || resp.status == 200) {
      r.outcome = Outcome::kAccepted;
      r.provider_message_id = std::string(resp.Header("x-message-id"));
      r.reason.clear();
    } else if (resp.status == 401 || resp.status == 403) {
      r.outcome = Outcome::kAuthError;
    } else if (resp.status == 429) {
      r.outcome = Outcome::kThrottled;
      r.retry_after_ms = RetryAfterMs(resp);
      const std::string_view reset = resp.Header("x-ratelimit-reset");
      if (r.retry_after_ms < 0 && !reset.empty()) {
        const int64_t at = std::atoll(std::string(reset).c_str()) * 1000;
        r.retry_after_ms = static_cast<int>(std::clamp<int64_t>(at - NowMillis(), 0, 3'600'000));
      }
    } else if (resp.status >= 500) {
      r.outcome = Outcome::kRetry;
      r.retry_after_ms = RetryAfterMs(resp);
    } else {
      // 400: an address SendGrid refuses is named in errors[].field "personalizations.0.to..."
      const bool address = resp.body.find("personalizations") != std::string::npos &&
                           resp.body.find("email") != std::string::npos;
      r.outcome = address ? Outcome::kInvalidAddress : Outcome::kRejected;
    }
    return r;
  }

  Transport transport_;
  std::string key_, from_;
  net::HttpClient* client_;
};

}  // namespace

Result<std::unique_ptr<Provider>> MakeSendGrid(const Json& config, net::HttpClient* client) {
  ConfigReader reader(config);
  Transport t = ReadTransport(reader, "https://api.sendgrid.com");
  std::string key = reader.Required("api_key");
  std::string from = reader.Required("from");
  if (reader.error()) return *reader.error();
  return std::unique_ptr<Provider>(
      new SendGridProvider(std::move(t), std::move(key), std::move(from), client));
}

}  // namespace herald::providers

// SMS through Twilio Programmable Messaging: a form POST with HTTP Basic auth. The delivery id
// rides on the StatusCallback URL so status callbacks can name the delivery.
#include "providers/provider_util.h"

namespace herald::providers {
namespace {

class TwilioProvider final : public Provider {
 public:
  TwilioProvider(Transport t, std::string sid, const std::string& token, std::string from,
                 std::string service, std::string callback, net::HttpClient* client)
      : transport_(std::move(t)),
        sid_(std::move(sid)),
        auth_("Basic " + Base64(sid_ + ":" + token)),
        from_(std::move(from)),
        service_(std::move(service)),
        callback_(std::move(callback)),
        client_(client) {}
  std::string_view name() const override { return "twilio"; }
  Channel channel() const override { return Channel::kSms; }

  void Send(std::vector<Message> batch,
            std::function<void(std::vector<SendResult>)> done) override {
    auto collector = BatchCollector::Make(batch.size(), std::move(done));
    for (size_t i = 0; i < batch.size(); ++i) {
      const Message& m = batch[i];
      std::vector<std::pair<std::string, std::string>> form = {
          {"To", m.address}, {"Body", m.title.empty() ? m.body : m.title + "\n" + m.body}};
      if (!service_.empty()) {
        form.emplace_back("MessagingServiceSid", service_);
      } else {
        form.emplace_back("From", from_);
      }
      if (!callback_.empty()) {
        const char sep = callback_.find('?') == std::string::npos ? '?' : '&';
        form.emplace_back("StatusCallback",
                          callback_ + sep + "delivery_id=" + UrlEncode(m.delivery_id));
      }
      net::HttpRequest req;
      req.method = "POST";
      req.url = transport_.base_url + "/2010-04-01/Accounts/" + sid_ + "/Messages.json";
      transport_.Apply(req);
      req.headers = {{"authorization", auth_},
                     {"content-type", "application/x-www-form-urlencoded"}};
      req.body = FormEncode(form);
      client_->Send(std::move(req), [collector, i](const net::HttpResponse& resp) {
        collector->Set(i, Map(resp));
      });
    }
  }

 private:
  static SendResult Map(const net::HttpResponse& resp) {
    if (resp.status == 0) return TransportFailure("twilio", resp);
    SendResult r;
    r.provider = "twilio";
    r.http_status = resp.status;
    const Json body = Json::parse(resp.body, nullptr, false);
    if (resp.status == 201 || resp.status == 200) {
      r.outcome = Outcome::kAccepted;
      if (body.is_object() && body.contains("sid") && body["sid"].is_string()) {
        r.provider_message_id = body["sid"].get<std::string>();
      }
      return r;
    }
    const int64_t code = body.is_object() && body.contains("code") && body["code"].is_number()
                             ? body["code"].get<int64_t>()
                             : 0;
    r.reason = code != 0 ? "twilio " + std::to_string(code) : "HTTP " + std::to_string(resp.status);
    r.retry_after_ms = RetryAfterMs(resp);
    if (code == 21211 || code == 21614 || code == 30005 || code == 30006 || code == 21612) {
      r.outcome = Outcome::kInvalidAddress;
    } else if (code == 21610) {
      r.outcome = Outcome::kRejected;
      r.reason = "twilio 21610: the recipient replied STOP (opted out at the carrier)";
    } else if (code == 20429 || resp.status == 429) {
      r.outcome = Outcome::kThrottled;
    } else if (code == 20003 || resp.status == 401 || resp.status == 403) {
      r.outcome = Outcome::kAuthError;
    } else if (resp.status >= 500) {
      r.outcome = Outcome::kRetry;
    } else {
      r.outcome = Outcome::kRejected;
    }
    return r;
  }

  Transport transport_;
  std::string sid_, auth_, from_, service_, callback_;
  net::HttpClient* client_;
};

}  // namespace

Result<std::unique_ptr<Provider>> MakeTwilio(const Json& config, net::HttpClient* client) {
  ConfigReader reader(config);
  Transport t = ReadTransport(reader, "https://api.twilio.com");
  std::string sid = reader.Required("account_sid");
  std::string token = reader.Required("auth_token");
  std::string service = reader.Optional("messaging_service_sid");
  std::string from = service.empty() ? reader.Required("from") : reader.Optional("from");
  std::string callback = reader.Optional("status_callback");
  if (reader.error()) return *reader.error();
  return std::unique_ptr<Provider>(new TwilioProvider(std::move(t), std::move(sid), token,
                                                      std::move(from), std::move(service),
                                                      std::move(callback), client));
}

}  // namespace herald::providers

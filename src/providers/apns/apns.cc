// APNs over HTTP/2 with token auth: one ES256 JWT per team, shared by every request and
// connection, refreshed after 50 minutes (APNs refuses refreshes sooner than 20 and tokens older
// than 60), and at once when APNs answers ExpiredProviderToken.
#include <mutex>

#include "observe/log.h"
#include "providers/jwt.h"
#include "providers/provider_util.h"

namespace herald::providers {
namespace {

constexpr UnixMillis kRefreshAfterMs = 50 * 60 * 1000;
constexpr UnixMillis kMinRefreshMs = 20 * 60 * 1000;

class ApnsProvider final : public Provider {
 public:
  ApnsProvider(Transport transport, std::string team_id, std::string key_id, std::string topic,
               std::string push_type, std::shared_ptr<const JwtSigner> signer,
               net::HttpClient* client, std::function<UnixMillis()> now)
      : transport_(std::move(transport)),
        team_id_(std::move(team_id)),
        key_id_(std::move(key_id)),
        topic_(std::move(topic)),
        push_type_(std::move(push_type)),
        signer_(std::move(signer)),
        client_(client),
        now_(std::move(now)) {}

  std::string_view name() const override { return "apns"; }
  Channel channel() const override { return Channel::kIos; }

  void Send(std::vector<Message> batch,
            std::function<void(std::vector<SendResult>)> done) override {
    auto collector = BatchCollector::Make(batch.size(), std::move(done));
    for (size_t i = 0; i < batch.size(); ++i) SendOne(std::move(batch[i]), collector, i, false);
  }

 private:
  // The team's current token; `stale` (the token APNs just called expired) forces a new one
  // unless another request already replaced it.
  Result<std::string> Token(const std::string& stale = {}) {
    std::lock_guard lock(mu_);
    const UnixMillis now = now_();
    const bool expired_by_apns = !stale.empty() && stale == token_;
    if (token_.empty() || now - minted_at_ >= kRefreshAfterMs ||
        (expired_by_apns && now - minted_at_ >= kMinRefreshMs / 20)) {
      const Json header{{"alg", "ES256"}, {"kid", key_id_}};
      const Json claims{{"iss", team_id_}, {"iat", now / 1000}};
      auto jwt = signer_->Sign(header.dump(), claims.dump());
      if (!jwt.ok()) return jwt;
      token_ = std::move(*jwt);
      minted_at_ = now;
    }
    return token_;
  }

  void SendOne(Message m, const std::shared_ptr<BatchCollector>& collector, size_t index,
               bool after_refresh) {
    auto token = Token();
    if (!token.ok()) {
      collector->Set(index,
                     SendResult{Outcome::kAuthError, "apns", "", -1, 0, token.error().message});
      return;
    }
    net::HttpRequest req;
    req.method = "POST";
    req.url = transport_.base_url + "/3/device/" + m.address;
    transport_.Apply(req);
    const std::string apns_id = UuidFor(m.delivery_id);
    req.headers = {{"authorization", "bearer " + *token},
                   {"apns-id", apns_id},
                   {"apns-topic", topic_},
                   {"apns-push-type", push_type_},
                   {"apns-priority", m.priority >= 10 ? "10" : "5"},
                   {"apns-expiration", std::to_string(std::max<UnixMillis>(m.deadline, 0) / 1000)},
                   {"content-type", "application/json"}};
    // Built as text: one push per delivery makes a JSON DOM per message a hot-path cost.
    std::string& body = req.body;
    body.reserve(64 + m.title.size() + m.body.size() + m.delivery_id.size());
    body = R"({"aps":{"alert":{)";
    AppendTitleAndBody(body, m.title, m.body);
    body += R"(}},"delivery_id":)";
    body += observe::JsonQuote(m.delivery_id);
    body += '}';
    const std::string used_token = *token;
    client_->Send(std::move(req), [this, m = std::move(m), collector, index, after_refresh,
                                   used_token, apns_id](const net::HttpResponse& resp) mutable {
      if (resp.status == 0) return collector->Set(index, TransportFailure("apns", resp));
      const Json body = resp.body.empty() ? Json() : Json::parse(resp.body, nullptr, false);
      const std::string reason =
          body.is_object() && body.contains("reason") && body["reason"].is_string()
              ? body["reason"].get<std::string>()
              : "";
      if (resp.status == 403 && reason == "ExpiredProviderToken" && !after_refresh) {
        (void)Token(used_token);  // mint a new one, then try once more
        return SendOne(std::move(m), collector, index, true);
      }
      collector->Set(index, Map(resp, reason, apns_id));
    });
  }

  static SendResult Map(const net::HttpResponse& resp, const std::string& reason,
                        const std::string& apns_id) {
    SendResult r;
    r.provider = "apns";
    r.http_status = resp.status;
    r.reason = reason.empty() ? "HTTP " + std::to_string(resp.status) : reason;
    switch (resp.status) {
      case 200:
        r.outcome = Outcome::kAccepted;
        r.provider_message_id =
            resp.Header("apns-id").empty() ? apns_id : std::string(resp.Header("apns-id"));
        r.reason.clear();
        return r;
      case 400:
        r.outcome = reason == "BadDeviceToken" || reason == "DeviceTokenNotForTopic"
                        ? Outcome::kInvalidAddress
                        : Outcome::kRejected;
        return r;
      case 403: r.outcome = Outcome::kAuthError; return r;
      case 410: r.outcome = Outcome::kInvalidAddress; return r;
      case 429:
        r.outcome = Outcome::kThrottled;
        r.retry_after_ms = RetryAfterMs(resp);
        return r;
      default:
        if (resp.status >= 500) {
          r.outcome = Outcome::kRetry;
          r.retry_after_ms = RetryAfterMs(resp);
        } else {
          r.outcome = Outcome::kRejected;  // 404 BadPath, 405, 413 PayloadTooLarge, ...
        }
        return r;
    }
  }

  Transport transport_;
  std::string team_id_, key_id_, topic_, push_type_;
  std::shared_ptr<const JwtSigner> signer_;
  net::HttpClient* client_;
  std::function<UnixMillis()> now_;
  std::mutex mu_;
  std::string token_;
  UnixMillis minted_at_ = 0;
};

}  // namespace

Result<std::unique_ptr<Provider>> MakeApns(const Json& config, net::HttpClient* client,
                                           std::function<UnixMillis()> now) {
  ConfigReader reader(config);
  Transport transport = ReadTransport(reader, "https://api.push.apple.com");
  std::string team_id = reader.Required("team_id");
  std::string key_id = reader.Required("key_id");
  std::string key = reader.Required("private_key");
  std::string topic = reader.Required("topic");
  std::string push_type = reader.Optional("push_type", "alert");
  if (reader.error()) return *reader.error();
  auto signer = JwtSigner::Make(JwtSigner::Alg::kES256, key);
  if (!signer.ok()) return signer.take_error();
  return std::unique_ptr<Provider>(
      new ApnsProvider(std::move(transport), std::move(team_id), std::move(key_id),
                       std::move(topic), std::move(push_type), *signer, client, std::move(now)));
}

}  // namespace herald::providers

// FCM HTTP v1: messages:send with an OAuth2 access token obtained by exchanging an RS256 JWT
// signed with the service account's key at the token endpoint. The token is cached and renewed
// five minutes before it expires; messages that arrive while a token is being fetched wait for
// it instead of each starting an exchange.
#include <mutex>

#include "observe/log.h"
#include "providers/jwt.h"
#include "providers/provider_util.h"

namespace herald::providers {
namespace {

constexpr char kScope[] = "https://www.googleapis.com/auth/firebase.messaging";
constexpr UnixMillis kRenewEarlyMs = 5 * 60 * 1000;
constexpr int kQuotaBackoffMs = 60'000;

class FcmProvider final : public Provider {
 public:
  FcmProvider(Transport transport, std::string project, std::string client_email,
              std::string token_url, std::shared_ptr<const JwtSigner> signer,
              net::HttpClient* client)
      : transport_(std::move(transport)),
        project_(std::move(project)),
        client_email_(std::move(client_email)),
        token_url_(std::move(token_url)),
        signer_(std::move(signer)),
        client_(client) {}

  std::string_view name() const override { return "fcm"; }
  Channel channel() const override { return Channel::kAndroid; }

  void Send(std::vector<Message> batch,
            std::function<void(std::vector<SendResult>)> done) override {
    auto collector = BatchCollector::Make(batch.size(), std::move(done));
    for (size_t i = 0; i < batch.size(); ++i) {
      WithToken([this, m = std::move(batch[i]), collector, i](const std::string* token,
                                                              std::string why) mutable {
        if (token == nullptr) {
          return collector->Set(i,
                                SendResult{Outcome::kAuthError, "fcm", "", -1, 0, std::move(why)});
        }
        SendOne(std::move(m), *token, collector, i, false);
      });
    }
  }

 private:
  using TokenWaiter = std::function<void(const std::string* token, std::string why)>;

  // Calls `fn` with a valid access token (possibly at once, on this thread), or with nullptr
  // and the reason when the exchange failed.
  void WithToken(TokenWaiter fn, bool force = false) {
    std::unique_lock lock(mu_);
    if (!force && !token_.empty() && NowMillis() < token_expires_at_ - kRenewEarlyMs) {
      const std::string token = token_;
      lock.unlock();
      fn(&token, {});
      return;
    }
    if (force) token_.clear();
    waiters_.push_back(std::move(fn));
    if (fetching_) return;
    fetching_ = true;
    lock.unlock();
    FetchToken();
  }

  void FetchToken() {
    const UnixMillis now = NowMillis() / 1000;
    const Json header{{"alg", "RS256"}, {"typ", "JWT"}};
    const Json claims{{"iss", client_email_},
                      {"scope", kScope},
                      {"aud", token_url_},
                      {"iat", now},
                      {"exp", now + 3600}};
    auto jwt = signer_->Sign(header.dump(), claims.dump());
    if (!jwt.ok()) return FinishFetch({}, 0, jwt.error().message);
    net::HttpRequest req;
    req.method = "POST";
    req.url = token_url_;
    // The provider's transport settings apply to the token endpoint too: against the simulator
    // both share one h2c origin (and libcurl 7.88 must not mix HTTP/1.1 and h2c on one origin,
    // see net/curl_client.cc); Google's endpoint is https, where h2c means nothing.
    transport_.Apply(req);
    req.headers = {{"content-type", "application/x-www-form-urlencoded"}};
    req.body = FormEncode(
        {{"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"}, {"assertion", *jwt}});
    client_->Send(std::move(req), [this](const net::HttpResponse& resp) {
      const Json body = Json::parse(resp.body, nullptr, false);
      if (resp.status == 200 && body.is_object() && body.contains("access_token") &&
          body["access_token"].is_string()) {
        const int64_t expires_in =
            body.contains("expires_in") && body["expires_in"].is_number_integer()
                ? body["expires_in"].get<int64_t>()
                : 3599;
        return FinishFetch(body["access_token"].get<std::string>(), NowMillis() + expires_in * 1000,
                           {});
      }
      FinishFetch({}, 0,
                  resp.status == 0 ? "token endpoint unreachable: " + resp.error
                                   : "token endpoint answered HTTP " + std::to_string(resp.status));
    });
  }

  void FinishFetch(std::string token, UnixMillis expires_at, const std::string& why) {
    std::vector<TokenWaiter> waiters;
    {
      std::lock_guard lock(mu_);
      token_ = token;
      token_expires_at_ = expires_at;
      fetching_ = false;
      waiters.swap(waiters_);
    }
    for (auto& w : waiters) w(token.empty() ? nullptr : &token, why);
  }

  void SendOne(Message m, const std::string& token,
               const std::shared_ptr<BatchCollector>& collector, size_t index, bool after_refresh) {
    net::HttpRequest req;
    req.method = "POST";
    req.url = transport_.base_url + "/v1/projects/" + project_ + "/messages:send";
    transport_.Apply(req);
    req.headers = {{"authorization", "Bearer " + token}, {"content-type", "application/json"}};
    const int64_t ttl_s = std::max<int64_t>(0, (m.deadline - NowMillis()) / 1000);
    // Built as text: one request per delivery makes a JSON DOM per message a hot-path cost.
    std::string& body = req.body;
    body.reserve(160 + m.address.size() + m.title.size() + m.body.size());
    body = R"({"message":{"token":)";
    body += observe::JsonQuote(m.address);
    body += R"(,"notification":{)";
    AppendTitleAndBody(body, m.title, m.body);
    body += R"(},"data":{"delivery_id":)";
    body += observe::JsonQuote(m.delivery_id);
    body += R"(},"android":{"priority":")";
    body += m.priority >= 10 ? "HIGH" : "NORMAL";
    body += R"(","ttl":")";
    body += std::to_string(ttl_s);
    body += R"(s"}}})";
    client_->Send(std::move(req), [this, m = std::move(m), collector, index,
                                   after_refresh](const net::HttpResponse& resp) mutable {
      if (resp.status == 0) return collector->Set(index, TransportFailure("fcm", resp));
      if (resp.status == 401 && !after_refresh) {
        // The access token was refused: fetch a new one and try once more.
        return WithToken(
            [this, m = std::move(m), collector, index](const std::string* t,
                                                       std::string why) mutable {
              if (t == nullptr) {
                return collector->Set(
                    index, SendResult{Outcome::kAuthError, "fcm", "", -1, 401, std::move(why)});
              }
              SendOne(std::move(m), *t, collector, index, true);
            },
            true);
      }
      collector->Set(index, Map(resp));
    });
  }

  static SendResult Map(const net::HttpResponse& resp) {
    SendResult r;
    r.provider = "fcm";
    r.http_status = resp.status;
    const Json body = Json::parse(resp.body, nullptr, false);
    if (resp.status == 200) {
      r.outcome = Outcome::kAccepted;
      if (body.is_object() && body.contains("name") && body["name"].is_string()) {
        r.provider_message_id = body["name"].get<std::string>();
      }
      return r;
    }
    std::string code;
    std::string message;
    if (body.is_object() && body.contains("error") && body["error"].is_object()) {
      const Json& e = body["error"];
      message = e.value("message", "");
      code = e.value("status", "");
      if (e.contains("details") && e["details"].is_array()) {
        for (const auto& d : e["details"]) {
          if (d.is_object() && d.contains("errorCode") && d["errorCode"].is_string()) {
            code = d["errorCode"].get<std::string>();
          }
        }
      }
    }
    r.reason = code.empty() ? "HTTP " + std::to_string(resp.status) : code;
    r.retry_after_ms = RetryAfterMs(resp);
    if (code == "UNREGISTERED" || code == "SENDER_ID_MISMATCH") {
      r.outcome = Outcome::kInvalidAddress;
    } else if (code == "INVALID_ARGUMENT") {
      // Only an invalid registration token means the device is gone.
      const bool about_token = message.find("token") != std::string::npos ||
                               message.find("registration") != std::string::npos;
      r.outcome = about_token ? Outcome::kInvalidAddress : Outcome::kRejected;
    } else if (code == "QUOTA_EXCEEDED" || resp.status == 429) {
      r.outcome = Outcome::kThrottled;
      if (r.retry_after_ms < 0) r.retry_after_ms = kQuotaBackoffMs;
    } else if (code == "THIRD_PARTY_AUTH_ERROR" || resp.status == 401 || resp.status == 403) {
      r.outcome = Outcome::kAuthError;
    } else if (resp.status >= 500) {
      r.outcome = Outcome::kRetry;
    } else {
      r.outcome = Outcome::kRejected;
    }
    return r;
  }

  Transport transport_;
  std::string project_, client_email_, token_url_;
  std::shared_ptr<const JwtSigner> signer_;
  net::HttpClient* client_;
  std::mutex mu_;
  std::string token_;
  UnixMillis token_expires_at_ = 0;
  bool fetching_ = false;
  std::vector<TokenWaiter> waiters_;
};

}  // namespace

Result<std::unique_ptr<Provider>> MakeFcm(const Json& config, net::HttpClient* client) {
  ConfigReader reader(config);
  Transport transport = ReadTransport(reader, "https://fcm.googleapis.com");
  std::string project = reader.Required("project_id");
  std::string email = reader.Required("client_email");
  std::string key = reader.Required("private_key");
  std::string token_url = reader.Optional("token_url", "https://oauth2.googleapis.com/token");
  if (reader.error()) return *reader.error();
  auto signer = JwtSigner::Make(JwtSigner::Alg::kRS256, key);
  if (!signer.ok()) return signer.take_error();
  return std::unique_ptr<Provider>(new FcmProvider(std::move(transport), std::move(project),
                                                   std::move(email), std::move(token_url), *signer,
                                                   client));
}

}  // namespace herald::providers

// Email by SMTP submission (STARTTLS + AUTH through libcurl): 250 accepted, 4xx transient (4.7.x:
// throttled), 550 5.1.1 invalid address, 535 bad credentials, other 5xx permanent.
#include "providers/provider_util.h"

namespace herald::providers {
namespace {

// RFC 2047 encoded-word when the text is not plain ASCII.
std::string HeaderText(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80 || c < 0x20) return "=?UTF-8?B?" + Base64(s) + "?=";
  }
  return std::string(s);
}

// The message body with CRLF line ends (dot-stuffing is libcurl's job).
std::string CrlfText(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) out.push_back('\r');
    out.push_back(s[i]);
  }
  return out;
}

std::string RfcDate() {
  char buf[64];
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return buf;
}

// The enhanced status code (RFC 3463) after the reply code: "451 4.7.1 slow down" → "4.7.1".
std::string_view EnhancedCode(std::string_view reply) {
  if (reply.size() < 5) return {};
  reply.remove_prefix(4);
  return reply.substr(0, reply.find(' '));
}

class SmtpProvider final : public Provider {
 public:
  SmtpProvider(net::SmtpMessage base, std::string from, net::HttpClient* client)
      : base_(std::move(base)), from_(std::move(from)), client_(client) {}
  std::string_view name() const override { return "smtp"; }
  Channel channel() const override { return Channel::kEmail; }

  void Send(std::vector<Message> batch,
            std::function<void(std::vector<SendResult>)> done) override {
    auto collector = BatchCollector::Make(batch.size(), std::move(done));
    for (size_t i = 0; i < batch.size(); ++i) {
      const Message& m = batch[i];
      net::SmtpMessage mail = base_;
      mail.mail_from = from_;
      mail.rcpt_to = {m.address};
      const std::string message_id = "<" + m.delivery_id + "@herald>";
      mail.data = "From: " + from_ + "\r\nTo: " + m.address +
                  "\r\nSubject: " + HeaderText(m.title) + "\r\nDate: " + RfcDate() +
                  "\r\nMessage-ID: " + message_id + "\r\nX-Herald-Delivery-Id: " + m.delivery_id +
                  "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8"
                  "\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
                  CrlfText(m.body) + "\r\n";
      client_->SendMail(std::move(mail), [collector, i, message_id](const net::SmtpResult& res) {
        collector->Set(i, Map(res, message_id));
      });
    }
  }

 private:
  static SendResult Map(const net::SmtpResult& res, const std::string& message_id) {
    SendResult r;
    r.provider = "smtp";
    r.http_status = res.code;
    r.reason = res.reply.empty() ? res.error : res.reply;
    if (res.code == 250 && res.curl_code == 0) {
      r.outcome = Outcome::kAccepted;
      r.provider_message_id = message_id;
      r.reason.clear();
    } else if (res.code >= 400 && res.code < 500) {
      // 4.7.x is the policy class servers defer with when a sender goes too fast ("451 4.7.1
      // rate limit", "421 4.7.0 try again later"): slow down; any other 4xx is transient.
      r.outcome =
          EnhancedCode(res.reply).rfind("4.7.", 0) == 0 ? Outcome::kThrottled : Outcome::kRetry;
    } else if (res.code == 535 || res.code == 530) {
      r.outcome = Outcome::kAuthError;
    } else if (res.code == 550 || res.code == 551 || res.code == 553) {
      const bool mailbox = res.reply.find("5.1.1") != std::string::npos ||
                           res.reply.find("5.1.0") != std::string::npos ||
                           res.reply.find("5.1.2") != std::string::npos || res.code == 551;
      r.outcome = mailbox ? Outcome::kInvalidAddress : Outcome::kRejected;
    } else if (res.code >= 500) {
      r.outcome = Outcome::kRejected;
    } else if (res.destination_refused) {
      r.outcome = Outcome::kAuthError;  // our configuration is at fault: try another provider
      r.reason = "destination_refused: " + res.error;
    } else {
      r.outcome = Outcome::kRetry;  // no reply: connection failure or timeout
    }
    return r;
  }

  net::SmtpMessage base_;
  std::string from_;
  net::HttpClient* client_;
};

}  // namespace

Result<std::unique_ptr<Provider>> MakeSmtp(const Json& config, net::HttpClient* client) {
  ConfigReader reader(config);
  net::SmtpMessage base;
  base.url = reader.Required("url");
  base.username = reader.Optional("username");
  base.password = reader.Optional("password");
  base.require_tls = reader.Bool("require_tls", false);
  base.verify_tls = reader.Bool("verify_tls", true);
  base.ca_file = reader.Optional("ca_file");
  base.timeout_ms = reader.Int("timeout_ms", 30'000, 100, 300'000);
  std::string from = reader.Required("from");
  if (reader.error()) return *reader.error();
  if (base.url.rfind("smtp://", 0) != 0 && base.url.rfind("smtps://", 0) != 0) {
    return MakeError(ErrorKind::kInvalid, "invalid_provider_config",
                     "url must be smtp://host:port or smtps://host:port.", "url");
  }
  return std::unique_ptr<Provider>(new SmtpProvider(std::move(base), std::move(from), client));
}

}  // namespace herald::providers

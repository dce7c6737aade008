// Delivery receipts: signed callbacks move sent deliveries; forged or tampered ones change
// nothing.
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>

#include "api/notification_test_fixture.h"
#include "api/receipt_signatures.h"

namespace herald::api {
namespace {

constexpr char kPhone[] = "+821022223333";

// A Unix time in seconds, `offset_s` from now, as providers sign it.
std::string UnixSeconds(int64_t offset_s = 0) {
  return std::to_string(NowMillis() / 1000 + offset_s);
}

class ReceiptRoutes : public NotificationSession {
 protected:
  void SetUp() override {
    NotificationSession::SetUp();
    PutUser("u3", {{{"channel", "sms"}, {"address", kPhone}}}, {});
    auto r = Send({{"to", {{"users", {"u1", "u3"}}}}, {"body", "x"}, {"channels", {"sms"}}});
    ASSERT_EQ(r.status, 202) << r.body;
    id_ = Body(r)["id"];
    auto jobs = FanOut(id_);
    ASSERT_EQ(jobs.size(), 1u);
    sms_ = jobs[0].delivery;
  }

  http::Response Post(const std::string& target, std::string body,
                      std::vector<std::pair<std::string, std::string>> headers) {
    auto req = MakeRequest("POST", target, std::move(body), "");
    for (auto& h : headers) req.headers.push_back(std::move(h));
    auto resp = handler_->Handle(req);
    handler_->Record(req, resp, 100);
    return resp;
  }

  std::string SmsStatus() {
    auto r = Call("GET", "/v1/notifications/" + id_ + "/deliveries", {}, key_);
    return Body(r)["deliveries"][0]["status"];
  }
  std::string SmsReason() {
    auto r = Call("GET", "/v1/notifications/" + id_ + "/deliveries", {}, key_);
    return Body(r)["deliveries"][0]["reason"].is_null()
               ? ""
               : Body(r)["deliveries"][0]["reason"].get<std::string>();
  }

  http::Response Twilio(const std::string& form_text, const std::string& token) {
    const std::string target = "/v1/receipts/twilio/" + tenant_;
    const std::string sig =
        TwilioSignature(token, "https://herald.example.com" + target, ParseForm(form_text));
    return Post(target, form_text, {{"x-twilio-signature", sig}});
  }

  std::string id_;
  int64_t sms_ = 0;
};

TEST(ReceiptSignatures, TwilioMatchesItsDocumentedExample) {
  const FormFields params = {{"CallSid", "CA1234567890ABCDE"},
                             {"Caller", "+12349013030"},
                             {"Digits", "1234"},
                             {"From", "+12349013030"},
                             {"To", "+18005551212"}};
  EXPECT_EQ(TwilioSignature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
}

TEST(ReceiptSignatures, VonageSortsParamsAndEscapesValues) {
  // Computed independently (Python's hmac) for the documented construction.
  const FormFields params = ParseForm(
      "messageId=0A0000000123ABCD1&status=delivered&err-code=0&timestamp=1700000000&msisdn="
      "447700900000&to=Herald&scts=2001011400&message-timestamp=2020-01-01+12%3A00%3A00&api-key="
      "abcd1234&client-ref=a%3Db%26c&sig=ignored");
  EXPECT_EQ(VonageSignature("vonage-secret", params),
            "12d4680406366ed3b7cb32cfc6778ef426f2db4b0287d4f3e7431ac2115e0ffb");
  EXPECT_TRUE(VerifyVonage("vonage-secret", params,
                           "12D4680406366ED3B7CB32CFC6778EF426F2DB4B0287D4F3E7431AC2115E0FFB"));
  EXPECT_FALSE(VerifyVonage("other-secret", params,
                            "12D4680406366ED3B7CB32CFC6778EF426F2DB4B0287D4F3E7431AC2115E0FFB"));
}

TEST_F(ReceiptRoutes, TwilioDeliveredMovesTheSentDelivery) {
  receipt_secrets_[tenant_ + "/twilio"] = "auth-token";
  Move(sms_, DeliveryStatus::kSent, "twilio", "SM0001");
  const std::string form = "MessageSid=SM0001&MessageStatus=delivered&AccountSid=AC1&To=%2B8210";

  auto forged = Twilio(form, "not-the-token");
  EXPECT_EQ(forged.status, 403);
  EXPECT_EQ(Code(forged), "invalid_signature");
  EXPECT_EQ(forged.tenant_id, "") << "an unverified call is not attributed to the tenant";
  const std::string target = "/v1/receipts/twilio/" + tenant_;
  const std::string good_sig =
      TwilioSignature("auth-token", "https://herald.example.com" + target, ParseForm(form));
  auto tampered = Post(target, "MessageSid=SM0001&MessageStatus=failed&AccountSid=AC1&To=%2B8210",
                       {{"x-twilio-signature", good_sig}});
  EXPECT_EQ(Code(tampered), "invalid_signature");
  EXPECT_EQ(Code(Post(target, form, {})), "invalid_signature") << "no signature at all";
  EXPECT_EQ(SmsStatus(), "sent") << "refused callbacks changed nothing";

  auto r = Twilio(form, "auth-token");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["recorded"], 1);
  EXPECT_EQ(r.tenant_id, tenant_);
  EXPECT_EQ(SmsStatus(), "delivered");
}

TEST_F(ReceiptRoutes, TwilioFailureKeepsTheErrorCodeAndInterimStatesAreIgnored) {
  receipt_secrets_[tenant_ + "/twilio"] = "auth-token";
  Move(sms_, DeliveryStatus::kSent, "twilio", "SM0002");
  auto r = Twilio("MessageSid=SM0002&MessageStatus=sending", "auth-token");
  EXPECT_EQ(Body(r)["ignored"], 1);
  EXPECT_EQ(SmsStatus(), "sent");
  r = Twilio("MessageSid=SM0002&MessageStatus=undelivered&ErrorCode=30003", "auth-token");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(SmsStatus(), "failed");
  EXPECT_EQ(SmsReason(), "30003");
  r = Twilio("MessageSid=SM9999&MessageStatus=delivered", "auth-token");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Body(r)["unknown"], 1) << "a message id that is not ours is acknowledged, not retried";
}

TEST_F(ReceiptRoutes, TenantWithoutASecretRefusesReceipts) {
  Move(sms_, DeliveryStatus::kSent, "twilio", "SM0003");
  auto r = Twilio("MessageSid=SM0003&MessageStatus=delivered", "auth-token");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Code(r), "receipts_not_configured");
  // Another tenant's secret does not verify this tenant's URL.
  const std::string other = NewTenant();
  receipt_secrets_[other + "/twilio"] = "auth-token";
  EXPECT_EQ(Code(Twilio("MessageSid=SM0003&MessageStatus=delivered", "auth-token")),
            "receipts_not_configured");
  EXPECT_EQ(SmsStatus(), "sent");
}

TEST_F(ReceiptRoutes, VonageJsonAndFormReceipts) {
  receipt_secrets_[tenant_ + "/vonage"] = "sig-secret";
  Move(sms_, DeliveryStatus::kSent, "vonage", "0A01");
  const std::string target = "/v1/receipts/vonage/" + tenant_;
  FormFields params = {{"messageId", "0A01"},
                       {"status", "delivered"},
                       {"err-code", "0"},
                       {"timestamp", UnixSeconds()},
                       {"msisdn", "821022223333"}};
  Json doc = Json::object();
  for (const auto& [k, v] : params) doc[k] = v;
  doc["sig"] = "00" + VonageSignature("sig-secret", params).substr(2);
  EXPECT_EQ(Code(Post(target, doc.dump(), {})), "invalid_signature");
  doc["sig"] = VonageSignature("sig-secret", params);
  auto r = Post(target, doc.dump(), {{"content-type", "application/json"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(SmsStatus(), "delivered");

  Move(sms_, DeliveryStatus::kSent, "vonage", "0A01");
  const std::string ts = UnixSeconds(-1);
  params = {{"messageId", "0A01"}, {"status", "rejected"}, {"err-code", "6"}, {"timestamp", ts}};
  std::string form = "messageId=0A01&status=rejected&err-code=6&timestamp=" + ts +
                     "&sig=" + VonageSignature("sig-secret", params);
  r = Post(target, form, {});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(SmsStatus(), "failed");
  EXPECT_EQ(SmsReason(), "rejected:6");
}

// An ECDSA P-256 key pair as SendGrid holds it: the private half signs, the public half is
// given to Herald as base64 DER.
struct EcKey {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{EVP_EC_gen("P-256"), &EVP_PKEY_free};
  std::string PublicBase64() const {
    unsigned char* der = nullptr;
    const int n = i2d_PUBKEY(key.get(), &der);
    std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
    OPENSSL_free(der);
    return Base64Encode(out);
  }
  std::string Sign(const std::string& payload) const {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get());
    size_t len = 0;
    const auto* data = reinterpret_cast<const unsigned char*>(payload.data());
    EVP_DigestSign(ctx.get(), nullptr, &len, data, payload.size());
    std::string sig(len, '\0');
    EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, data,
                   payload.size());
    sig.resize(len);
    return Base64Encode(sig);
  }
};

TEST_F(ReceiptRoutes, SendGridEventsAreVerifiedWithTheWebhookKey) {
  EcKey sendgrid, impostor;
  ASSERT_TRUE(sendgrid.key && impostor.key);
  receipt_secrets_[tenant_ + "/sendgrid"] = sendgrid.PublicBase64();
  // u1's email device: send a second notification on the email channel.
  auto sent = Send({{"to", {{"users", {"u1"}}}}, {"body", "x"}, {"channels", {"email"}}});
  ASSERT_EQ(sent.status, 202);
  const std::string email_id = Body(sent)["id"];
  auto jobs = FanOut(email_id);
  ASSERT_EQ(jobs.size(), 1u);
  Move(jobs[0].delivery, DeliveryStatus::kSent, "sendgrid", "Ocgw2ZfzR");

  const std::string target = "/v1/receipts/sendgrid/" + tenant_;
  const std::string body =
      Json::array({{{"event", "processed"}, {"sg_message_id", "Ocgw2ZfzR.filter-1"}},
                   {{"event", "bounce"},
                    {"sg_message_id", "Ocgw2ZfzR.filter-1.0"},
                    {"reason", "550 u1@example.com unknown"}},
                   {{"event", "delivered"}, {"sg_message_id", "someoneelse.filter"}}})
          .dump();
  const std::string ts = UnixSeconds();
  auto post = [&](const std::string& b, const std::string& sig) {
    return Post(target, b,
                {{"x-twilio-email-event-webhook-signature", sig},
                 {"x-twilio-email-event-webhook-timestamp", ts}});
  };
  EXPECT_EQ(Code(post(body, impostor.Sign(ts + body))), "invalid_signature");
  EXPECT_EQ(Code(post(body + " ", sendgrid.Sign(ts + body))), "invalid_signature");
  EXPECT_EQ(Code(post(body, "not base64!")), "invalid_signature");

  auto r = post(body, sendgrid.Sign(ts + body));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(
      Body(r),
      (Json{{"recorded", 1}, {"unknown", 1}, {"ignored", 1}, {"duplicates", 0}, {"stale", 0}}));
  auto d = Body(Call("GET", "/v1/notifications/" + email_id + "/deliveries", {}, key_));
  EXPECT_EQ(d["deliveries"][0]["status"], "failed");
  EXPECT_EQ(d["deliveries"][0]["reason"], "bounce") << "the bounce text (with PII) is not kept";

  // A validly signed batch from long ago (a recorded callback replayed) is refused whole.
  const std::string old_ts = "1580000000";
  auto replay = Post(target, body,
                     {{"x-twilio-email-event-webhook-signature", sendgrid.Sign(old_ts + body)},
                      {"x-twilio-email-event-webhook-timestamp", old_ts}});
  EXPECT_EQ(replay.status, 403);
  EXPECT_EQ(Code(replay), "receipt_expired");
  // The same batch again, in time: the bounce is a duplicate now.
  auto again = post(body, sendgrid.Sign(ts + body));
  EXPECT_EQ(Body(again)["duplicates"], 1);
}

TEST_F(ReceiptRoutes, ReplayedTwilioReceiptsNeverMoveADeliveryBackwards) {
  receipt_secrets_[tenant_ + "/twilio"] = "auth-token";
  Move(sms_, DeliveryStatus::kSent, "twilio", "SM0007");
  const std::string delivered = "MessageSid=SM0007&MessageStatus=delivered";
  const std::string failed = "MessageSid=SM0007&MessageStatus=failed&ErrorCode=30008";
  // The provider's first word was `failed`; an attacker who recorded an earlier `delivered`
  // (validly signed: Twilio signs no time) replays it.
  ASSERT_EQ(Body(Twilio(failed, "auth-token"))["recorded"], 1);
  auto replay = Twilio(delivered, "auth-token");
  ASSERT_EQ(replay.status, 200) << replay.body;
  EXPECT_EQ(Body(replay)["stale"], 1);
  EXPECT_EQ(Body(replay)["recorded"], 0);
  EXPECT_EQ(SmsStatus(), "failed");
  auto again = Twilio(failed, "auth-token");
  EXPECT_EQ(Body(again)["duplicates"], 1);
  EXPECT_EQ(SmsStatus(), "failed");
  EXPECT_EQ(SmsReason(), "30008");
}

TEST_F(ReceiptRoutes, VonageReceiptsSignedLongAgoOrWithoutATimestampAreRefused) {
  receipt_secrets_[tenant_ + "/vonage"] = "sig-secret";
  Move(sms_, DeliveryStatus::kSent, "vonage", "0A02");
  const std::string target = "/v1/receipts/vonage/" + tenant_;
  auto signed_form = [](const FormFields& params) {
    std::string form;
    for (const auto& [k, v] : params) form.append(k).append("=").append(v).append("&");
    return form + "sig=" + VonageSignature("sig-secret", params);
  };
  const FormFields from_2020 = {
      {"messageId", "0A02"}, {"status", "delivered"}, {"timestamp", "1580000000"}};
  auto old = Post(target, signed_form(from_2020), {});
  EXPECT_EQ(old.status, 403);
  EXPECT_EQ(Code(old), "receipt_expired");
  const FormFields untimed = {{"messageId", "0A02"}, {"status", "delivered"}};
  EXPECT_EQ(Code(Post(target, signed_form(untimed), {})), "receipt_expired");
  const FormFields future = {
      {"messageId", "0A02"}, {"status", "delivered"}, {"timestamp", UnixSeconds(3600)}};
  EXPECT_EQ(Code(Post(target, signed_form(future), {})), "receipt_expired");
  EXPECT_EQ(SmsStatus(), "sent") << "refused receipts changed nothing";
  const FormFields fresh = {
      {"messageId", "0A02"}, {"status", "delivered"}, {"timestamp", UnixSeconds(-30)}};
  auto ok = Post(target, signed_form(fresh), {});
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(SmsStatus(), "delivered");
  // The same fresh receipt again: a duplicate, acknowledged and changing nothing.
  EXPECT_EQ(Body(Post(target, signed_form(fresh), {}))["duplicates"], 1);
}

TEST_F(ReceiptRoutes, VonageJsonWithOverflowingNumbersIsRefusedNot500) {
  receipt_secrets_[tenant_ + "/vonage"] = "sig-secret";
  const std::string target = "/v1/receipts/vonage/" + tenant_;
  for (const std::string body : {R"({"messageId":"0A03","status":"delivered","timestamp":1e400})",
                                 R"({"messageId":"0A03","status":-1e400})", R"({"a":1,"a":2})"}) {
    auto r = Post(target, body, {{"content-type", "application/json"}});
    EXPECT_EQ(r.status, 403) << body << " " << r.body;
    EXPECT_EQ(Code(r), "invalid_signature") << body;
  }
}

}  // namespace
}  // namespace herald::api

#include "sim/jwt_verify.h"

#include "sim/sim_test_support.h"

namespace herald::sim::testing {
namespace {

TEST(ApnsTokenVerifierTest, RegisteredKeyVerifiesSignatureOnceThenCaches) {
  Es256Key key;
  ApnsTokenVerifier verifier;
  ASSERT_TRUE(verifier.RegisterKey("KID", key.PublicPem()).ok());
  const int64_t now = Now();
  std::string jwt = key.ApnsJwt("KID", now);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(verifier.Check(jwt, now), ApnsTokenCheck::kOk);
  EXPECT_EQ(verifier.cached_tokens(), 1u);
  // A cached token still expires an hour after its iat.
  EXPECT_EQ(verifier.Check(jwt, now + 3601), ApnsTokenCheck::kExpired);
  Es256Key other;
  EXPECT_EQ(verifier.Check(other.ApnsJwt("KID", now), now), ApnsTokenCheck::kInvalid);
  EXPECT_EQ(verifier.cached_tokens(), 1u);  // failures are not cached
}

TEST(ApnsTokenVerifierTest, RejectsMalformedTokensAndFutureIat) {
  Es256Key key;
  ApnsTokenVerifier verifier;
  const int64_t now = Now();
  EXPECT_EQ(verifier.Check(key.ApnsJwt("KID", now), now), ApnsTokenCheck::kOk);  // no key: shape
  EXPECT_EQ(verifier.Check(key.ApnsJwt("KID", now + 3600), now), ApnsTokenCheck::kInvalid);
  EXPECT_EQ(verifier.Check("a.b.c", now), ApnsTokenCheck::kInvalid);
  EXPECT_EQ(verifier.Check("onlyonepart", now), ApnsTokenCheck::kInvalid);
  EXPECT_EQ(verifier.Check(key.Jwt({{"alg", "ES256"}}, {{"iss", "T"}, {"iat", now}}), now),
            ApnsTokenCheck::kInvalid);  // no kid
  EXPECT_EQ(verifier.Check(key.Jwt({{"alg", "ES256"}, {"kid", "K"}}, {{"iat", now}}), now),
            ApnsTokenCheck::kInvalid);  // no iss
  // Registering a key drops cached structure-only verdicts for every kid.
  std::string unsigned_for_kid = key.ApnsJwt("KID", now);
  Es256Key registered;
  ASSERT_TRUE(verifier.RegisterKey("KID", registered.PublicPem()).ok());
  EXPECT_EQ(verifier.Check(unsigned_for_kid, now), ApnsTokenCheck::kInvalid);
}

TEST(ApnsTokenVerifierTest, KeyRegistrationAcceptsOnlyP256) {
  ApnsTokenVerifier verifier;
  EXPECT_FALSE(verifier.RegisterKey("K", "not pem").ok());
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> p384(EVP_EC_gen("P-384"), EVP_PKEY_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PUBKEY(bio.get(), p384.get());
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  EXPECT_FALSE(verifier.RegisterKey("K", std::string(data, static_cast<size_t>(n))).ok());
}

TEST(VerifyEs256Test, ChecksRawSignatures) {
  Es256Key key;
  std::string sig = key.Sign("payload");
  ASSERT_EQ(sig.size(), 64u);
  EXPECT_TRUE(VerifyEs256(key.get(), "payload", sig));
  EXPECT_FALSE(VerifyEs256(key.get(), "payloaD", sig));
  sig[10] ^= 1;
  EXPECT_FALSE(VerifyEs256(key.get(), "payload", sig));
  EXPECT_FALSE(VerifyEs256(key.get(), "payload", sig.substr(0, 63)));
}

TEST(FcmAssertionTest, ChecksClaims) {
  const int64_t now = Now();
  auto make = [](const json& claims) {
    return crypto::Base64UrlEncode(R"({"alg":"RS256","typ":"JWT"})") + "." +
           crypto::Base64UrlEncode(claims.dump()) + ".c2lnbmF0dXJl";
  };
  json good = {{"iss", "svc@p.iam.gserviceaccount.com"},
               {"scope", "https://www.googleapis.com/auth/firebase.messaging"},
               {"aud", "https://oauth2.googleapis.com/token"},
               {"iat", now},
               {"exp", now + 3600}};
  FcmAssertion ok = CheckFcmAssertion(make(good), now);
  EXPECT_TRUE(ok.ok) << ok.error;
  EXPECT_EQ(ok.iss, "svc@p.iam.gserviceaccount.com");
  for (auto [field, value] :
       std::vector<std::pair<std::string, json>>{{"aud", "https://example.com/other"},
                                                 {"exp", now + 3601},
                                                 {"exp", now - 10},
                                                 {"iat", "yesterday"},
                                                 {"scope", "email"}}) {
    json claims = good;
    claims[field] = value;
    EXPECT_FALSE(CheckFcmAssertion(make(claims), now).ok) << field << "=" << value;
  }
  FcmAccessTokens tokens;
  std::string token = tokens.Issue(now, 3600);
  EXPECT_TRUE(tokens.Valid(token, now));
  EXPECT_FALSE(tokens.Valid(token, now + 3600));
  EXPECT_FALSE(tokens.Valid("sim-unknown", now));
}

}  // namespace
}  // namespace herald::sim::testing

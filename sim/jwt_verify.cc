#include "sim/jwt_verify.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/pem.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "crypto/crypto.h"

namespace herald::sim {
namespace {

using nlohmann::json;

constexpr int64_t kApnsTokenLifetimeS = 3600;
constexpr int64_t kFutureSkewS = 300;
constexpr std::string_view kFcmScope = "https://www.googleapis.com/auth/firebase.messaging";

struct JwtParts {
  std::string_view header, claims, signature, signing_input;
};

std::optional<JwtParts> Split(std::string_view jwt) {
  size_t a = jwt.find('.');
  if (a == std::string_view::npos) return std::nullopt;
  size_t b = jwt.find('.', a + 1);
  if (b == std::string_view::npos || jwt.find('.', b + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  JwtParts p{jwt.substr(0, a), jwt.substr(a + 1, b - a - 1), jwt.substr(b + 1), jwt.substr(0, b)};
  if (p.header.empty() || p.claims.empty() || p.signature.empty()) return std::nullopt;
  return p;
}

// Decodes a base64url JSON object; a discarded json on any failure.
json DecodeObject(std::string_view part) {
  auto text = crypto::Base64UrlDecode(part);
  if (!text.ok()) return json(json::value_t::discarded);
  json doc = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return json(json::value_t::discarded);
  return doc;
}

bool NonEmptyString(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() && !it->get_ref<const std::string&>().empty();
}

std::optional<int64_t> IntClaim(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number()) return std::nullopt;
  return it->is_number_integer() ? it->get<int64_t>() : static_cast<int64_t>(it->get<double>());
}

}  // namespace

bool VerifyEs256(EVP_PKEY* key, std::string_view signing_input, std::string_view sig) {
  if (key == nullptr || sig.size() != 64) return false;
  const auto* raw = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* ecdsa = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(raw, 32, nullptr);
  BIGNUM* s = BN_bin2bn(raw + 32, 32, nullptr);
  if (ecdsa == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(ecdsa, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(ecdsa);
    return false;
  }
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(ecdsa, &der);
  ECDSA_SIG_free(ecdsa);
  if (der_len <= 0) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx != nullptr && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(ctx, der, static_cast<size_t>(der_len),
                             reinterpret_cast<const unsigned char*>(signing_input.data()),
                             signing_input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  OPENSSL_free(der);
  return ok;
}

// ---- ApnsTokenVerifier -------------------------------------------------------------------------

Status ApnsTokenVerifier::RegisterKey(const std::string& kid, std::string_view pem) {
  if (kid.empty()) {
    return MakeError(ErrorKind::kMalformed, "invalid_kid", "The key id must not be empty.", "kid");
  }
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return MakeError(ErrorKind::kInternal, "internal", "BIO_new_mem_buf failed.");
  EVP_PKEY* key = pem.find("PRIVATE KEY") != std::string_view::npos
                      ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr)
                      : PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  KeyPtr owned(key, EVP_PKEY_free);
  char group[64] = {0};
  size_t group_len = 0;
  if (key == nullptr || !EVP_PKEY_is_a(key, "EC") ||
      EVP_PKEY_get_group_name(key, group, sizeof(group), &group_len) != 1 ||
      std::string_view(group, group_len) != "prime256v1") {
    return MakeError(ErrorKind::kMalformed, "invalid_public_key",
                     "public_key_pem must be a PEM P-256 public key (or the team's .p8 key).",
                     "public_key_pem");
  }
  {
    std::lock_guard lock(keys_mu_);
    keys_[kid] = std::move(owned);
  }
  ClearCache();
  return Status::Ok();
}

bool ApnsTokenVerifier::RemoveKey(const std::string& kid) {
  size_t erased = 0;
  {
    std::lock_guard lock(keys_mu_);
    erased = keys_.erase(kid);
  }
  ClearCache();
  return erased > 0;
}

ApnsTokenVerifier::KeyPtr ApnsTokenVerifier::FindKey(const std::string& kid) const {
  std::lock_guard lock(keys_mu_);
  auto it = keys_.find(kid);
  return it == keys_.end() ? nullptr : it->second;
}

void ApnsTokenVerifier::ClearCache() {
  for (Shard& shard : cache_) {
    std::unique_lock lock(shard.mu);
    shard.iat_by_token.clear();
  }
}

size_t ApnsTokenVerifier::cached_tokens() const {
  size_t n = 0;
  for (const Shard& shard : cache_) {
    std::shared_lock lock(shard.mu);
    n += shard.iat_by_token.size();
  }
  return n;
}

ApnsTokenCheck ApnsTokenVerifier::Verify(std::string_view jwt, int64_t now_s, int64_t& iat) const {
  auto parts = Split(jwt);
  if (!parts) return ApnsTokenCheck::kInvalid;
  json header = DecodeObject(parts->header);
  json claims = DecodeObject(parts->claims);
  if (header.is_discarded() || claims.is_discarded()) return ApnsTokenCheck::kInvalid;
  auto alg = header.find("alg");
  if (alg == header.end() || *alg != "ES256" || !NonEmptyString(header, "kid") ||
      !NonEmptyString(claims, "iss")) {
    return ApnsTokenCheck::kInvalid;
  }
  auto issued = IntClaim(claims, "iat");
  if (!issued) return ApnsTokenCheck::kInvalid;
  auto sig = crypto::Base64UrlDecode(parts->signature);
  if (!sig.ok() || sig->size() != 64) return ApnsTokenCheck::kInvalid;
  KeyPtr key = FindKey(header["kid"].get<std::string>());
  if (key && !VerifyEs256(key.get(), parts->signing_input, *sig)) {
    return ApnsTokenCheck::kInvalid;
  }
  if (*issued > now_s + kFutureSkewS) return ApnsTokenCheck::kInvalid;
  iat = *issued;
  return ApnsTokenCheck::kOk;
}

ApnsTokenCheck ApnsTokenVerifier::Check(std::string_view jwt, int64_t now_s) {
  Shard& shard = cache_[std::hash<std::string_view>{}(jwt) % kShards];
  {
    std::shared_lock lock(shard.mu);
    auto it = shard.iat_by_token.find(jwt);
    if (it != shard.iat_by_token.end()) {
      return now_s - it->second > kApnsTokenLifetimeS ? ApnsTokenCheck::kExpired
                                                      : ApnsTokenCheck::kOk;
    }
  }
  int64_t iat = 0;
  ApnsTokenCheck verdict = Verify(jwt, now_s, iat);
  if (verdict != ApnsTokenCheck::kOk) return verdict;
  if (now_s - iat > kApnsTokenLifetimeS) return ApnsTokenCheck::kExpired;
  std::unique_lock lock(shard.mu);
  if (shard.iat_by_token.size() >= kMaxPerShard) shard.iat_by_token.clear();
  shard.iat_by_token.emplace(jwt, iat);
  return ApnsTokenCheck::kOk;
}

// ---- FCM -------------------------------------------------------------------------------------

FcmAssertion CheckFcmAssertion(std::string_view jwt, int64_t now_s) {
  FcmAssertion out;
  auto parts = Split(jwt);
  if (!parts) {
    out.error = "Invalid JWT: the assertion must have three base64url parts.";
    return out;
  }
  json header = DecodeObject(parts->header);
  json claims = DecodeObject(parts->claims);
  if (header.is_discarded() || claims.is_discarded() ||
      !crypto::Base64UrlDecode(parts->signature).ok()) {
    out.error = "Invalid JWT: a part is not base64url-encoded JSON.";
    return out;
  }
  auto alg = header.find("alg");
  if (alg == header.end() || *alg != "RS256") {
    out.error = "Invalid JWT: the header's alg must be RS256.";
    return out;
  }
  if (!NonEmptyString(claims, "iss")) {
    out.error = "Invalid JWT: iss (the service account's client_email) is missing.";
    return out;
  }
  if (!NonEmptyString(claims, "scope") ||
      claims["scope"].get_ref<const std::string&>().find(kFcmScope) == std::string::npos) {
    out.error = "Invalid JWT: scope must include " + std::string(kFcmScope) + ".";
    return out;
  }
  if (!NonEmptyString(claims, "aud")) {
    out.error = "Invalid JWT: aud (the token endpoint URL) is missing.";
    return out;
  }
  const auto& aud = claims["aud"].get_ref<const std::string&>();
  if (aud.size() < 6 || aud.compare(aud.size() - 6, 6, "/token") != 0) {
    out.error = "Invalid JWT: aud must be the token endpoint URL.";
    return out;
  }
  auto iat = IntClaim(claims, "iat");
  auto exp = IntClaim(claims, "exp");
  if (!iat || !exp) {
    out.error = "Invalid JWT: iat and exp must be numbers.";
    return out;
  }
  if (*exp <= *iat || *exp > *iat + 3600) {
    out.error = "Invalid JWT: exp must be after iat and at most one hour later.";
    return out;
  }
  if (*exp <= now_s) {
    out.error =
        "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
        "timeframe. Check your iat and exp values in the JWT claim.";
    return out;
  }
  if (*iat > now_s + kFutureSkewS) {
    out.error = "Invalid JWT: iat is in the future.";
    return out;
  }
  out.ok = true;
  out.iss = claims["iss"].get<std::string>();
  return out;
}

std::string FcmAccessTokens::Issue(int64_t now_s, int64_t ttl_s) {
  std::string token = crypto::RandomId("sim-", 40);
  std::unique_lock lock(mu_);
  if (expiry_.size() > 100'000) std::erase_if(expiry_, [&](auto& e) { return e.second <= now_s; });
  expiry_.emplace(token, now_s + ttl_s);
  return token;
}

bool FcmAccessTokens::Valid(std::string_view token, int64_t now_s) const {
  std::shared_lock lock(mu_);
  auto it = expiry_.find(token);
  return it != expiry_.end() && it->second > now_s;
}

}  // namespace herald::sim

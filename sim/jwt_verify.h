// Provider credentials as the simulator checks them.
//
// APNs provider tokens (ES256 JWTs). The simulator cannot know a team's key in advance, so:
//   - a key registered for the token's `kid` (PUT /sim/apns/keys/{kid}) makes the check full:
//     structure, claims and the ES256 signature (raw R||S, 64 bytes, over
//     base64url(header) "." base64url(claims)) against that key;
//   - with no key registered for the `kid`, only structure, claims and iat freshness are
//     checked (the signature must still be 64 bytes of base64url).
// Either way iat older than 60 minutes is ExpiredProviderToken (also for cached tokens) and iat
// more than 5 minutes in the future is InvalidProviderToken. Each distinct token string is
// verified once and then found in a sharded cache, so verification is not the bottleneck.
// Registering or removing a key empties the cache.
//
// FCM: the OAuth2 token endpoint's RS256 assertion is checked for structure and claims only
// (the simulator has no service-account public keys); access tokens it issues are remembered
// until they expire.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.h"

namespace herald::sim {

// Transparent hashing, so string_view lookups allocate nothing.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

enum class ApnsTokenCheck { kOk, kInvalid, kExpired };

class ApnsTokenVerifier {
 public:
  // `pem`: a SubjectPublicKeyInfo ("BEGIN PUBLIC KEY") or PKCS#8 private key ("BEGIN PRIVATE
  // KEY", the team's .p8; its public half is kept). Must be a P-256 key.
  Status RegisterKey(const std::string& kid, std::string_view pem);
  bool RemoveKey(const std::string& kid);
  ApnsTokenCheck Check(std::string_view jwt, int64_t now_s);
  size_t cached_tokens() const;

 private:
  using KeyPtr = std::shared_ptr<EVP_PKEY>;
  ApnsTokenCheck Verify(std::string_view jwt, int64_t now_s, int64_t& iat) const;
  KeyPtr FindKey(const std::string& kid) const;
  void ClearCache();

  static constexpr size_t kShards = 16;
  static constexpr size_t kMaxPerShard = 1 << 14;
  struct Shard {
    mutable std::shared_mutex mu;
    StringMap<int64_t> iat_by_token;
  };
  std::array<Shard, kShards> cache_;
  mutable std::mutex keys_mu_;
  std::unordered_map<std::string, KeyPtr> keys_;
};

// Verifies an ES256 JWS signature: `sig` is raw R||S (64 bytes). Exposed for tests.
bool VerifyEs256(EVP_PKEY* key, std::string_view signing_input, std::string_view sig);

// Checks the jwt-bearer assertion of the FCM token endpoint: three base64url parts, header alg
// RS256, claims iss (non-empty), scope containing the firebase.messaging scope, aud ending in
// "/token", numeric iat and exp with iat < exp <= iat + 3600, not expired, iat not in the future
// by more than 5 minutes. On failure `error` is the OAuth2 error description.
struct FcmAssertion {
  bool ok = false;
  std::string error;
  std::string iss;
};
FcmAssertion CheckFcmAssertion(std::string_view jwt, int64_t now_s);

class FcmAccessTokens {
 public:
  // Mints "sim-<random>" valid for `ttl_s`.
  std::string Issue(int64_t now_s, int64_t ttl_s);
  bool Valid(std::string_view token, int64_t now_s) const;

 private:
  mutable std::shared_mutex mu_;
  StringMap<int64_t> expiry_;
};

}  // namespace herald::sim

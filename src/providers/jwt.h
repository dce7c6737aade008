// JSON Web Tokens as the providers need them: ES256 (APNs token auth, a .p8 P-256 key) and
// RS256 (a Google service account's RSA key for the FCM OAuth2 exchange), signed with OpenSSL.
// Thread-safe: a Signer is immutable after Make and may be shared.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace herald::providers {

class JwtSigner {
 public:
  enum class Alg { kES256, kRS256 };
  // Parses a PEM private key (PKCS#8 "BEGIN PRIVATE KEY", or EC/RSA specific forms). Fails
  // with kInvalid "invalid_private_key" when it is not a key of the algorithm's type.
  static Result<std::shared_ptr<const JwtSigner>> Make(Alg alg, std::string_view pem);
  ~JwtSigner();

  // base64url(header).base64url(claims).base64url(signature); header and claims are JSON texts.
  // ES256 signatures are the raw 64-byte R||S that JWS wants (OpenSSL gives DER: converted).
  Result<std::string> Sign(std::string_view header_json, std::string_view claims_json) const;

 private:
  JwtSigner(Alg alg, void* key) : alg_(alg), key_(key) {}
  Alg alg_;
  void* key_;  // EVP_PKEY*
};

}  // namespace herald::providers

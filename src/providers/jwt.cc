#include "providers/jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "crypto/crypto.h"

namespace herald::providers {
namespace {

Error BadKey(std::string why) {
  return MakeError(ErrorKind::kInvalid, "invalid_private_key", std::move(why), "private_key");
}

}  // namespace

Result<std::shared_ptr<const JwtSigner>> JwtSigner::Make(Alg alg, std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return BadKey("The private key could not be read.");
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr) return BadKey("private_key must be a PEM private key.");
  const int type = EVP_PKEY_base_id(key);
  if ((alg == Alg::kES256 && type != EVP_PKEY_EC) || (alg == Alg::kRS256 && type != EVP_PKEY_RSA)) {
    EVP_PKEY_free(key);
    return BadKey(alg == Alg::kES256 ? "private_key must be an EC P-256 key (the .p8 file)."
                                     : "private_key must be an RSA key (the service account's).");
  }
  return std::shared_ptr<const JwtSigner>(new JwtSigner(alg, key));
}

JwtSigner::~JwtSigner() { EVP_PKEY_free(static_cast<EVP_PKEY*>(key_)); }

Result<std::string> JwtSigner::Sign(std::string_view header_json,
                                    std::string_view claims_json) const {
  const std::string input =
      crypto::Base64UrlEncode(header_json) + "." + crypto::Base64UrlEncode(claims_json);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  std::string sig;
  bool ok =
      ctx != nullptr &&
      EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, static_cast<EVP_PKEY*>(key_)) == 1 &&
      EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                     input.size()) == 1;
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                        reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
    sig.resize(len);
  }
  EVP_MD_CTX_free(ctx);
  if (!ok) return MakeError(ErrorKind::kInternal, "jwt_sign_failed", "Signing the JWT failed.");
  if (alg_ == Alg::kES256) {
    // DER ECDSA-Sig-Value → raw R||S, 32 bytes each.
    const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* der = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    if (der == nullptr) {
      return MakeError(ErrorKind::kInternal, "jwt_sign_failed", "Bad ECDSA signature.");
    }
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(der), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(der), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(der);
    sig = std::move(raw);
  }
  return input + "." + crypto::Base64UrlEncode(sig);
}

}  // namespace herald::providers

#include "api/receipt_signatures.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <memory>

#include "common/percent.h"
#include "crypto/crypto.h"

namespace herald::api {
namespace {

std::string Hmac(const EVP_MD* md, std::string_view key, std::string_view message) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

FormFields SortedByName(FormFields params) {
  std::stable_sort(params.begin(), params.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  return params;
}

bool Base64Decode(std::string_view text, std::string& out) {
  std::string clean;
  for (char c : text) {
    if (!std::isspace(static_cast<unsigned char>(c))) clean.push_back(c);
  }
  if (clean.empty() || clean.size() % 4 != 0) return false;
  out.assign(clean.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(clean.data()),
                                static_cast<int>(clean.size()));
  if (n < 0) return false;
  size_t pad = 0;
  if (clean.back() == '=') ++pad;
  if (clean.size() > 1 && clean[clean.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return true;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

using PKey = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

PKey ReadPublicKey(std::string_view text) {
  if (text.find("-----BEGIN") != std::string_view::npos) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), &BIO_free);
    return PKey(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr,
                &EVP_PKEY_free);
  }
  std::string der;
  if (!Base64Decode(text, der)) return PKey(nullptr, &EVP_PKEY_free);
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  return PKey(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())), &EVP_PKEY_free);
}

}  // namespace

FormFields ParseForm(std::string_view text) {
  FormFields out;
  while (!text.empty()) {
    const size_t amp = text.find('&');
    const std::string_view pair = text.substr(0, amp);
    if (!pair.empty()) {
      const size_t eq = pair.find('=');
      out.emplace_back(
          PercentDecode(pair.substr(0, eq), true),
          eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1), true));
    }
    if (amp == std::string_view::npos) break;
    text.remove_prefix(amp + 1);
  }
  return out;
}

std::string_view FormValue(const FormFields& form, std::string_view name) {
  for (const auto& [k, v] : form) {
    if (k == name) return v;
  }
  return {};
}

std::string Base64Encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()),
                                static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string TwilioSignature(std::string_view auth_token, std::string_view url,
                            const FormFields& params) {
  std::string message(url);
  for (const auto& [name, value] : SortedByName(params)) message += name + value;
  return Base64Encode(Hmac(EVP_sha1(), auth_token, message));
}

bool VerifyTwilio(std::string_view auth_token, std::string_view url, const FormFields& params,
                  std::string_view signature) {
  return !signature.empty() &&
         crypto::ConstantTimeEquals(TwilioSignature(auth_token, url, params), signature);
}

std::string VonageSignature(std::string_view secret, const FormFields& params) {
  std::string message;
  for (auto [name, value] : SortedByName(params)) {
    if (name == "sig") continue;
    std::replace(value.begin(), value.end(), '&', '_');
    std::replace(value.begin(), value.end(), '=', '_');
    message += '&';
    message += name;
    message += '=';
    message += value;
  }
  const std::string mac = Hmac(EVP_sha256(), secret, message);
  return crypto::ToHex(reinterpret_cast<const uint8_t*>(mac.data()), mac.size());
}

bool VerifyVonage(std::string_view secret, const FormFields& params, std::string_view sig) {
  return !sig.empty() &&
         crypto::ConstantTimeEquals(Lower(VonageSignature(secret, params)), Lower(sig));
}

bool VerifySendGrid(std::string_view public_key, std::string_view timestamp, std::string_view body,
                    std::string_view signature) {
  PKey key = ReadPublicKey(public_key);
  std::string der;
  if (!key || !Base64Decode(signature, der)) return false;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1) {
    return false;
  }
  std::string payload(timestamp);
  payload += body;
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(der.data()), der.size(),
                          reinterpret_cast<const unsigned char*>(payload.data()),
                          payload.size()) == 1;
}

}  // namespace herald::api

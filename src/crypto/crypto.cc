#include "crypto/crypto.h"

#include <pthread.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <cstring>

namespace herald::crypto {
namespace {

constexpr char kBase32Alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
constexpr std::string_view kApiKeyPrefix = "hk_";
constexpr std::string_view kKeyIdPrefix = "key_";
constexpr size_t kKeyIdChars = 20;
constexpr size_t kSecretChars = 43;  // base64url of 32 bytes, no padding
constexpr size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr size_t kBlindIndexBytes = 16;
constexpr char kKdfContext[crypto_kdf_CONTEXTBYTES + 1] = "heraldpi";

static_assert(kKeyBytes == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
static_assert(kKeyBytes == crypto_kdf_KEYBYTES);
static_assert(crypto_hash_sha256_BYTES == 32);

const unsigned char* U(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

bool IsBase32Char(char c) { return (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'); }

bool IsBase64UrlChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

Error Unauthenticated() {
  return MakeError(ErrorKind::kUnauthenticated, "invalid_api_key",
                   "The bearer token is not a Herald API key; send the key exactly as it was "
                   "issued (it starts with \"hk_\").");
}

Result<Bytes> DecodeBase64(std::string_view data, int variant) {
  Bytes out(data.size() / 4 * 3 + 3);
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), data.data(), data.size(), nullptr, &len, &end,
                        variant) != 0 ||
      end != data.data() + data.size()) {
    return MakeError(ErrorKind::kMalformed, "invalid_base64",
                     "The value is not valid base64 of the expected variant.");
  }
  out.resize(len);
  return out;
}

// Seal and RandomId run hundreds of thousands of times a second during imports, and one
// getrandom() per nonce or id would cost more than the encryption. Each thread draws from a pool
// of CSPRNG output refilled 4 KiB at a time; every byte is handed out once. A forked child must
// never reuse its parent's pool (the same nonce under the same key breaks XChaCha20-Poly1305),
// so a fork bumps a generation counter that invalidates every pool.
std::atomic<uint64_t> g_fork_generation{0};

void OnForkInChild() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

struct RandomPool {
  uint8_t bytes[4096];
  size_t used = sizeof bytes;
  uint64_t generation = 0;
};

void FillRandom(uint8_t* out, size_t n) {
  thread_local RandomPool pool;
  const uint64_t generation = g_fork_generation.load(std::memory_order_relaxed);
  if (pool.generation != generation) pool.used = sizeof pool.bytes;
  while (n > 0) {
    if (pool.used == sizeof pool.bytes) {
      randombytes_buf(pool.bytes, sizeof pool.bytes);
      pool.used = 0;
      pool.generation = generation;
    }
    const size_t take = std::min(n, sizeof pool.bytes - pool.used);
    std::memcpy(out, pool.bytes + pool.used, take);
    sodium_memzero(pool.bytes + pool.used, take);  // handed out: not kept in memory
    pool.used += take;
    out += take;
    n -= take;
  }
}

}  // namespace

bool InitCrypto() {
  static const bool ok = [] {
    pthread_atfork(nullptr, nullptr, OnForkInChild);
    return sodium_init() >= 0;
  }();
  return ok;
}

std::string RandomId(std::string_view prefix, size_t n) {
  InitCrypto();
  std::string id(prefix);
  id.resize(prefix.size() + n);
  // 256 is a multiple of 32, so masking each byte keeps every character uniform.
  FillRandom(reinterpret_cast<uint8_t*>(id.data() + prefix.size()), n);
  for (size_t i = prefix.size(); i < id.size(); ++i) {
    id[i] = kBase32Alphabet[static_cast<unsigned char>(id[i]) & 31];
  }
  return id;
}

Key RandomKey() {
  InitCrypto();
  Key key;
  randombytes_buf(key.data(), key.size());
  return key;
}

std::string ToHex(const uint8_t* data, size_t n) {
  std::string out(n * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), data, n);
  out.resize(n * 2);
  return out;
}

Result<Bytes> FromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) {
    return MakeError(ErrorKind::kMalformed, "invalid_hex",
                     "Hex text must have an even number of characters.");
  }
  if (hex.empty()) return Bytes{};
  Bytes out(hex.size() / 2);
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_hex2bin(out.data(), out.size(), hex.data(), hex.size(), nullptr, &len, &end) != 0 ||
      end != hex.data() + hex.size() || len != out.size()) {
    return MakeError(ErrorKind::kMalformed, "invalid_hex",
                     "Hex text may hold only the characters 0-9, a-f and A-F.");
  }
  return out;
}

std::string Base64UrlEncode(std::string_view data) {
  constexpr int kVariant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  std::string out(sodium_base64_ENCODED_LEN(data.size(), kVariant), '\0');
  sodium_bin2base64(out.data(), out.size(), U(data), data.size(), kVariant);
  out.resize(std::strlen(out.c_str()));
  return out;
}

Result<std::string> Base64UrlDecode(std::string_view data) {
  auto bytes = DecodeBase64(data, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  if (!bytes.ok()) {
    return MakeError(ErrorKind::kMalformed, "invalid_base64url",
                     "The value is not base64url without padding (A-Z, a-z, 0-9, '-' and '_').");
  }
  return std::string(bytes->begin(), bytes->end());
}

// ---- API keys --------------------------------------------------------------------------------

MintedApiKey MintApiKey() {
  MintedApiKey key;
  key.id = RandomId(kKeyIdPrefix, kKeyIdChars);
  Key secret_bytes = RandomKey();
  key.secret.reserve(kApiKeyPrefix.size() + kKeyIdChars + 1 + kSecretChars);
  key.secret.append(kApiKeyPrefix);
  key.secret.append(key.id, kKeyIdPrefix.size());
  key.secret.push_back('_');
  key.secret.append(Base64UrlEncode(
      std::string_view(reinterpret_cast<const char*>(secret_bytes.data()), secret_bytes.size())));
  sodium_memzero(secret_bytes.data(), secret_bytes.size());
  key.hash = Sha256(key.secret);
  return key;
}

Result<std::string> ApiKeyIdOf(std::string_view presented) {
  constexpr size_t kIdStart = kApiKeyPrefix.size();
  constexpr size_t kSecretStart = kIdStart + kKeyIdChars + 1;
  if (presented.size() != kSecretStart + kSecretChars ||
      presented.substr(0, kApiKeyPrefix.size()) != kApiKeyPrefix ||
      presented[kSecretStart - 1] != '_') {
    return Unauthenticated();
  }
  const std::string_view id = presented.substr(kIdStart, kKeyIdChars);
  const std::string_view secret = presented.substr(kSecretStart);
  for (char c : id) {
    if (!IsBase32Char(c)) return Unauthenticated();
  }
  for (char c : secret) {
    if (!IsBase64UrlChar(c)) return Unauthenticated();
  }
  // The last character carries 2 padding bits that must be zero for a key this code minted.
  if (auto decoded = Base64UrlDecode(secret); !decoded.ok() || decoded->size() != kKeyBytes) {
    return Unauthenticated();
  }
  std::string key_id(kKeyIdPrefix);
  key_id.append(id);
  return key_id;
}

bool VerifyApiKey(std::string_view presented, const Bytes& stored_hash) {
  if (stored_hash.size() != crypto_hash_sha256_BYTES) return false;
  const Bytes hash = Sha256(presented);
  return sodium_memcmp(hash.data(), stored_hash.data(), hash.size()) == 0;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Comparing digests keeps the time independent of where (and whether) the contents differ.
  const Bytes ha = Sha256(a);
  const Bytes hb = Sha256(b);
  const bool same_digest = sodium_memcmp(ha.data(), hb.data(), ha.size()) == 0;
  return same_digest & (a.size() == b.size());
}

// ---- Master key and tenant data keys ---------------------------------------------------------

Result<Key> ParseMasterKey(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n\v\f";
  const size_t first = text.find_first_not_of(kSpace);
  text = first == std::string_view::npos
             ? std::string_view()
             : text.substr(first, text.find_last_not_of(kSpace) - first + 1);
  Bytes bytes;
  if (text.size() == 2 * kKeyBytes) {
    if (auto hex = FromHex(text); hex.ok()) bytes = std::move(hex.value());
  }
  if (bytes.empty() && (text.size() == 43 || text.size() == 44)) {
    for (int variant : {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                        sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING}) {
      if (auto b64 = DecodeBase64(text, variant); b64.ok() && b64->size() == kKeyBytes) {
        bytes = std::move(b64.value());
        break;
      }
    }
  }
  if (bytes.size() != kKeyBytes) {
    return MakeError(ErrorKind::kInvalid, "invalid_master_key",
                     "The master key must be 32 bytes written as 64 hex characters or as 43-44 "
                     "characters of base64 or base64url.");
  }
  Key key;
  std::memcpy(key.data(), bytes.data(), key.size());
  sodium_memzero(bytes.data(), bytes.size());
  return key;
}

std::string FormatMasterKey(const Key& key) { return ToHex(key.data(), key.size()); }

Bytes WrapDataKey(const Key& master, const Key& data_key, std::string_view tenant_id) {
  InitCrypto();
  Bytes out(kNonceBytes + kKeyBytes + kTagBytes);
  randombytes_buf(out.data(), kNonceBytes);
  unsigned long long len = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out.data() + kNonceBytes, &len, data_key.data(),
                                             data_key.size(), U(tenant_id), tenant_id.size(),
                                             nullptr, out.data(), master.data());
  return out;
}

Result<Key> UnwrapDataKey(const Key& master, const Bytes& wrapped, std::string_view tenant_id) {
  Key key;
  unsigned long long len = 0;
  if (wrapped.size() != kNonceBytes + kKeyBytes + kTagBytes ||
      crypto_aead_xchacha20poly1305_ietf_decrypt(
          key.data(), &len, nullptr, wrapped.data() + kNonceBytes, wrapped.size() - kNonceBytes,
          U(tenant_id), tenant_id.size(), wrapped.data(), master.data()) != 0 ||
      len != kKeyBytes) {
    return MakeError(ErrorKind::kInternal, "data_key_unwrap_failed",
                     "A tenant data key could not be unwrapped: the master key is not the one it "
                     "was wrapped with, or the stored key is damaged.");
  }
  return key;
}

std::array<uint8_t, 16> DeriveSubkey(const Key& master, const char (&context)[9], uint64_t id) {
  InitCrypto();
  std::array<uint8_t, 16> out;
  crypto_kdf_derive_from_key(out.data(), out.size(), id, context, master.data());
  return out;
}

PiiCipher::PiiCipher(const Key& data_key) {
  InitCrypto();
  crypto_kdf_derive_from_key(enc_key_.data(), enc_key_.size(), 1, kKdfContext, data_key.data());
  crypto_kdf_derive_from_key(index_key_.data(), index_key_.size(), 2, kKdfContext, data_key.data());
}

Bytes PiiCipher::Seal(std::string_view plaintext, std::string_view context) const {
  Bytes out(kNonceBytes + plaintext.size() + kTagBytes);
  FillRandom(out.data(), kNonceBytes);
  unsigned long long len = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out.data() + kNonceBytes, &len, U(plaintext),
                                             plaintext.size(), U(context), context.size(), nullptr,
                                             out.data(), enc_key_.data());
  return out;
}

Result<std::string> PiiCipher::Open(const Bytes& sealed, std::string_view context) const {
  if (sealed.size() < kNonceBytes + kTagBytes) {
    return MakeError(ErrorKind::kInternal, "decrypt_failed",
                     "A sealed value is too short to have been written by Herald.");
  }
  std::string plain(sealed.size() - kNonceBytes - kTagBytes, '\0');
  unsigned long long len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          reinterpret_cast<unsigned char*>(plain.data()), &len, nullptr,
          sealed.data() + kNonceBytes, sealed.size() - kNonceBytes, U(context), context.size(),
          sealed.data(), enc_key_.data()) != 0) {
    return MakeError(ErrorKind::kInternal, "decrypt_failed",
                     "A sealed value could not be decrypted: wrong tenant key, wrong context, or "
                     "the stored bytes are damaged.");
  }
  plain.resize(len);
  return plain;
}

Bytes PiiCipher::BlindIndex(std::string_view value, std::string_view context) const {
  crypto_generichash_state state;
  crypto_generichash_init(&state, index_key_.data(), index_key_.size(), kBlindIndexBytes);
  crypto_generichash_update(&state, U(context), context.size());
  const unsigned char separator = 0;
  crypto_generichash_update(&state, &separator, 1);
  crypto_generichash_update(&state, U(value), value.size());
  Bytes out(kBlindIndexBytes);
  crypto_generichash_final(&state, out.data(), out.size());
  return out;
}

// ---- Signatures ------------------------------------------------------------------------------

std::string HmacSha256Hex(std::string_view key, std::string_view message) {
  // The one-shot crypto_auth_hmacsha256 takes only 32-byte keys; the streaming API takes any.
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, U(key), key.size());
  crypto_auth_hmacsha256_update(&state, U(message), message.size());
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_final(&state, mac);
  sodium_memzero(&state, sizeof state);
  return ToHex(mac, sizeof mac);
}

Bytes Sha256(std::string_view data) {
  Bytes out(crypto_hash_sha256_BYTES);
  crypto_hash_sha256(out.data(), U(data), data.size());
  return out;
}

}  // namespace herald::crypto

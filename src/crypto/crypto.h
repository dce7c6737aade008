// Herald's cryptography on libsodium: random ids and API keys, key hashing, envelope encryption
// of PII and keyed blind indexes. Every function is thread-safe once InitCrypto() has run.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace herald::crypto {

using Bytes = std::vector<uint8_t>;
inline constexpr size_t kKeyBytes = 32;
using Key = std::array<uint8_t, kKeyBytes>;

// Calls sodium_init(); returns false when libsodium cannot start. Idempotent.
bool InitCrypto();

// Random identifier: prefix + n characters of lower-case base32 (RFC 4648 alphabet), from the
// CSPRNG. 20 characters carry 100 bits.
std::string RandomId(std::string_view prefix, size_t n = 20);

// A fresh random key.
Key RandomKey();

// Hex and base64url (no padding) codecs; decoders fail on bad input.
std::string ToHex(const uint8_t* data, size_t n);
Result<Bytes> FromHex(std::string_view hex);
std::string Base64UrlEncode(std::string_view data);
Result<std::string> Base64UrlDecode(std::string_view data);

// ---- API keys --------------------------------------------------------------------------------
// A key reads "hk_<key id without its 'key_' prefix>_<43 chars of base64url secret>".
struct MintedApiKey {
  std::string id;      // "key_..."
  std::string secret;  // the whole string the client sends as its bearer token (shown once)
  Bytes hash;          // what the store keeps: SHA-256 of the secret
};
MintedApiKey MintApiKey();
// Splits a presented bearer token into its key id ("key_...") and checks the shape; fails for
// anything that is not a Herald key.
Result<std::string> ApiKeyIdOf(std::string_view presented);
// Constant-time check of a presented key against the stored hash.
bool VerifyApiKey(std::string_view presented, const Bytes& stored_hash);
// Constant-time comparison of two strings (for the admin token).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// ---- Master key and tenant data keys ---------------------------------------------------------
// Parses a master key given as 64 hex chars or 43/44 chars of base64/base64url.
Result<Key> ParseMasterKey(std::string_view text);
std::string FormatMasterKey(const Key& key);  // 64 hex chars

// A 16-byte key for one purpose, derived from the master key (libsodium's KDF): the same master
// key gives the same subkey in every process. `context` is exactly 8 characters, e.g. "sealedid".
std::array<uint8_t, 16> DeriveSubkey(const Key& master, const char (&context)[9], uint64_t id);

// A tenant's data key wrapped (XChaCha20-Poly1305) by the master key, with the tenant id as
// associated data so a wrapped key cannot be moved to another tenant.
Bytes WrapDataKey(const Key& master, const Key& data_key, std::string_view tenant_id);
Result<Key> UnwrapDataKey(const Key& master, const Bytes& wrapped, std::string_view tenant_id);

// Per-tenant PII sealing derived from a data key: one subkey encrypts, another keys the blind
// index. Immutable after construction; share freely between threads.
class PiiCipher {
 public:
  explicit PiiCipher(const Key& data_key);
  // nonce || ciphertext || tag. `context` is bound as associated data (e.g. "name", "addr").
  Bytes Seal(std::string_view plaintext, std::string_view context) const;
  Result<std::string> Open(const Bytes& sealed, std::string_view context) const;
  // Keyed BLAKE2b (16 bytes) of context || 0x00 || value: equal inputs give equal indexes,
  // nothing about the value can be learnt without the key.
  Bytes BlindIndex(std::string_view value, std::string_view context) const;

 private:
  Key enc_key_;
  Key index_key_;
};

// ---- Signatures (webhooks) -------------------------------------------------------------------
std::string HmacSha256Hex(std::string_view key, std::string_view message);
Bytes Sha256(std::string_view data);

}  // namespace herald::crypto

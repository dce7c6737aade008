#include "common/sealed_ids.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <atomic>
#include <cstring>
#include <mutex>

namespace herald {
namespace {

constexpr size_t kSealedChars = 22;  // 16 bytes in unpadded base64url

std::mutex key_mu;
std::array<uint8_t, 16> key_bytes;
std::atomic<uint64_t> key_generation{0};  // 0 = no key yet

uint64_t EnsureKey() {
  uint64_t g = key_generation.load(std::memory_order_acquire);
  if (g != 0) return g;
  std::lock_guard lock(key_mu);
  g = key_generation.load(std::memory_order_relaxed);
  if (g == 0) {
    RAND_bytes(key_bytes.data(), static_cast<int>(key_bytes.size()));
    key_generation.store(g = 1, std::memory_order_release);
  }
  return g;
}

// One encrypting and one decrypting AES-128-ECB context per thread, rebuilt when the key moves.
struct ThreadCiphers {
  EVP_CIPHER_CTX* encrypt = EVP_CIPHER_CTX_new();
  EVP_CIPHER_CTX* decrypt = EVP_CIPHER_CTX_new();
  uint64_t generation = 0;
  ~ThreadCiphers() {
    EVP_CIPHER_CTX_free(encrypt);
    EVP_CIPHER_CTX_free(decrypt);
  }
  void Refresh() {
    const uint64_t g = EnsureKey();
    if (g == generation) return;
    std::array<uint8_t, 16> key;
    {
      std::lock_guard lock(key_mu);
      key = key_bytes;
      generation = key_generation.load(std::memory_order_relaxed);
    }
    EVP_EncryptInit_ex(encrypt, EVP_aes_128_ecb(), nullptr, key.data(), nullptr);
    EVP_CIPHER_CTX_set_padding(encrypt, 0);
    EVP_DecryptInit_ex(decrypt, EVP_aes_128_ecb(), nullptr, key.data(), nullptr);
    EVP_CIPHER_CTX_set_padding(decrypt, 0);
  }
};

ThreadCiphers& Ciphers() {
  thread_local ThreadCiphers ciphers;
  ciphers.Refresh();
  return ciphers;
}

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int DecodeChar(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

}  // namespace

void SetSealedIdKey(const std::array<uint8_t, 16>& key) {
  std::lock_guard lock(key_mu);
  key_bytes = key;
  key_generation.store(key_generation.load(std::memory_order_relaxed) + 1,
                       std::memory_order_release);
}

std::string SealRowKey(char tag, int64_t row_key) {
  uint8_t block[16] = {};
  block[0] = static_cast<uint8_t>(tag);
  const auto k = static_cast<uint64_t>(row_key);
  for (int i = 0; i < 8; ++i) block[8 + i] = static_cast<uint8_t>(k >> (56 - 8 * i));
  uint8_t sealed[16];
  int n = 0;
  EVP_EncryptUpdate(Ciphers().encrypt, sealed, &n, block, sizeof(block));
  std::string out;
  out.reserve(kSealedChars);
  uint32_t acc = 0;
  int bits = 0;
  for (uint8_t byte : sealed) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);  // the last 2 bits, zero-padded
  return out;
}

std::optional<int64_t> OpenRowKey(char tag, std::string_view sealed) {
  if (sealed.size() != kSealedChars) return std::nullopt;
  uint8_t bytes[16];
  size_t out = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : sealed) {
    const int v = DecodeChar(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (out < sizeof(bytes)) bytes[out++] = static_cast<uint8_t>(acc >> bits);
    }
  }
  if (out != sizeof(bytes) || (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  uint8_t block[16];
  int n = 0;
  EVP_DecryptUpdate(Ciphers().decrypt, block, &n, bytes, sizeof(bytes));
  if (block[0] != static_cast<uint8_t>(tag)) return std::nullopt;
  for (int i = 1; i < 8; ++i) {
    if (block[i] != 0) return std::nullopt;
  }
  uint64_t k = 0;
  for (int i = 0; i < 8; ++i) k = (k << 8) | block[8 + i];
  const auto key = static_cast<int64_t>(k);
  if (key <= 0) return std::nullopt;
  return key;
}

}  // namespace herald

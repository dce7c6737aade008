#include "crypto/crypto.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <set>

namespace herald::crypto {
namespace {

class CryptoTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(InitCrypto()); }
};

Key KeyOf(uint8_t fill) {
  Key k;
  k.fill(fill);
  return k;
}

TEST_F(CryptoTest, InitCryptoIsIdempotent) {
  EXPECT_TRUE(InitCrypto());
  EXPECT_TRUE(InitCrypto());
}

TEST_F(CryptoTest, RandomIdIsPrefixPlusLowerCaseBase32) {
  const std::string id = RandomId("ten_");
  ASSERT_EQ(id.size(), 4u + 20u);
  EXPECT_EQ(id.substr(0, 4), "ten_");
  for (char c : id.substr(4)) {
    EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7')) << c;
  }
  EXPECT_EQ(RandomId("x", 7).size(), 8u);
}

TEST_F(CryptoTest, RandomIdsDoNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(RandomId("dev_"));
  EXPECT_EQ(seen.size(), 1000u);
}

TEST_F(CryptoTest, RandomIdUsesTheWholeAlphabet) {
  std::set<char> chars;
  for (int i = 0; i < 200; ++i) {
    for (char c : RandomId("", 20)) chars.insert(c);
  }
  EXPECT_EQ(chars.size(), 32u);
}

TEST_F(CryptoTest, RandomKeysDiffer) { EXPECT_NE(RandomKey(), RandomKey()); }

TEST_F(CryptoTest, HexRoundTrips) {
  const uint8_t data[] = {0x00, 0x01, 0xab, 0xff};
  EXPECT_EQ(ToHex(data, sizeof data), "0001abff");
  auto back = FromHex("0001ABff");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, Bytes(data, data + sizeof data));
  ASSERT_TRUE(FromHex("").ok());
  EXPECT_TRUE(FromHex("")->empty());
}

TEST_F(CryptoTest, FromHexRefusesBadInput) {
  EXPECT_FALSE(FromHex("abc").ok());    // odd length
  EXPECT_FALSE(FromHex("zz").ok());     // not hex
  EXPECT_FALSE(FromHex("00 1").ok());   // space
  EXPECT_FALSE(FromHex("0g").ok());     // second digit bad
  EXPECT_FALSE(FromHex("00:11").ok());  // separators
}

TEST_F(CryptoTest, Base64UrlRoundTripsWithoutPadding) {
  EXPECT_EQ(Base64UrlEncode(""), "");
  EXPECT_EQ(Base64UrlEncode("f"), "Zg");
  EXPECT_EQ(Base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(Base64UrlEncode("foo"), "Zm9v");
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  const std::string binary("\x00\xff\xfe\x10\x80", 5);
  auto back = Base64UrlDecode(Base64UrlEncode(binary));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, binary);
}

TEST_F(CryptoTest, Base64UrlDecodeRefusesBadInput) {
  EXPECT_FALSE(Base64UrlDecode("Zg==").ok());  // padding
  EXPECT_FALSE(Base64UrlDecode("+/8").ok());   // standard alphabet
  EXPECT_FALSE(Base64UrlDecode("Z").ok());     // impossible length
  EXPECT_FALSE(Base64UrlDecode("Zh").ok());    // non-zero trailing bits
  EXPECT_FALSE(Base64UrlDecode("Zm9v!").ok());
}

TEST_F(CryptoTest, MintedApiKeyHasDocumentedShape) {
  const MintedApiKey key = MintApiKey();
  ASSERT_EQ(key.id.size(), 24u);
  EXPECT_EQ(key.id.substr(0, 4), "key_");
  EXPECT_EQ(key.secret.substr(0, 3), "hk_");
  EXPECT_EQ(key.secret.substr(3, 20), key.id.substr(4));
  EXPECT_EQ(key.secret[23], '_');
  EXPECT_EQ(key.secret.size(), 3u + 20u + 1u + 43u);
  EXPECT_EQ(key.hash, Sha256(key.secret));
  EXPECT_NE(MintApiKey().secret, key.secret);
}

TEST_F(CryptoTest, ApiKeyIdOfReturnsTheKeyId) {
  const MintedApiKey key = MintApiKey();
  auto id = ApiKeyIdOf(key.secret);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, key.id);
}

TEST_F(CryptoTest, ApiKeyIdOfRefusesAnythingElse) {
  const std::string good = MintApiKey().secret;
  EXPECT_FALSE(ApiKeyIdOf("").ok());
  EXPECT_FALSE(ApiKeyIdOf("Bearer " + good).ok());
  EXPECT_FALSE(ApiKeyIdOf(good + "A").ok());
  EXPECT_FALSE(ApiKeyIdOf(good.substr(0, good.size() - 1)).ok());
  std::string wrong_prefix = good;
  wrong_prefix[0] = 'x';
  EXPECT_FALSE(ApiKeyIdOf(wrong_prefix).ok());
  std::string upper_id = good;
  upper_id[3] = 'A';  // key ids are lower-case base32
  EXPECT_FALSE(ApiKeyIdOf(upper_id).ok());
  std::string bad_separator = good;
  bad_separator[23] = '-';
  EXPECT_FALSE(ApiKeyIdOf(bad_separator).ok());
  std::string bad_secret = good;
  bad_secret[30] = '+';
  EXPECT_FALSE(ApiKeyIdOf(bad_secret).ok());
  const auto err = ApiKeyIdOf("admin-token");
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.error().kind, ErrorKind::kUnauthenticated);
}

TEST_F(CryptoTest, VerifyApiKeyAcceptsOnlyTheMintedSecret) {
  const MintedApiKey key = MintApiKey();
  EXPECT_TRUE(VerifyApiKey(key.secret, key.hash));
  EXPECT_FALSE(VerifyApiKey(MintApiKey().secret, key.hash));
  std::string tampered = key.secret;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(VerifyApiKey(tampered, key.hash));
  EXPECT_FALSE(VerifyApiKey(key.secret, Bytes{}));
  EXPECT_FALSE(VerifyApiKey(key.secret, Bytes(key.hash.begin(), key.hash.begin() + 16)));
}

TEST_F(CryptoTest, ConstantTimeEqualsComparesContentAndLength) {
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret2"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
}

TEST_F(CryptoTest, MasterKeyParsesHexAndBase64Forms) {
  const Key key = RandomKey();
  const std::string hex = FormatMasterKey(key);
  ASSERT_EQ(hex.size(), 64u);
  const std::string raw(reinterpret_cast<const char*>(key.data()), key.size());
  const std::string url = Base64UrlEncode(raw);  // 43 chars
  std::string std_b64 = url;
  for (char& c : std_b64) c = c == '-' ? '+' : c == '_' ? '/' : c;
  for (const std::string& text :
       {hex, "  " + hex + "\n", url, url + "=", std_b64, std_b64 + "=", std_b64 + "=\r\n"}) {
    auto parsed = ParseMasterKey(text);
    ASSERT_TRUE(parsed.ok()) << text;
    EXPECT_EQ(*parsed, key) << text;
  }
}

TEST_F(CryptoTest, MasterKeyRefusesWrongSizesAndCharacters) {
  const std::string hex = FormatMasterKey(RandomKey());
  EXPECT_FALSE(ParseMasterKey("").ok());
  EXPECT_FALSE(ParseMasterKey(hex.substr(0, 62)).ok());
  EXPECT_FALSE(ParseMasterKey(hex + "00").ok());
  EXPECT_FALSE(ParseMasterKey(std::string(64, 'g')).ok());
  EXPECT_FALSE(ParseMasterKey(Base64UrlEncode(std::string(31, 'k'))).ok());
  const auto err = ParseMasterKey("not a key");
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.error().code, "invalid_master_key");
}

TEST_F(CryptoTest, WrappedDataKeyUnwrapsOnlyForItsTenantAndMaster) {
  const Key master = RandomKey();
  const Key data = RandomKey();
  const Bytes wrapped = WrapDataKey(master, data, "ten_a");
  EXPECT_EQ(wrapped.size(), 24u + 32u + 16u);
  auto back = UnwrapDataKey(master, wrapped, "ten_a");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, data);
  EXPECT_FALSE(UnwrapDataKey(master, wrapped, "ten_b").ok());
  EXPECT_FALSE(UnwrapDataKey(RandomKey(), wrapped, "ten_a").ok());
  Bytes damaged = wrapped;
  damaged[30] ^= 1;
  EXPECT_FALSE(UnwrapDataKey(master, damaged, "ten_a").ok());
  EXPECT_FALSE(UnwrapDataKey(master, Bytes(wrapped.begin(), wrapped.end() - 1), "ten_a").ok());
  EXPECT_NE(WrapDataKey(master, data, "ten_a"), wrapped);  // fresh nonce each time
}

TEST_F(CryptoTest, PiiSealOpensWithSameKeyAndContext) {
  const PiiCipher cipher(KeyOf(7));
  const Bytes sealed = cipher.Seal("Ada Lovelace", "name");
  EXPECT_EQ(sealed.size(), 24u + 12u + 16u);
  auto opened = cipher.Open(sealed, "name");
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, "Ada Lovelace");
  auto empty = cipher.Open(cipher.Seal("", "addr"), "addr");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, "");
  // A second cipher from the same data key derives the same subkeys.
  auto again = PiiCipher(KeyOf(7)).Open(sealed, "name");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, "Ada Lovelace");
}

TEST_F(CryptoTest, PiiSealHidesPlaintextAndUsesFreshNonces) {
  const PiiCipher cipher(KeyOf(7));
  const Bytes a = cipher.Seal("alice@example.com", "addr");
  const Bytes b = cipher.Seal("alice@example.com", "addr");
  EXPECT_NE(a, b);
  const std::string as_text(a.begin(), a.end());
  EXPECT_EQ(as_text.find("alice"), std::string::npos);
}

TEST_F(CryptoTest, PiiSealNoncesAreNotReusedAcrossFork) {
  const PiiCipher cipher(KeyOf(9));
  cipher.Seal("warm up the nonce pool", "name");
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const Bytes sealed = cipher.Seal("child", "name");
    const ssize_t n = write(fds[1], sealed.data(), 24);
    _exit(n == 24 ? 0 : 1);
  }
  close(fds[1]);
  const Bytes parent = cipher.Seal("parent", "name");
  uint8_t child_nonce[24];
  ASSERT_EQ(read(fds[0], child_nonce, sizeof child_nonce), 24);
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_NE(Bytes(child_nonce, child_nonce + 24), Bytes(parent.begin(), parent.begin() + 24));
}

TEST_F(CryptoTest, RandomIdsAreNotRepeatedAcrossForkOrWithinAThread) {
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {  // more than one pool's worth of bytes
    EXPECT_TRUE(seen.insert(RandomId("dev_", 26)).second);
  }
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string id = RandomId("dev_", 26);
    const ssize_t n = write(fds[1], id.data(), id.size());
    _exit(n == static_cast<ssize_t>(id.size()) ? 0 : 1);
  }
  close(fds[1]);
  const std::string parent = RandomId("dev_", 26);
  char child[30];
  ASSERT_EQ(read(fds[0], child, sizeof child), 30);
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_NE(std::string(child, sizeof child), parent);
}

TEST_F(CryptoTest, PiiOpenFailsForWrongContextKeyOrDamage) {
  const PiiCipher cipher(KeyOf(7));
  const Bytes sealed = cipher.Seal("Ada", "name");
  const auto wrong_context = cipher.Open(sealed, "addr");
  ASSERT_FALSE(wrong_context.ok());
  EXPECT_EQ(wrong_context.error().kind, ErrorKind::kInternal);
  EXPECT_EQ(wrong_context.error().code, "decrypt_failed");
  EXPECT_FALSE(PiiCipher(KeyOf(8)).Open(sealed, "name").ok());
  Bytes damaged = sealed;
  damaged.back() ^= 0x80;
  EXPECT_FALSE(cipher.Open(damaged, "name").ok());
  const auto too_short = cipher.Open(Bytes(39), "name");
  ASSERT_FALSE(too_short.ok());
  EXPECT_EQ(too_short.error().code, "decrypt_failed");
}

TEST_F(CryptoTest, BlindIndexIsDeterministicAndKeyed) {
  const PiiCipher cipher(KeyOf(1));
  const Bytes idx = cipher.BlindIndex("+821022223333", "addr");
  EXPECT_EQ(idx.size(), 16u);
  EXPECT_EQ(cipher.BlindIndex("+821022223333", "addr"), idx);
  EXPECT_NE(cipher.BlindIndex("+821022223334", "addr"), idx);
  EXPECT_NE(cipher.BlindIndex("+821022223333", "name"), idx);
  EXPECT_NE(PiiCipher(KeyOf(2)).BlindIndex("+821022223333", "addr"), idx);
  // The separator keeps context and value apart: ("ab","c") and ("a","bc") differ.
  EXPECT_NE(cipher.BlindIndex("c", "ab"), cipher.BlindIndex("bc", "a"));
}

TEST_F(CryptoTest, HmacSha256MatchesRfc4231) {
  // RFC 4231 test case 2: a key shorter than 32 bytes.
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // RFC 4231 test case 6: a 131-byte key, longer than the block size.
  EXPECT_EQ(HmacSha256Hex(std::string(131, '\xaa'),
                          "Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST_F(CryptoTest, Sha256MatchesKnownDigest) {
  const Bytes digest = Sha256("abc");
  EXPECT_EQ(ToHex(digest.data(), digest.size()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(CryptoTest, PiiSealIsFastEnoughForBulkImport) {
  const PiiCipher cipher(RandomKey());
  constexpr int kRounds = 30000;
  const auto start = std::chrono::steady_clock::now();
  size_t total = 0;
  for (int i = 0; i < kRounds; ++i) total += cipher.Seal("someone@example.com", "addr").size();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(total, kRounds * (24u + 19u + 16u));
  // 300k seals/s is the import target; allow a wide margin for slow or sanitized builds.
  EXPECT_LT(elapsed, std::chrono::seconds(2));
}

}  // namespace
}  // namespace herald::crypto

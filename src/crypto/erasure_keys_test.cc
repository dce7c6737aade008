#include "crypto/erasure_keys.h"

#include <gtest/gtest.h>

#include <random>

namespace herald::crypto {
namespace {

// Bytes with the stored first bucket set back to 0: what someone holding an old copy's format
// but only the new nodes could try.
Bytes WithFirstZero(Bytes bytes) {
  for (int i = 1; i <= 8; ++i) bytes[static_cast<size_t>(i)] = 0;
  return bytes;
}

TEST(ErasureKeysTest, EveryBucketHasItsOwnStableKey) {
  ASSERT_TRUE(InitCrypto());
  const ErasureKeys keys = ErasureKeys::Create(1000);
  EXPECT_EQ(keys.first(), 1000u);
  ASSERT_TRUE(keys.Derive(1000).has_value());
  EXPECT_EQ(*keys.Derive(1000), *keys.Derive(1000));
  EXPECT_NE(*keys.Derive(1000), *keys.Derive(1001));
  EXPECT_FALSE(keys.Derive(999).has_value());
  EXPECT_LE(keys.nodes(), static_cast<size_t>(ErasureKeys::kDepth + 1));
  // Past the last bucket: the last bucket's key.
  EXPECT_EQ(*keys.Derive(ErasureKeys::kBuckets + 5), *keys.Derive(ErasureKeys::kBuckets - 1));
  // Two trees never share keys.
  EXPECT_NE(*ErasureKeys::Create(1000).Derive(1000), *keys.Derive(1000));
}

TEST(ErasureKeysTest, DestroyingEarlierBucketsKeepsTheLaterKeysAndLosesTheEarlierOnes) {
  ASSERT_TRUE(InitCrypto());
  std::mt19937_64 rng(7);
  for (int round = 0; round < 20; ++round) {
    const uint64_t start = rng() % 1'000'000;
    const ErasureKeys original = ErasureKeys::Create(start);
    ErasureKeys keys = original;
    uint64_t first = start;
    for (int step = 0; step < 10; ++step) {
      const uint64_t before = first;
      first += rng() % (step % 3 == 0 ? 70'000'000 : 300);
      keys.DestroyBefore(first);
      ASSERT_EQ(keys.first(), first);
      // A stored copy comes back the same.
      Result<ErasureKeys> parsed = ErasureKeys::Parse(keys.Serialize());
      ASSERT_TRUE(parsed.ok());
      // Later buckets: the same keys as before.
      for (uint64_t b : {first, first + 1, first + 2, first + 1023, first + (rng() % 50'000'000)}) {
        ASSERT_EQ(keys.Derive(b), original.Derive(b)) << "bucket " << b;
        ASSERT_EQ(parsed->Derive(b), original.Derive(b)) << "bucket " << b;
      }
      // Earlier buckets: gone, also when the stored first bucket is tampered with, since no kept
      // node lies above them.
      Result<ErasureKeys> tampered = ErasureKeys::Parse(WithFirstZero(keys.Serialize()));
      ASSERT_TRUE(tampered.ok());
      for (uint64_t b : {before, first - 1, start, (before + first) / 2}) {
        if (b >= first) continue;
        ASSERT_FALSE(keys.Derive(b).has_value()) << "bucket " << b;
        ASSERT_FALSE(tampered->Derive(b).has_value()) << "bucket " << b;
      }
      ASSERT_LE(keys.nodes(), static_cast<size_t>(ErasureKeys::kDepth + 1));
    }
  }
}

TEST(ErasureKeysTest, DestroyingNothingChangesNothing) {
  ASSERT_TRUE(InitCrypto());
  ErasureKeys keys = ErasureKeys::Create(500);
  const Bytes before = keys.Serialize();
  keys.DestroyBefore(500);
  keys.DestroyBefore(3);
  EXPECT_EQ(keys.Serialize(), before);
}

TEST(ErasureKeysTest, ParseRefusesBytesItDidNotWrite) {
  ASSERT_TRUE(InitCrypto());
  const Bytes good = ErasureKeys::Create(42).Serialize();
  EXPECT_FALSE(ErasureKeys::Parse({}).ok());
  Bytes wrong_format = good;
  wrong_format[0] = 9;
  EXPECT_FALSE(ErasureKeys::Parse(wrong_format).ok());
  Bytes short_one = good;
  short_one.pop_back();
  EXPECT_FALSE(ErasureKeys::Parse(short_one).ok());
  Bytes deep = good;
  deep[10] = 40;  // a node below the leaves
  EXPECT_FALSE(ErasureKeys::Parse(deep).ok());
  EXPECT_TRUE(ErasureKeys::Parse(good).ok());
}

}  // namespace
}  // namespace herald::crypto

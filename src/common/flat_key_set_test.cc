// FlatKeySet against std::unordered_set: set behaviour, random churn, memory given back.
#include "common/flat_key_set.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <unordered_set>

namespace herald {
namespace {

TEST(FlatKeySetTest, BehavesAsASet) {
  FlatKeySet set;
  EXPECT_FALSE(set.contains(5));
  EXPECT_TRUE(set.insert(5));
  EXPECT_FALSE(set.insert(5));
  EXPECT_TRUE(set.insert(INT64_MIN));  // the value that marks free slots is a key too
  EXPECT_TRUE(set.insert(0));
  EXPECT_TRUE(set.insert(-1));
  EXPECT_EQ(set.size(), 4u);
  EXPECT_TRUE(set.contains(INT64_MIN));
  EXPECT_TRUE(set.erase(INT64_MIN));
  EXPECT_FALSE(set.erase(INT64_MIN));
  EXPECT_FALSE(set.erase(6));
  EXPECT_TRUE(set.erase(5));
  EXPECT_FALSE(set.contains(5));
  EXPECT_EQ(set.size(), 2u);
}

TEST(FlatKeySetTest, AgreesWithUnorderedSetUnderRandomChurn) {
  FlatKeySet set;
  std::unordered_set<int64_t> model;
  std::mt19937_64 rng(7);
  for (int round = 0; round < 400000; ++round) {
    // A narrow key range, so that probe runs collide and erasures shift keys back.
    const int64_t key = static_cast<int64_t>(rng() % 5000) * 1024;
    const bool grow = (round / 50000) % 2 == 0;  // fill, then drain, then fill again
    if (rng() % 4 != 0 ? grow : !grow) {
      ASSERT_EQ(set.insert(key), model.insert(key).second) << key;
    } else {
      ASSERT_EQ(set.erase(key), model.erase(key) == 1) << key;
    }
    ASSERT_EQ(set.size(), model.size());
  }
  for (int64_t key = 0; key < 5000 * 1024; key += 1024) {
    ASSERT_EQ(set.contains(key), model.contains(key)) << key;
  }
}

TEST(FlatKeySetTest, GivesMemoryBackWhenDrained) {
  FlatKeySet set;
  for (int64_t key = 0; key < 100000; ++key) set.insert(key);
  EXPECT_GE(set.capacity(), 100000u * 4 / 3);
  for (int64_t key = 0; key < 100000; ++key) ASSERT_TRUE(set.erase(key));
  EXPECT_EQ(set.size(), 0u);
  EXPECT_LE(set.capacity(), 32u);
}

}  // namespace
}  // namespace herald

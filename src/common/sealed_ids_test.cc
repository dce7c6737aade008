#include "common/sealed_ids.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

namespace herald {
namespace {

TEST(SealedIdsTest, RowKeysSealAndOpenAndShowNothingOfTheirOrder) {
  SetSealedIdKey({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
  std::set<std::string> seen;
  std::string previous;
  for (int64_t k = 1; k <= 2000; ++k) {
    const std::string sealed = SealRowKey('d', k);
    ASSERT_EQ(sealed.size(), 22u);
    ASSERT_EQ(sealed.find_first_not_of(
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
              std::string::npos);
    ASSERT_EQ(OpenRowKey('d', sealed), k);
    EXPECT_NE(sealed.substr(0, 6), previous.substr(0, std::min<size_t>(6, previous.size())))
        << "neighbouring keys look alike";
    previous = sealed;
    seen.insert(sealed);
  }
  EXPECT_EQ(seen.size(), 2000u);
  EXPECT_EQ(OpenRowKey('d', SealRowKey('d', INT64_MAX)), INT64_MAX);
}

TEST(SealedIdsTest, ForgedAlteredOrOtherKindIdsDoNotOpen) {
  SetSealedIdKey({9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9});
  const std::string sealed = SealRowKey('a', 42);
  EXPECT_EQ(OpenRowKey('d', sealed), std::nullopt) << "sealed as one kind, opened as another";
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string altered = sealed;
    altered[i] = altered[i] == 'A' ? 'B' : 'A';
    EXPECT_EQ(OpenRowKey('a', altered), std::nullopt) << i;
  }
  for (const std::string& junk :
       {std::string(), std::string("1"), std::string("42"), std::string(21, 'A'),
        std::string(23, 'A'), std::string(22, '!'), std::string(22, 'A')}) {
    EXPECT_EQ(OpenRowKey('a', junk), std::nullopt) << junk;
  }
  SetSealedIdKey({8, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9});
  EXPECT_EQ(OpenRowKey('a', sealed), std::nullopt) << "another key opens nothing";
}

TEST(SealedIdsTest, ThreadsSealAndOpenConcurrently) {
  SetSealedIdKey({7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7});
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &wrong] {
      for (int64_t k = 1; k < 20'000; ++k) {
        if (OpenRowKey('d', SealRowKey('d', k * 4 + t)) != k * 4 + t) ++wrong;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace herald

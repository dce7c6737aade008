// ReadCanonicalPhone against libphonenumber's own Parse and GetNumberType: wherever the fast
// reading answers, it must answer exactly what they answer, over every calling code, lengths from
// too short to too long, every leading digit, and each country's example numbers of every type.
#include "model/phone_parse.h"

#include <gtest/gtest.h>
#include <phonenumbers/phonenumberutil.h>

#include <optional>
#include <random>
#include <set>
#include <string>

namespace herald::internal {
namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

std::string Describe(const PhoneNumber& n) {
  return "+" + std::to_string(n.country_code()) + " " + std::to_string(n.national_number()) +
         (n.italian_leading_zero()
              ? " (leading zeros " + std::to_string(n.number_of_leading_zeros()) + ")"
              : "");
}

struct Tally {
  int fast = 0;
  int total = 0;
};

// Compares the two readings of one input; returns whether the fast one answered.
bool Check(const std::string& input, Tally& tally) {
  const PhoneNumberUtil& util = *PhoneNumberUtil::GetInstance();
  PhoneNumber fast;
  PhoneNumberUtil::PhoneNumberType type = PhoneNumberUtil::UNKNOWN;
  ++tally.total;
  if (!ReadCanonicalPhone(input, &fast, &type)) return false;
  ++tally.fast;
  PhoneNumber full;
  EXPECT_EQ(util.Parse(input, "ZZ", &full), PhoneNumberUtil::NO_PARSING_ERROR)
      << input << ": the fast reading accepted what Parse refuses";
  EXPECT_EQ(fast.SerializeAsString(), full.SerializeAsString())
      << input << ": fast " << Describe(fast) << " vs Parse " << Describe(full);
  EXPECT_EQ(type, util.GetNumberType(full))
      << input << ": the fast reading classified it otherwise";
  return true;
}

TEST(PhoneParseTest, AgreesWithParseOnRandomNumbersOfEveryCallingCode) {
  const PhoneNumberUtil& util = *PhoneNumberUtil::GetInstance();
  std::set<int> codes;
  util.GetSupportedCallingCodes(&codes);
  ASSERT_GT(codes.size(), 200u);
  std::mt19937_64 rng(20261130);
  std::uniform_int_distribution<int> digit(0, 9);
  Tally tally;
  for (int code : codes) {
    for (size_t length = 1; length <= 19; ++length) {
      for (int sample = 0; sample < 12; ++sample) {
        std::string input = "+" + std::to_string(code);
        for (size_t i = 0; i < length; ++i) {
          // Cover every leading digit, 0 included, evenly.
          input += static_cast<char>('0' + (i == 0 ? (sample % 10) : digit(rng)));
        }
        Check(input, tally);
      }
    }
  }
  // Most of these are not valid numbers at all: agreement matters, and that the fast reading
  // is not a rarely-taken branch.
  EXPECT_GT(tally.fast, tally.total / 2) << tally.fast << " of " << tally.total;
}

TEST(PhoneParseTest, AgreesWithParseOnEveryExampleNumberAndTakesMostMobiles) {
  const PhoneNumberUtil& util = *PhoneNumberUtil::GetInstance();
  std::set<std::string> regions;
  util.GetSupportedRegions(&regions);
  std::mt19937_64 rng(1130);
  std::uniform_int_distribution<int> digit(0, 9);
  Tally all, mobiles;
  for (const std::string& region : regions) {
    std::set<PhoneNumberUtil::PhoneNumberType> types;
    util.GetSupportedTypesForRegion(region, &types);
    for (auto type : types) {
      PhoneNumber example;
      if (!util.GetExampleNumberForType(region, type, &example)) continue;
      std::string e164;
      util.Format(example, PhoneNumberUtil::E164, &e164);
      const bool fast = Check(e164, all);
      if (type == PhoneNumberUtil::MOBILE) {
        ++mobiles.total;
        mobiles.fast += fast ? 1 : 0;
      }
      // Neighbours of the example: mostly valid numbers of the same or a nearby type.
      for (int variant = 0; variant < 40; ++variant) {
        std::string near = e164;
        const size_t changed = 1 + static_cast<size_t>(variant % 4);
        for (size_t i = 0; i < changed && near.size() - i > 4; ++i) {
          near[near.size() - 1 - i] = static_cast<char>('0' + digit(rng));
        }
        Check(near, all);
      }
    }
  }
  ASSERT_GT(mobiles.total, 200);
  EXPECT_GT(mobiles.fast * 10, mobiles.total * 9)
      << "the fast reading took " << mobiles.fast << " of " << mobiles.total << " mobile examples";
}

// Reads one number the fast way; nullopt when it declines.
std::optional<PhoneNumber> Fast(const std::string& input) {
  PhoneNumber n;
  PhoneNumberUtil::PhoneNumberType type = PhoneNumberUtil::UNKNOWN;
  if (!ReadCanonicalPhone(input, &n, &type)) return std::nullopt;
  return n;
}

TEST(PhoneParseTest, DeclinesWhatOnlyParseCanRead) {
  EXPECT_FALSE(Fast("+82 10-2222-3333")) << "punctuation";
  EXPECT_FALSE(Fast("821022223333")) << "no plus";
  EXPECT_FALSE(Fast("+39 0612345678")) << "punctuation";
  EXPECT_FALSE(Fast("+390612345678")) << "Italian leading zero";
  EXPECT_FALSE(Fast("+4407911123456")) << "national prefix 0 after +44";
  EXPECT_FALSE(Fast("+80012345678")) << "non-geographic +800";
  EXPECT_FALSE(Fast("+0123"));
  EXPECT_FALSE(Fast("+12"));
  EXPECT_FALSE(Fast("+"));
  EXPECT_FALSE(Fast(""));
  auto korean = Fast("+821022223333");
  ASSERT_TRUE(korean);
  EXPECT_EQ(korean->country_code(), 82);
  EXPECT_EQ(korean->national_number(), 1022223333u);
  auto american = Fast("+14155550123");
  ASSERT_TRUE(american);
  EXPECT_EQ(american->country_code(), 1);
  EXPECT_EQ(american->national_number(), 4155550123u);
}

}  // namespace
}  // namespace herald::internal

#include "common/percent.h"

#include <gtest/gtest.h>

namespace herald {
namespace {

TEST(PercentTest, DecodesEscapesAndPlusOnlyWhenAsked) {
  EXPECT_EQ(PercentDecode("a%20b%2Fc", false), "a b/c");
  EXPECT_EQ(PercentDecode("a+b%2b", false), "a+b+");
  EXPECT_EQ(PercentDecode("a+b%2b", true), "a b+");
  EXPECT_EQ(PercentDecode("%e2%9C%93", false), "\xe2\x9c\x93");
}

TEST(PercentTest, KeepsMalformedEscapesLiterally) {
  EXPECT_EQ(PercentDecode("100%", false), "100%");
  EXPECT_EQ(PercentDecode("%4", false), "%4");
  EXPECT_EQ(PercentDecode("%zz%41", false), "%zzA");
  EXPECT_EQ(HexDigitValue('f'), 15);
  EXPECT_EQ(HexDigitValue('G'), -1);
}

}  // namespace
}  // namespace herald

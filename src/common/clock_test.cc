#include "common/clock.h"

#include <gtest/gtest.h>

namespace herald {
namespace {

constexpr UnixMillis kNov24 = 1795500000000;  // 2026-11-24T06:00:00Z

TEST(ClockTest, FormatsUtcWithMilliseconds) {
  EXPECT_EQ(FormatRfc3339(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339(kNov24), "2026-11-24T06:00:00.000Z");
  EXPECT_EQ(FormatRfc3339(kNov24 + 123), "2026-11-24T06:00:00.123Z");
  EXPECT_EQ(FormatRfc3339(951782400000), "2000-02-29T00:00:00.000Z");
}

TEST(ClockTest, FormatsTimesBeforeTheEpoch) {
  EXPECT_EQ(FormatRfc3339(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(ParseRfc3339("1969-12-31T23:59:59.999Z"), -1);
}

TEST(ClockTest, ParsesWhatItFormats) {
  for (UnixMillis t : {UnixMillis{0}, kNov24, kNov24 + 999, UnixMillis{951782400000},
                       UnixMillis{4102444799999}, UnixMillis{-86400000}}) {
    EXPECT_EQ(ParseRfc3339(FormatRfc3339(t)), t) << t;
  }
}

TEST(ClockTest, ParsesZuluWithoutFraction) {
  EXPECT_EQ(ParseRfc3339("2026-11-24T06:00:00Z"), kNov24);
  EXPECT_EQ(ParseRfc3339("2026-11-24t06:00:00z"), kNov24);
  EXPECT_EQ(ParseRfc3339("2026-11-24 06:00:00Z"), kNov24);
}

TEST(ClockTest, AppliesNumericOffsets) {
  EXPECT_EQ(ParseRfc3339("2026-11-24T15:00:00+09:00"), kNov24);
  EXPECT_EQ(ParseRfc3339("2026-11-24T00:30:00-05:30"), kNov24);
  EXPECT_EQ(ParseRfc3339("2026-11-24T06:00:00+00:00"), kNov24);
  EXPECT_EQ(ParseRfc3339("2026-11-24T06:00:00-00:00"), kNov24);
  // An offset can carry the instant into the previous day.
  EXPECT_EQ(ParseRfc3339("2026-11-25T01:00:00+19:00"), kNov24);
}

TEST(ClockTest, ReadsFractionsToMilliseconds) {
  EXPECT_EQ(ParseRfc3339("2026-11-24T06:00:00.5Z"), kNov24 + 500);
  EXPECT_EQ(ParseRfc3339("2026-11-24T06:00:00.05Z"), kNov24 + 50);
  EXPECT_EQ(ParseRfc3339("2026-11-24T06:00:00.123Z"), kNov24 + 123);
  EXPECT_EQ(ParseRfc3339("2026-11-24T06:00:00.123999999Z"), kNov24 + 123);  // truncated
  EXPECT_EQ(ParseRfc3339("2026-11-24T15:00:00.250+09:00"), kNov24 + 250);
}

TEST(ClockTest, AcceptsLeapDaysOnlyInLeapYears) {
  EXPECT_TRUE(ParseRfc3339("2024-02-29T00:00:00Z").has_value());
  EXPECT_TRUE(ParseRfc3339("2000-02-29T00:00:00Z").has_value());
  EXPECT_FALSE(ParseRfc3339("2026-02-29T00:00:00Z").has_value());
  EXPECT_FALSE(ParseRfc3339("2100-02-29T00:00:00Z").has_value());
}

TEST(ClockTest, RefusesImpossibleDatesAndTimes) {
  for (const char* bad : {"2026-02-30T00:00:00Z", "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z",
                          "2026-00-10T00:00:00Z", "2026-01-00T00:00:00Z", "2026-01-01T24:00:00Z",
                          "2026-01-01T00:60:00Z", "2026-01-01T00:00:61Z",
                          "2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00+01:60"}) {
    EXPECT_FALSE(ParseRfc3339(bad).has_value()) << bad;
  }
}

TEST(ClockTest, RefusesMissingZoneAndMalformedText) {
  for (const char* bad :
       {"", "2026-11-24", "2026-11-24T06:00:00", "2026-11-24T06:00:00.123", "2026-11-24T06:00Z",
        "2026-11-24X06:00:00Z", "2026/11/24T06:00:00Z", "26-11-24T06:00:00Z",
        "2026-11-24T06:00:00.Z", "2026-11-24T06:00:00.1234567890Z", "2026-11-24T06:00:00+0900",
        "2026-11-24T06:00:00+09", "2026-11-24T06:00:00ZZ", "2026-11-24T06:00:00Z ",
        " 2026-11-24T06:00:00Z", "2026-1a-24T06:00:00Z", "2026-11-24T06:00:00UTC"}) {
    EXPECT_FALSE(ParseRfc3339(bad).has_value()) << bad;
  }
}

TEST(ClockTest, NowIsCurrentWallClock) {
  const UnixMillis now = NowMillis();
  EXPECT_GT(now, *ParseRfc3339("2024-01-01T00:00:00Z"));
  EXPECT_LT(now, *ParseRfc3339("2100-01-01T00:00:00Z"));
  EXPECT_LE(now, NowMillis());
}

}  // namespace
}  // namespace herald

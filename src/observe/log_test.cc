#include "observe/log.h"

#include <gtest/gtest.h>

#include <limits>
#include <sstream>
#include <thread>
#include <vector>

#include "common/clock.h"

namespace herald::observe {
namespace {

// Runs fn with stderr captured and returns what it wrote.
template <typename Fn>
std::string CaptureLog(Fn fn) {
  ::testing::internal::CaptureStderr();
  fn();
  return ::testing::internal::GetCapturedStderr();
}

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { SetLogLevel(LogLevel::kInfo); }
};

TEST(JsonQuoteTest, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(JsonQuote(""), "\"\"");
  EXPECT_EQ(JsonQuote("plain"), "\"plain\"");
  EXPECT_EQ(JsonQuote("say \"hi\""), "\"say \\\"hi\\\"\"");
  EXPECT_EQ(JsonQuote("C:\\dir"), "\"C:\\\\dir\"");
  EXPECT_EQ(JsonQuote("a\nb\tc"), "\"a\\u000ab\\u0009c\"");
  EXPECT_EQ(JsonQuote(std::string("\0\x1f", 2)), "\"\\u0000\\u001f\"");
}

TEST(JsonQuoteTest, PassesValidUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(JsonQuote("caf\xc3\xa9 \xf0\x9f\x98\x80"), "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
  EXPECT_EQ(JsonQuote("a\xff"), "\"a\\ufffd\"");
  EXPECT_EQ(JsonQuote("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");  // a surrogate
}

TEST_F(LogTest, WritesOneJsonObjectPerLine) {
  const UnixMillis before = NowMillis();
  const std::string out = CaptureLog([] {
    Info("user stored", {{"tenant_id", "ten_abc"}, {"devices", 2}, {"ok", true}, {"ms", 1.5}});
  });
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(out.find('\n'), out.size() - 1);
  ASSERT_EQ(out.rfind("{\"ts\":\"", 0), 0u);
  const auto ts = ParseRfc3339(out.substr(7, 24));
  ASSERT_TRUE(ts.has_value()) << out;
  EXPECT_GE(*ts, before);
  EXPECT_NE(out.find(",\"level\":\"info\",\"msg\":\"user stored\","), std::string::npos) << out;
  EXPECT_NE(out.find("\"tenant_id\":\"ten_abc\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"devices\":2"), std::string::npos) << out;
  EXPECT_NE(out.find("\"ok\":true"), std::string::npos) << out;
  EXPECT_NE(out.find("\"ms\":1.5"), std::string::npos) << out;
  EXPECT_EQ(out.substr(out.size() - 2), "}\n");
}

TEST_F(LogTest, LevelsBelowTheThresholdAreDropped) {
  SetLogLevel(LogLevel::kWarn);
  EXPECT_EQ(CaptureLog([] { Info("quiet"); }), "");
  EXPECT_NE(CaptureLog([] { Error("loud"); }).find("\"level\":\"error\""), std::string::npos);
  SetLogLevel(LogLevel::kDebug);
  EXPECT_NE(CaptureLog([] { Log(LogLevel::kDebug, "d"); }).find("\"level\":\"debug\""),
            std::string::npos);
  EXPECT_NE(CaptureLog([] { Warn("w"); }).find("\"level\":\"warn\""), std::string::npos);
}

TEST_F(LogTest, MessageAndFieldsAreEscaped) {
  const std::string out = CaptureLog([] { Warn("bad \"input\"\n", {{"why", "a\\b"}}); });
  EXPECT_NE(out.find("\"msg\":\"bad \\\"input\\\"\\u000a\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"why\":\"a\\\\b\""), std::string::npos) << out;
  EXPECT_EQ(out.find('\n'), out.size() - 1);
}

TEST_F(LogTest, NonFiniteNumbersStayValidJson) {
  const std::string out = CaptureLog([] {
    Info("n", {{"x", std::numeric_limits<double>::infinity()}});
  });
  EXPECT_NE(out.find("\"x\":\"inf\""), std::string::npos) << out;
}

TEST_F(LogTest, LinesFromManyThreadsNeverInterleave) {
  constexpr int kThreads = 4;
  constexpr int kLines = 200;
  const std::string out = CaptureLog([] {
    std::vector<std::thread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([t] {
        for (int i = 0; i < kLines; ++i) {
          Info("tick", {{"thread", t}, {"i", i}, {"pad", std::string(300, 'a' + t)}});
        }
      });
    }
    for (auto& th : threads) th.join();
  });
  std::istringstream lines(out);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    ++count;
    ASSERT_EQ(line.rfind("{\"ts\":", 0), 0u) << line;
    ASSERT_EQ(line.back(), '}') << line;
    const size_t pad = line.find("\"pad\":\"");
    ASSERT_NE(pad, std::string::npos);
    const char c = line[pad + 7];
    EXPECT_EQ(line.substr(pad + 7, 300), std::string(300, c));
  }
  EXPECT_EQ(count, kThreads * kLines);
}

}  // namespace
}  // namespace herald::observe

#include "http/wire.h"

#include <gtest/gtest.h>

#include <set>

namespace herald::http {
namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

TEST(DecodeTargetTest, DecodesPathAndQueryInOrder) {
  const DecodedTarget t = DecodeTarget("/v1/a%20b/c+d?x=1&name=hello%20world&plus=a+b&x=2&flag&");
  EXPECT_EQ(t.path, "/v1/a b/c+d");
  EXPECT_EQ(
      t.query,
      (Params{{"x", "1"}, {"name", "hello world"}, {"plus", "a b"}, {"x", "2"}, {"flag", ""}}));
}

TEST(DecodeTargetTest, KeepsMalformedEscapesLiterally) {
  EXPECT_EQ(DecodeTarget("/a%zz%4").path, "/a%zz%4");
  EXPECT_EQ(PercentDecode("%41%62%", false), "Ab%");
}

TEST(DecodeTargetTest, HandlesAbsoluteAndAsteriskForms) {
  const DecodedTarget t = DecodeTarget("http://example.com:8080/v1/x?y=%2F");
  EXPECT_EQ(t.path, "/v1/x");
  EXPECT_EQ(t.query, (Params{{"y", "/"}}));
  EXPECT_EQ(DecodeTarget("http://example.com").path, "/");
  EXPECT_EQ(DecodeTarget("*").path, "*");
}

TEST(RequestIdTest, AcceptsOnlySaneClientIds) {
  EXPECT_TRUE(IsSaneRequestId("abc-123_X.y"));
  EXPECT_TRUE(IsSaneRequestId(std::string(128, 'a')));
  EXPECT_FALSE(IsSaneRequestId(""));
  EXPECT_FALSE(IsSaneRequestId(std::string(129, 'a')));
  EXPECT_FALSE(IsSaneRequestId("has space"));
  EXPECT_FALSE(IsSaneRequestId("quote\""));
}

TEST(RequestIdTest, MintsDistinctHexIds) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = MintRequestId();
    ASSERT_EQ(id.size(), 16u);
    ASSERT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(ErrorBodyTest, FollowsTheErrorContractAndEscapes) {
  EXPECT_EQ(ErrorBody("body_too_large", "Over \"100\" bytes\n"),
            R"({"error":{"code":"body_too_large","message":"Over \"100\" bytes\n","field":""}})");
  const Response r = ErrorResponse(413, "body_too_large", "x");
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.route, "");
  EXPECT_EQ(r.actor, "anonymous");
}

}  // namespace
}  // namespace herald::http

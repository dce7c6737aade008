// Strict JSON reading: every way a body can be unreadable is a 4xx naming the problem.
#include "api/json_body.h"

#include <gtest/gtest.h>

namespace herald::api {
namespace {

TEST(ParseJsonTest, NumbersBeyondADoubleAre400NotAnException) {
  for (const char* text :
       {R"({"a":1e400})", R"({"a":-1e400})", R"([1,2,1e999])", R"({"a":{"b":[-2e308]}})"}) {
    Result<Json> r = ParseJson(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().kind, ErrorKind::kMalformed) << text;
    EXPECT_EQ(r.error().code, "number_out_of_range") << text;
  }
  EXPECT_TRUE(ParseJson(R"({"a":1.7976931348623157e308,"b":99999999999999999999})").ok());
}

TEST(ParseJsonTest, AMemberNamedTwiceInOneObjectIsRefused) {
  Result<Json> r = ParseJson(R"({"opt_in":false,"name":"a","opt_in":true})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalid);
  EXPECT_EQ(r.error().code, "duplicate_field");
  EXPECT_EQ(r.error().field, "opt_in");
  r = ParseJson(R"({"devices":[{"channel":"a"},{"channel":"b","channel":"c"}]})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().field, "channel");
  // The same name in sibling or nested objects is no duplicate.
  EXPECT_TRUE(ParseJson(R"({"a":{"x":1},"b":{"x":2},"x":{"x":{"x":3}}})").ok());
  EXPECT_TRUE(ParseJson(R"([{"x":1},{"x":2}])").ok());
}

TEST(ParseJsonTest, DepthAndSyntaxAreStillRefusedAsBefore) {
  std::string deep(40, '[');
  deep += std::string(40, ']');
  EXPECT_EQ(ParseJson(deep).error().code, "json_too_deep");
  EXPECT_EQ(ParseJson(R"({"a":)").error().code, "malformed_json");
  EXPECT_EQ(ParseJson("\"\xff\"").error().code, "malformed_json");
}

}  // namespace
}  // namespace herald::api

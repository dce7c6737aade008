// ReadUserLine must answer exactly what the DOM path (ParseJson + ReadUser) answers, for the
// lines its scanner reads and for every line it hands over.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api/user_codec.h"

namespace herald::api {
namespace {

constexpr UserDefaults kDefaults{1'800'000'000'000, 30};

Result<User> ReadWithDom(std::string_view line) {
  Result<Json> doc = ParseJson(line);
  if (!doc.ok()) return doc.take_error();
  return ReadUser(*doc, kDefaults, true);
}

void ExpectSameAsDom(const std::string& line) {
  SCOPED_TRACE(line);
  Result<User> fast = ReadUserLine(line, kDefaults);
  Result<User> dom = ReadWithDom(line);
  ASSERT_EQ(fast.ok(), dom.ok());
  if (!dom.ok()) {
    EXPECT_EQ(fast.error().kind, dom.error().kind);
    EXPECT_EQ(fast.error().code, dom.error().code);
    EXPECT_EQ(fast.error().message, dom.error().message);
    EXPECT_EQ(fast.error().field, dom.error().field);
    return;
  }
  EXPECT_EQ(fast->external_id, dom->external_id);
  EXPECT_EQ(fast->name, dom->name);
  EXPECT_EQ(fast->opt_in, dom->opt_in);
  EXPECT_EQ(fast->consent_from, dom->consent_from);
  EXPECT_EQ(fast->consent_until, dom->consent_until);
  EXPECT_EQ(fast->groups, dom->groups);
  ASSERT_EQ(fast->devices.size(), dom->devices.size());
  for (size_t i = 0; i < dom->devices.size(); ++i) {
    EXPECT_EQ(fast->devices[i].channel, dom->devices[i].channel);
    EXPECT_EQ(fast->devices[i].address, dom->devices[i].address);
    EXPECT_EQ(fast->devices[i].id, dom->devices[i].id);
    EXPECT_EQ(fast->devices[i].disabled, dom->devices[i].disabled);
  }
}

TEST(ReadUserLine, AcceptsWhatTheDomPathAccepts) {
  const std::vector<std::string> lines = {
      R"({"external_id":"u1","opt_in":true})",
      R"({"external_id":"u1","name":"Ann","opt_in":false,"devices":[],"groups":[]})",
      R"(  { "opt_in" : true , "external_id" : "u2" , "name" : "김민준" }  )",
      "{\"external_id\":\"u3\",\t\"opt_in\":true}\r",
      std::string(
          R"({"external_id":"u4","opt_in":true,"devices":[{"channel":"sms","address":"+821022223333"},)") +
          R"({"address":"Ann@Example.COM","channel":"email"}],"groups":["b","a","b"]})",
      std::string(R"({"external_id":"u5","opt_in":true,"devices":[{"channel":"ios","address":")") +
          std::string(R"(ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789"},)") +
          R"({"channel":"android","address":"fcm:token-1.2_3"}]})",
      R"({"external_id":"u6","opt_in":true,"consent_from":"2027-01-01T00:00:00Z"})",
      std::string(R"({"external_id":"u7","opt_in":true,"consent_from":"2027-01-01T00:00:00Z",)") +
          R"("consent_until":"2028-01-01T00:00:00+02:00"})",
      R"({"external_id":"u8","opt_in":true,"consent_until":"2030-01-01T00:00:00.250Z"})",
  };
  for (const std::string& line : lines) ExpectSameAsDom(line);
}

TEST(ReadUserLine, RefusesWithTheDomPathsErrors) {
  const std::vector<std::string> lines = {
      "",
      "{",
      "[]",
      "{not json",
      R"({"external_id":"u1","opt_in":true} x)",
      R"({"external_id":"u1","opt_in":true}{})",
      R"({"external_id":"u1","opt_in":1})",
      R"({"external_id":"u1","opt_in":truex})",
      R"({"external_id":"u1"})",
      R"({"opt_in":true})",
      R"({"external_id":"","opt_in":true})",
      R"({"external_id":"u1","opt_in":true,"colour":"red"})",
      R"({"external_id":"u1","opt_in":true,"name":null})",
      R"({"external_id":"u1","opt_in":null})",
      R"({"external_id":"a","external_id":"b","opt_in":true})",
      R"({"external_id":"u\n1","opt_in":true})",
      R"({"external_id":"u\u00e91","opt_in":true})",
      "{\"external_id\":\"u\x01\",\"opt_in\":true}",
      "{\"external_id\":\"u\xff\",\"opt_in\":true}",
      "{\"external_id\":\"u1\",\"name\":\"\xc3\x28\",\"opt_in\":true}",
      "{\"external_id\":\"u1\",\"name\":\"a\x7f\",\"opt_in\":true}",
      R"({"external_id":"u1","name":")" + std::string(257, 'n') + R"(","opt_in":true})",
      R"({"external_id":")" + std::string(129, 'x') + R"(","opt_in":true})",
      R"({"external_id":"u1","opt_in":true,"consent_from":"yesterday"})",
      R"({"external_id":"u1","opt_in":true,"consent_until":"2020-01-01T00:00:00Z"})",
      std::string(R"({"external_id":"u1","opt_in":true,"consent_from":"2029-01-01T00:00:00Z",)") +
          R"("consent_until":"2028-01-01T00:00:00Z"})",
      R"({"external_id":"u1","opt_in":true,"devices":{}})",
      R"({"external_id":"u1","opt_in":true,"devices":[1]})",
      R"({"external_id":"u1","opt_in":true,"devices":[{"channel":"fax","address":"1"}]})",
      R"({"external_id":"u1","opt_in":true,"devices":[{"channel":"sms"}]})",
      R"({"external_id":"u1","opt_in":true,"devices":[{"channel":"sms","address":"+1"}]})",
      R"({"external_id":"u1","opt_in":true,"devices":[{"channel":"sms","address":"+8223456789"}]})",
      R"({"external_id":"u1","opt_in":true,"devices":[{"channel":"email","address":"a@b"}]})",
      R"({"external_id":"u1","opt_in":true,"devices":[{"channel":"ios","address":"abc"}]})",
      R"({"external_id":"u1","opt_in":true,"devices":[{"channel":"sms","address":"+1","x":1}]})",
      std::string(
          R"({"external_id":"u1","opt_in":true,"devices":[{"channel":"email","channel":"sms",)") +
          R"("address":"+821022223333"}]})",
      std::string(
          R"({"external_id":"u1","opt_in":true,"devices":[{"channel":"email","address":"a@b.co"},)") +
          R"({"channel":"email","address":"a@B.CO"}]})",
      R"({"external_id":"u1","opt_in":true,"groups":"all"})",
      R"({"external_id":"u1","opt_in":true,"groups":["a b"]})",
      R"({"external_id":"u1","opt_in":true,"groups":[7]})",
  };
  for (const std::string& line : lines) ExpectSameAsDom(line);
}

TEST(ReadUserLine, CountLimitsMatchTheDomPath) {
  auto with_devices = [](int n) {
    std::string line = R"({"external_id":"u1","opt_in":true,"devices":[)";
    for (int i = 0; i < n; ++i) {
      line += (i ? "," : "") + std::string(R"({"channel":"email","address":"a)") +
              std::to_string(i) + R"(@example.com"})";
    }
    return line + "]}";
  };
  auto with_groups = [](int n) {
    std::string line = R"({"external_id":"u1","opt_in":true,"groups":[)";
    for (int i = 0; i < n; ++i) line += (i ? ",\"g" : "\"g") + std::to_string(i) + "\"";
    return line + "]}";
  };
  for (int n : {15, 16, 17}) ExpectSameAsDom(with_devices(n));
  for (int n : {255, 256, 257}) ExpectSameAsDom(with_groups(n));
}

}  // namespace
}  // namespace herald::api

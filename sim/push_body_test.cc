// The APNs and FCM body readers: the rules they apply, and that the SAX readers agree with a
// reader of nlohmann's DOM (the oracle below, which defines the behaviour) on every body,
// including mutated, malformed and repeated-member ones.
#include "sim/push_body.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "sim/routes.h"

namespace herald::sim {
namespace {

using nlohmann::json;

FcmSend Refused(std::string_view error) {
  FcmSend out;
  out.error = error;
  return out;
}

std::string StringField(const json& obj, const char* key) {
  if (!obj.is_object()) return {};
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The oracle: the FCM rules over nlohmann's DOM, which keeps the last of repeated members.
FcmSend ReadFcmSendDom(std::string_view json_body) {
  json doc = json::parse(json_body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("message") || !doc["message"].is_object()) {
    return Refused(kFcmNoMessage);
  }
  const json& message = doc["message"];
  FcmSend out;
  out.token = StringField(message, "token");
  if (!IsFcmRegistrationToken(out.token)) return Refused(kFcmBadToken);
  const json notification = message.value("notification", json::object());
  const json data = message.value("data", json::object());
  if (!notification.is_object() || !data.is_object()) return Refused(kFcmBadObjects);
  size_t payload = 0;
  for (const auto& [key, value] : data.items()) {
    if (!value.is_string()) {
      return Refused("Invalid value at 'message.data[" + key + "].value' (TYPE_STRING)");
    }
    payload += key.size() + value.get_ref<const std::string&>().size();
  }
  out.title = StringField(notification, "title");
  out.body = StringField(notification, "body");
  if (payload + out.title.size() + out.body.size() > kFcmMaxPayload) return Refused(kFcmTooBig);
  out.delivery_id = StringField(data, "delivery_id");
  return out;
}

// The oracle for APNs.
ApnsAlert ReadApnsAlertDom(std::string_view json_body, bool background) {
  const json payload = json::parse(json_body, nullptr, /*allow_exceptions=*/false);
  ApnsAlert out;
  if (!payload.is_object()) return out;
  auto aps = payload.find("aps");
  if (aps == payload.end() || !aps->is_object()) return out;
  auto alert = aps->find("alert");
  if (alert == aps->end()) {
    out.ok = background && aps->contains("content-available");
    return out;
  }
  if (alert->is_string()) {
    out.ok = true;
    out.body = alert->get<std::string>();
    return out;
  }
  if (!alert->is_object() || alert->empty()) return out;
  out.ok = true;
  out.title = StringField(*alert, "title");
  out.body = StringField(*alert, "body");
  return out;
}

// Checks CheckFcmSend against the oracle, and returns what it answers.
FcmSend Fcm(std::string_view body) {
  FcmSend checked = CheckFcmSend(body);
  EXPECT_EQ(checked, ReadFcmSendDom(body)) << body;
  return checked;
}

ApnsAlert Apns(std::string_view body, bool background = false) {
  ApnsAlert checked = CheckApnsAlert(body, background);
  EXPECT_EQ(checked, ReadApnsAlertDom(body, background)) << body;
  return checked;
}

TEST(FcmSendTest, AcceptedMessageYieldsTokenTitleBodyAndDeliveryId) {
  const FcmSend send = Fcm(R"({"message":{"token":"tok:en_1.2-3",
      "notification":{"title":"Hi","body":"There","image":"x"},
      "data":{"delivery_id":"d-1","k":"v"}}})");
  EXPECT_EQ(send.error, "");
  EXPECT_EQ(send.token, "tok:en_1.2-3");
  EXPECT_EQ(send.title, "Hi");
  EXPECT_EQ(send.body, "There");
  EXPECT_EQ(send.delivery_id, "d-1");
}

TEST(FcmSendTest, UnknownMembersAtAnyDepthAreIgnored) {
  const FcmSend send = Fcm(R"( {"validate_only":false,"extra":[1,-2.5,0,null,true,{"a":[[],{}]}],
      "message":{"android":{"priority":"HIGH","ttl":"600s","notification":{"title":"no"}},
        "apns":{"payload":{"aps":{"alert":{"title":"no"}}}},"token":"t",
        "notification":{"title":{"nested":"no"},"body":"B"}, "fcm_options":{}} } )");
  EXPECT_EQ(send.error, "");
  EXPECT_EQ(send.token, "t");
  EXPECT_EQ(send.title, "");  // not a string: no title, no error
  EXPECT_EQ(send.body, "B");
  EXPECT_EQ(send.delivery_id, "");
}

TEST(FcmSendTest, WrongShapesAreRefusedWithFcmMessages) {
  EXPECT_EQ(Fcm(R"({"message":[]})").error, kFcmNoMessage);
  EXPECT_EQ(Fcm(R"({"message":"x"})").error, kFcmNoMessage);
  EXPECT_EQ(Fcm(R"({"msg":{"token":"t"}})").error, kFcmNoMessage);
  EXPECT_EQ(Fcm("{}").error, kFcmNoMessage);
  EXPECT_EQ(Fcm("{}").error, R"(Invalid JSON payload received: expected {"message":{...}}.)");
  EXPECT_EQ(Fcm(R"({"message":{}})").error,
            "The registration token is not a valid FCM registration token");
  EXPECT_EQ(Fcm(R"({"message":{}})").error, kFcmBadToken);
  EXPECT_EQ(Fcm(R"({"message":{"token":7}})").error, kFcmBadToken);
  EXPECT_EQ(Fcm(R"({"message":{"token":""}})").error, kFcmBadToken);
  EXPECT_EQ(Fcm(R"({"message":{"token":"a b"}})").error, kFcmBadToken);
  EXPECT_EQ(Fcm(R"({"message":{"token":"a\u0020b"}})").error, kFcmBadToken);
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","notification":[]}})").error, kFcmBadObjects);
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","notification":null}})").error, kFcmBadObjects);
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","data":"x"}})").error, kFcmBadObjects);
  // The token is checked before the shapes, the shapes before the data values.
  EXPECT_EQ(Fcm(R"({"message":{"data":{"a":1},"notification":[],"token":"!"}})").error,
            kFcmBadToken);
  EXPECT_EQ(Fcm(R"({"message":{"data":{"a":1},"notification":[],"token":"t"}})").error,
            kFcmBadObjects);
}

TEST(FcmSendTest, NonStringDataValueIsNamedLeastKeyFirst) {
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","data":{"n":1}}})").error,
            "Invalid value at 'message.data[n].value' (TYPE_STRING)");
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","data":{"z":{},"ok":"s","b":null,"m":[1]}}})").error,
            "Invalid value at 'message.data[b].value' (TYPE_STRING)");
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","data":{"delivery_id":true}}})").error,
            "Invalid value at 'message.data[delivery_id].value' (TYPE_STRING)");
}

TEST(FcmSendTest, PayloadLimitCountsDataKeysValuesTitleAndBody) {
  auto body = [](size_t value_bytes) {
    return json{{"message",
                 {{"token", "t"},
                  {"notification", {{"title", "ab"}, {"body", "cd"}}},
                  {"data", {{"k", std::string(value_bytes, 'v')}}}}}}
        .dump();
  };
  EXPECT_EQ(Fcm(body(kFcmMaxPayload - 5)).error, "");
  EXPECT_EQ(Fcm(body(kFcmMaxPayload - 4)).error, "Message is too big");
  // Escapes count as the characters they stand for: 4091 "\n" escapes are 4091 bytes.
  std::string escaped = R"({"message":{"token":"t","data":{"k":")";
  for (size_t i = 0; i < kFcmMaxPayload - 5; ++i) escaped += "\\n";
  EXPECT_EQ(Fcm(escaped + R"("},"notification":{"title":"ab","body":"cd"}}})").error, "");
  EXPECT_EQ(Fcm(escaped + R"("},"notification":{"title":"abc","body":"cd"}}})").error,
            "Message is too big");
}

TEST(FcmSendTest, EscapesInStringsAreDecoded) {
  const FcmSend send = Fcm(
      R"({"message":{"token":"\u0074ok","notification":{"title":"q\"b\\s\/)"
      R"(\b\f\n\r\t","body":"\u00e9\u20ac\ud83d\ude00 é€😀"},"data":{"delivery_id":"\u0041"}}})");
  EXPECT_EQ(send.error, "");
  EXPECT_EQ(send.token, "tok");
  EXPECT_EQ(send.title, "q\"b\\s/\b\f\n\r\t");
  EXPECT_EQ(send.body, "\u00e9\u20ac\U0001F600 \u00e9\u20ac\U0001F600");
  EXPECT_EQ(send.delivery_id, "A");
}

TEST(FcmSendTest, MalformedJsonIsRefusedAsNoMessage) {
  for (std::string_view bad : {
           "",
           " ",
           "{",
           "}",
           R"({"message":{"token":"t"})",
           R"({"message":{"token":"t"}}})",
           R"({"message":{"token":"t"}} x)",
           R"({"message":{"token":"t",}})",
           R"({"message":{"token":"t"},})",
           R"({"message":{"token":'t'}})",
           R"({"message":{"token":"t","data":{"a":"b\x"}}})",
           R"({message:{}})",
           R"({"message":{"token":"t","n":01}})",
           R"({"message":{"token":"t","n":1.}})",
           R"({"message":{"token":"t","n":-}})",
           R"({"message":{"token":"t","n":+1}})",
           R"({"message":{"token":"t","n":.5}})",
           R"({"message":{"token":"t","n":tru}})",
           R"({"message":{"token":"t","n":[1,]}})",
           R"({"message":{"token":"t","n":[1 2]}})",
           R"({"message":{"token":"t","data":{"a":"\ud800"}}})",
           R"({"message":{"token":"t","data":{"a":"\udc00"}}})",
           R"({"message":{"token":"t","data":{"a":"\ud800\u0041"}}})",
           R"({"message":{"token":"t","data":{"a":"\u12G4"}}})",
           "{\"message\":{\"token\":\"t\",\"data\":{\"a\":\"tab\there\"}}}",
           "{\"message\":{\"token\":\"t\",\"data\":{\"a\":\"\xff\"}}}",
           "{\"message\":{\"token\":\"t\",\"data\":{\"a\":\"\xc0\xaf\"}}}",
           "{\"message\":{\"token\":\"t\",\"data\":{\"a\":\"\xed\xa0\x80\"}}}",
           "{\"message\":{\"token\":\"t\",\"data\":{\"a\":\"\xe2\x82\"}}}",
       }) {
    EXPECT_EQ(Fcm(bad).error, kFcmNoMessage) << bad;
  }
}

TEST(FcmSendTest, EscapedNamesExponentsBomDeepNestingAndNulFollowTheDom) {
  // An escaped member name is the name it decodes to.
  EXPECT_EQ(Fcm(R"({"message":{"t\u006fken":"t"}})").token, "t");
  // Exponents (which may overflow a double), a byte order mark, deep nesting, a top-level array.
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","x":1e2}})").error, "");
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","x":1e999}})").error, kFcmNoMessage);
  EXPECT_EQ(Fcm("\xef\xbb\xbf{\"message\":{\"token\":\"t\"}}").error, "");
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","x":)" + deep + "}}").error, "");
  std::string deep_objects;
  for (int i = 0; i < 100; ++i) deep_objects += R"({"title":)";
  deep_objects += "1" + std::string(100, '}');
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","notification":)" + deep_objects + "}}").title, "");
  EXPECT_EQ(
      Fcm(R"({"message":{"token":"t","notification":{"x":{"y":{"z":[{"title":"no"}]}}}}})").title,
      "");
  EXPECT_EQ(Fcm("[]").error, kFcmNoMessage);
  // nlohmann reads a NUL byte as the end of the text.
  EXPECT_EQ(Fcm(std::string_view("{\"message\":{\"token\":\"t\"}}\0]", 27)).error, "");
}

// A repeated member name: the last one wins, and replaces all that the earlier one said.
TEST(FcmSendTest, RepeatedMessageReplacesEverythingReadFromTheEarlierOne) {
  EXPECT_EQ(Fcm(R"({"message":5,"message":{"token":"t"}})").error, "");
  EXPECT_EQ(Fcm(R"({"message":{"token":"t"},"message":[]})").error, kFcmNoMessage);
  EXPECT_EQ(Fcm(R"({"message":{"token":"t"},"message":{}})").error, kFcmBadToken);
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","notification":[]},"message":{"token":"u"}})").token,
            "u");
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","data":{"k":1}},"message":{"token":"t"}})").error, "");
  const FcmSend send =
      Fcm(R"({"message":{"token":"t","notification":{"title":"T","body":"B"},)"
          R"("data":{"delivery_id":"d","big":")" +
          std::string(kFcmMaxPayload, 'x') + R"("}},"message":{"token":"u","data":{"k":"v"}}})");
  EXPECT_EQ(send.error, "");  // the earlier data's size is forgotten too
  EXPECT_EQ(send.token, "u");
  EXPECT_EQ(send.title, "");
  EXPECT_EQ(send.body, "");
  EXPECT_EQ(send.delivery_id, "");
  // A "message" anywhere but at the top is not the message.
  EXPECT_EQ(Fcm(R"({"message":{"token":"t"},"x":{"message":{"token":"!"}}})").error, "");
}

TEST(FcmSendTest, RepeatedMessageMembersKeepTheLast) {
  EXPECT_EQ(Fcm(R"({"message":{"token":"a","token":"b"}})").token, "b");
  EXPECT_EQ(Fcm(R"({"message":{"token":"a","token":5}})").error, kFcmBadToken);
  EXPECT_EQ(Fcm(R"({"message":{"token":5,"token":"a"}})").token, "a");
}

TEST(FcmSendTest, RepeatedNotificationReplacesTheEarlierOne) {
  FcmSend send = Fcm(
      R"({"message":{"token":"t","notification":{"title":"a","body":"b"},"notification":{"body":"c"}}})");
  EXPECT_EQ(send.title, "");
  EXPECT_EQ(send.body, "c");
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","notification":5,"notification":{"title":"x"}}})").title,
            "x");
  EXPECT_EQ(
      Fcm(R"({"message":{"token":"t","notification":{"title":"x"},"notification":null}})").error,
      kFcmBadObjects);
  const std::string big_title = std::string(kFcmMaxPayload + 1, 'x');
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","notification":{"title":")" + big_title +
                R"("},"notification":{"title":"small"}}})")
                .error,
            "");
  EXPECT_EQ(
      Fcm(R"({"message":{"token":"t","notification":{"title":"small"},"notification":{"title":")" +
          big_title + R"("}}})")
          .error,
      kFcmTooBig);
  // Within a notification: the last title, the last body.
  send = Fcm(
      R"({"message":{"token":"t","notification":{"title":"a","title":"b","body":"c","body":1}}})");
  EXPECT_EQ(send.title, "b");
  EXPECT_EQ(send.body, "");
}

TEST(FcmSendTest, RepeatedDataReplacesTheEarlierOneAndItsSizeAndErrors) {
  FcmSend send = Fcm(R"({"message":{"token":"t","data":{"k":1},"data":{"delivery_id":"d"}}})");
  EXPECT_EQ(send.error, "");
  EXPECT_EQ(send.delivery_id, "d");
  send = Fcm(R"({"message":{"token":"t","data":{"delivery_id":"d","big":")" +
             std::string(kFcmMaxPayload, 'x') + R"("},"data":{"k":"v"}}})");
  EXPECT_EQ(send.error, "");
  EXPECT_EQ(send.delivery_id, "");
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","data":{"k":"v"},"data":"x"}})").error, kFcmBadObjects);
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","data":"x","data":{}}})").error, "");
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","data":{"k":"v"},"data":{"a":[]}}})").error,
            "Invalid value at 'message.data[a].value' (TYPE_STRING)");
}

TEST(FcmSendTest, RepeatedDataKeysKeepTheLastValue) {
  FcmSend send = Fcm(R"({"message":{"token":"t","data":{"k":1,"k":"v","delivery_id":"d"}}})");
  EXPECT_EQ(send.error, "");
  EXPECT_EQ(send.delivery_id, "d");
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","data":{"k":"v","k":{}}}})").error,
            "Invalid value at 'message.data[k].value' (TYPE_STRING)");
  EXPECT_EQ(
      Fcm(R"({"message":{"token":"t","data":{"delivery_id":"a","delivery_id":"b"}}})").delivery_id,
      "b");
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","data":{"delivery_id":"a","delivery_id":2}}})").error,
            "Invalid value at 'message.data[delivery_id].value' (TYPE_STRING)");
  // Only the last value counts towards the size.
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","data":{"k":")" + std::string(kFcmMaxPayload, 'x') +
                R"(","k":"v"}}})")
                .error,
            "");
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","data":{"k":"v","k":")" +
                std::string(kFcmMaxPayload, 'x') + R"("}}})")
                .error,
            kFcmTooBig);
  // Escaped and unescaped spellings of one key are one key.
  EXPECT_EQ(Fcm(R"({"message":{"token":"t","data":{"k":1,"\u006b":"v"}}})").error, "");
}

TEST(ApnsAlertTest, AlertObjectOrStringIsRead) {
  ApnsAlert alert = Apns(R"({"aps":{"alert":{"title":"T","body":"B","sound":"x"},"badge":1}})");
  EXPECT_TRUE(alert.ok);
  EXPECT_EQ(alert.title, "T");
  EXPECT_EQ(alert.body, "B");
  alert = Apns(R"({"aps":{"alert":"just \"text\" \u00e9"},"custom":{"aps":{"alert":"no"}}})");
  EXPECT_TRUE(alert.ok);
  EXPECT_EQ(alert.title, "");
  EXPECT_EQ(alert.body, "just \"text\" \u00e9");
  alert = Apns(R"({"aps":{"alert":{"title":1,"subtitle":"s"}}})");  // non-empty: accepted
  EXPECT_TRUE(alert.ok);
  EXPECT_EQ(alert.title, "");
  EXPECT_EQ(alert.body, "");
}

TEST(ApnsAlertTest, MissingOrWrongAlertIsPayloadEmpty) {
  for (std::string_view body :
       {R"({})", R"({"aps":{}})", R"({"aps":[]})", R"({"aps":"x"})", R"({"aps":{"alert":{}}})",
        R"({"aps":{"alert":5}})", R"({"aps":{"alert":null}})", R"({"aps":{"alert":["a"]}})",
        R"({"custom":{"alert":"x"}})", R"({"aps":{"content-available":1}})"}) {
    const ApnsAlert alert = Apns(body);
    EXPECT_FALSE(alert.ok) << body;
  }
}

TEST(ApnsAlertTest, BackgroundPushNeedsContentAvailableOnly) {
  EXPECT_TRUE(Apns(R"({"aps":{"content-available":1}})", true).ok);
  EXPECT_TRUE(Apns(R"({"aps":{"content-available":null},"x":[]})", true).ok);
  EXPECT_FALSE(Apns(R"({"aps":{}})", true).ok);
  EXPECT_FALSE(Apns(R"({"aps":{"alert":{}, "content-available":1}})", true).ok);
}

TEST(ApnsAlertTest, MalformedBodiesArePayloadEmpty) {
  for (std::string_view bad :
       {"", "null", "[]", R"({"aps":{"alert":"x"})", R"({"aps":{"alert":"x"}},)",
        R"({"aps":{"alert":"\q"}})", "{\"aps\":{\"alert\":\"\x80\"}}",
        R"({"aps":{"alert":"x","n":1e999}})"}) {
    EXPECT_FALSE(Apns(bad).ok) << bad;
    EXPECT_FALSE(Apns(bad, true).ok) << bad;
  }
  EXPECT_EQ(Apns(R"({"\u0061ps":{"alert":"a"}})").body, "a");
}

TEST(ApnsAlertTest, RepeatedApsReplacesTheEarlierOne) {
  EXPECT_EQ(Apns(R"({"aps":1,"aps":{"alert":"a"}})").body, "a");
  EXPECT_FALSE(Apns(R"({"aps":{"alert":"a"},"aps":{}})").ok);
  EXPECT_FALSE(Apns(R"({"aps":{"alert":"a"},"aps":5})").ok);
  EXPECT_FALSE(Apns(R"({"aps":{"content-available":1},"aps":{"badge":1}})", true).ok);
  EXPECT_TRUE(Apns(R"({"aps":{"badge":1},"aps":{"content-available":1}})", true).ok);
  const ApnsAlert alert = Apns(R"({"aps":{"alert":{"title":"t","body":"b"}},"aps":{"alert":"c"}})");
  EXPECT_TRUE(alert.ok);
  EXPECT_EQ(alert.title, "");
  EXPECT_EQ(alert.body, "c");
  EXPECT_TRUE(Apns(R"({"aps":{"alert":"a"},"x":{"aps":5}})").ok);
}

TEST(ApnsAlertTest, RepeatedAlertReplacesTheEarlierOne) {
  ApnsAlert alert = Apns(R"({"aps":{"alert":"a","alert":{"title":"t"}}})");
  EXPECT_TRUE(alert.ok);
  EXPECT_EQ(alert.title, "t");
  EXPECT_EQ(alert.body, "");
  alert = Apns(R"({"aps":{"alert":{"title":"t","body":"b"},"alert":{"body":"c"}}})");
  EXPECT_EQ(alert.title, "");
  EXPECT_EQ(alert.body, "c");
  alert = Apns(R"({"aps":{"alert":{"title":"t"},"alert":"s"}})");
  EXPECT_EQ(alert.title, "");
  EXPECT_EQ(alert.body, "s");
  EXPECT_FALSE(Apns(R"({"aps":{"alert":{"title":"t"},"alert":{}}})").ok);
  EXPECT_FALSE(Apns(R"({"aps":{"alert":{"x":1},"alert":5}})").ok);
  EXPECT_TRUE(Apns(R"({"aps":{"alert":5,"alert":{"x":1}}})").ok);
  EXPECT_FALSE(Apns(R"({"aps":{"alert":"a","alert":null,"content-available":1}})", true).ok);
  // Within an alert: the last title, the last body.
  alert = Apns(R"({"aps":{"alert":{"body":"a","body":"b","title":"x","title":2}}})");
  EXPECT_EQ(alert.title, "");
  EXPECT_EQ(alert.body, "b");
}

// Random edits of well-formed bodies, some with repeated members: the readers and the DOM
// oracle agree on every one.
TEST(PushBodyTest, SaxReaderAgreesWithDomReaderOnMutatedBodies) {
  const std::vector<std::string> seeds = {
      R"({"message":{"token":"tok","notification":{"title":"T","body":"B"},"data":{"delivery_id":"d","k":"v"},"android":{"ttl":"1s","n":[1,2.5,-3,true,false,null]}}})",
      R"({"aps":{"alert":{"title":"T\u00e9","body":"B\n"},"content-available":1},"x":{"y":[{}]}})",
      R"({"message":{"token":"a","data":{"k":"v","k":1},"notification":{"title":"T"},"token":"b","data":{"delivery_id":"d"}},"message":{"token":"c","notification":{"body":"B","body":"C"}}})",
      R"({"aps":{"alert":{"title":"T","title":"U"},"alert":"s","content-available":1},"aps":{"alert":{"body":"B"}}})",
  };
  constexpr std::string_view kAlphabet = "{}[]:,\"\\ 0123456789.-+eEtrufalsnTB\x80\xc3\xa9u";
  std::mt19937 rng(20240611);
  int valid = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string body = seeds[round % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % (body.size() + 1);
      const char c = kAlphabet[rng() % kAlphabet.size()];
      switch (rng() % 3) {
        case 0: body.insert(at, 1, c); break;
        case 1:
          if (at < body.size()) body.erase(at, 1);
          break;
        default:
          if (at < body.size()) body[at] = c;
          break;
      }
    }
    if (json::accept(body)) ++valid;
    ASSERT_EQ(CheckFcmSend(body), ReadFcmSendDom(body)) << body;
    for (bool background : {false, true}) {
      ASSERT_EQ(CheckApnsAlert(body, background), ReadApnsAlertDom(body, background)) << body;
    }
  }
  EXPECT_GT(valid, 2000);  // not only syntax errors
}

TEST(PushBodyTest, AppendJsonStringWritesWhatDumpJsonWrites) {
  for (std::string_view s :
       {std::string_view(""), std::string_view("projects/p/messages/0:1%ab"),
        std::string_view("q\"b\\s/"), std::string_view("\b\f\n\r\t\x01\x1f\x7f"),
        std::string_view("\xc3\xa9\xe2\x82\xac"), std::string_view("bad\xff\xc3"),
        std::string_view("nul\0x", 5)}) {
    std::string out = "<";
    AppendJsonString(out, s);
    EXPECT_EQ(out, "<" + DumpJson(json(std::string(s)))) << s;
  }
}

}  // namespace
}  // namespace herald::sim

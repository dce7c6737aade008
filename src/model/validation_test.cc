#include "model/validation.h"

#include <gtest/gtest.h>

namespace herald {
namespace {

// Asserts that `s` is a kInvalid refusal with this code and field.
template <typename R>
void ExpectRefused(const R& r, std::string_view code, std::string_view field) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalid);
  EXPECT_EQ(r.error().code, code);
  EXPECT_EQ(r.error().field, field);
  EXPECT_FALSE(r.error().message.empty());
}

Result<std::string> Normalize(Channel c, std::string_view address) {
  return NormalizeAddress(c, address, "devices[0].address");
}

std::string Normalized(Channel c, std::string_view address) {
  auto r = Normalize(c, address);
  EXPECT_TRUE(r.ok()) << address << ": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : "";
}

// ---- UTF-8 and control characters ------------------------------------------------------------

TEST(Utf8Test, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));  // é € 😀
  EXPECT_TRUE(IsValidUtf8("\xed\x9f\xbf"));                               // U+D7FF
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));                           // U+10FFFF
}

TEST(Utf8Test, RefusesOverlongsSurrogatesAndOutOfRange) {
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xc1\xbf"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));      // overlong 3-byte
  EXPECT_FALSE(IsValidUtf8("\xf0\x80\x80\xaf"));  // overlong 4-byte
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // U+D800 surrogate
  EXPECT_FALSE(IsValidUtf8("\xed\xbf\xbf"));      // U+DFFF surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(IsValidUtf8("\xf5\x80\x80\x80"));  // lead byte past F4
  EXPECT_FALSE(IsValidUtf8("\xff"));
}

TEST(Utf8Test, RefusesTruncatedAndStrayBytes) {
  EXPECT_FALSE(IsValidUtf8("\xc3"));          // truncated 2-byte
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));      // truncated 3-byte
  EXPECT_FALSE(IsValidUtf8("\xf0\x9f\x98"));  // truncated 4-byte
  EXPECT_FALSE(IsValidUtf8("abc\x80"));       // stray continuation
  EXPECT_FALSE(IsValidUtf8("\xe2\x28\xa1"));  // bad continuation
}

TEST(ControlCharacterTest, FindsC0DelAndC1Controls) {
  EXPECT_FALSE(HasControlCharacters("user-42 caf\xc3\xa9"));
  EXPECT_TRUE(HasControlCharacters("a\nb"));
  EXPECT_TRUE(HasControlCharacters(std::string("a\0b", 3)));
  EXPECT_TRUE(HasControlCharacters("a\x7f"));
  EXPECT_TRUE(HasControlCharacters("a\xc2\x85"));  // NEL, U+0085
  EXPECT_FALSE(HasControlCharacters("\xc2\xa0"));  // NBSP is not a control
}

// ---- external_id, name, group key ------------------------------------------------------------

TEST(FormatCharacterTest, FindsBidiOverridesZeroWidthAndTagsButNotJoiners) {
  EXPECT_EQ(FirstFormatCharacter("plain ascii"), std::nullopt);
  EXPECT_EQ(FirstFormatCharacter("Zo\u00EB M\u00FCller \u5F20\u4F1F"), std::nullopt);
  EXPECT_EQ(FirstFormatCharacter("abc\u202Egpj.exe"), 0x202Eu);
  EXPECT_EQ(FirstFormatCharacter("x\u2066y\u2069"), 0x2066u);
  EXPECT_EQ(FirstFormatCharacter("zero\u200Bwidth"), 0x200Bu);
  EXPECT_EQ(FirstFormatCharacter("\uFEFFbom"), 0xFEFFu);
  EXPECT_EQ(FirstFormatCharacter("soft\u00ADhyphen"), 0xADu);
  EXPECT_EQ(FirstFormatCharacter("tag\U000E0041"), 0xE0041u);
  EXPECT_EQ(FirstFormatCharacter("\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645"), std::nullopt)
      << "ZWNJ spells Persian";
  EXPECT_EQ(FirstFormatCharacter("\U0001F468\u200D\U0001F469"), std::nullopt) << "ZWJ joins emoji";
  const Status s = ValidateName("Invoice\u202Efdp.exe", "name");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, "invalid_name");
  EXPECT_NE(s.error().message.find("U+202E"), std::string::npos) << s.error().message;
  EXPECT_FALSE(ValidateExternalId("id\u200E", "external_id").ok());
}

TEST(ValidateExternalIdTest, AcceptsOneTo128BytesOfText) {
  EXPECT_TRUE(ValidateExternalId("u", "external_id").ok());
  EXPECT_TRUE(ValidateExternalId(std::string(128, 'x'), "external_id").ok());
  EXPECT_TRUE(ValidateExternalId("user:42/\xed\x95\x9c", "external_id").ok());
}

TEST(ValidateExternalIdTest, RefusesEmptyTooLongControlAndBadUtf8) {
  ExpectRefused(ValidateExternalId("", "external_id"), "invalid_external_id", "external_id");
  const Status long_id = ValidateExternalId(std::string(130, 'x'), "external_id");
  ExpectRefused(long_id, "invalid_external_id", "external_id");
  EXPECT_NE(long_id.error().message.find("130 bytes"), std::string::npos);
  EXPECT_NE(long_id.error().message.find("1-128"), std::string::npos);
  ExpectRefused(ValidateExternalId("a\tb", "users[3].external_id"), "invalid_external_id",
                "users[3].external_id");
  ExpectRefused(ValidateExternalId("a\xff", "external_id"), "invalid_external_id", "external_id");
}

TEST(ValidateNameTest, AcceptsUpTo256BytesIncludingEmpty) {
  EXPECT_TRUE(ValidateName("", "name").ok());
  EXPECT_TRUE(ValidateName("Kim Min-jun \xea\xb9\x80", "name").ok());
  EXPECT_TRUE(ValidateName(std::string(256, 'n'), "name").ok());
}

TEST(ValidateNameTest, RefusesTooLongBadUtf8AndControlsWithoutEchoingTheName) {
  const Status too_long = ValidateName(std::string(257, 'n'), "name");
  ExpectRefused(too_long, "invalid_name", "name");
  EXPECT_NE(too_long.error().message.find("257"), std::string::npos);
  ExpectRefused(ValidateName("Ada\xc0\xaf", "name"), "invalid_name", "name");
  const Status control = ValidateName("Ada Lovelace\n", "name");
  ExpectRefused(control, "invalid_name", "name");
  EXPECT_EQ(control.error().message.find("Lovelace"), std::string::npos);
}

TEST(ValidateGroupKeyTest, AcceptsAllowedCharacters) {
  EXPECT_TRUE(ValidateGroupKey("vip", "group").ok());
  EXPECT_TRUE(ValidateGroupKey("Region:KR.seoul_north-1", "group").ok());
  EXPECT_TRUE(ValidateGroupKey(std::string(128, 'g'), "group").ok());
}

TEST(ValidateGroupKeyTest, RefusesEmptyTooLongAndOtherCharacters) {
  ExpectRefused(ValidateGroupKey("", "groups[0]"), "invalid_group_key", "groups[0]");
  ExpectRefused(ValidateGroupKey(std::string(129, 'g'), "groups[0]"), "invalid_group_key",
                "groups[0]");
  ExpectRefused(ValidateGroupKey("has space", "groups[1]"), "invalid_group_key", "groups[1]");
  ExpectRefused(ValidateGroupKey("a/b", "groups[1]"), "invalid_group_key", "groups[1]");
}

// ---- device addresses ------------------------------------------------------------------------

TEST(NormalizeAddressTest, IosTokenIsLowerCasedHex) {
  const std::string token(64, 'A');
  EXPECT_EQ(Normalized(Channel::kIos, token), std::string(64, 'a'));
  EXPECT_EQ(Normalized(Channel::kIos, std::string(200, 'f')), std::string(200, 'f'));
}

TEST(NormalizeAddressTest, IosTokenRefusesWrongLengthOrNonHex) {
  ExpectRefused(Normalize(Channel::kIos, std::string(63, 'a')), "invalid_apns_token",
                "devices[0].address");
  ExpectRefused(Normalize(Channel::kIos, std::string(201, 'a')), "invalid_apns_token",
                "devices[0].address");
  ExpectRefused(Normalize(Channel::kIos, std::string(63, 'a') + "g"), "invalid_apns_token",
                "devices[0].address");
}

TEST(NormalizeAddressTest, AndroidTokenIsKeptAsGiven) {
  const std::string token = "dQw4w9WgXcQ:APA91bH-x_y.Z";
  EXPECT_EQ(Normalized(Channel::kAndroid, token), token);
  EXPECT_EQ(Normalized(Channel::kAndroid, std::string(4096, 'x')).size(), 4096u);
}

TEST(NormalizeAddressTest, AndroidTokenRefusesEmptyTooLongAndOtherCharacters) {
  ExpectRefused(Normalize(Channel::kAndroid, ""), "invalid_fcm_token", "devices[0].address");
  ExpectRefused(Normalize(Channel::kAndroid, std::string(4097, 'x')), "invalid_fcm_token",
                "devices[0].address");
  ExpectRefused(Normalize(Channel::kAndroid, "abc/def"), "invalid_fcm_token", "devices[0].address");
  ExpectRefused(Normalize(Channel::kAndroid, "abc def"), "invalid_fcm_token", "devices[0].address");
}

TEST(NormalizeAddressTest, EmailDomainIsLowerCasedAndLocalPartKept) {
  EXPECT_EQ(Normalized(Channel::kEmail, "Ada.Lovelace@Example.COM"), "Ada.Lovelace@example.com");
  EXPECT_EQ(Normalized(Channel::kEmail, "a+tag@mail.example.co.kr"), "a+tag@mail.example.co.kr");
  EXPECT_EQ(Normalized(Channel::kEmail, "o'brien!#$%&*/=?^_`{|}~-@x.io"),
            "o'brien!#$%&*/=?^_`{|}~-@x.io");
  EXPECT_EQ(Normalized(Channel::kEmail, "\"john doe\"@example.com"), "\"john doe\"@example.com");
  EXPECT_EQ(Normalized(Channel::kEmail, "\"a@b\\\"c\"@example.com"), "\"a@b\\\"c\"@example.com");
  EXPECT_EQ(Normalized(Channel::kEmail, "ops@[192.0.2.1]"), "ops@[192.0.2.1]");
  EXPECT_EQ(Normalized(Channel::kEmail, "x@xn--bcher-kva.example"), "x@xn--bcher-kva.example");
}

TEST(NormalizeAddressTest, EmailAcceptsExactly254BytesAndRefuses255) {
  const std::string domain = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                             std::string(63, 'c') + ".com";  // 195 bytes
  const std::string at_limit = std::string(58, 'l') + "@" + domain;
  ASSERT_EQ(at_limit.size(), 254u);
  EXPECT_TRUE(Normalize(Channel::kEmail, at_limit).ok());
  ExpectRefused(Normalize(Channel::kEmail, "l" + at_limit), "invalid_email", "devices[0].address");
}

TEST(NormalizeAddressTest, EmailRefusesMalformedAddresses) {
  for (const char* bad : {"",
                          "plainaddress",
                          "@example.com",
                          "user@",
                          "user@localhost",
                          ".user@example.com",
                          "user.@example.com",
                          "us..er@example.com",
                          "us er@example.com",
                          "user@exa mple.com",
                          "user@-example.com",
                          "user@example-.com",
                          "user@example..com",
                          "user@example.com.",
                          "user@[300.1.1.1]",
                          "user@[1.2.3]",
                          "user@1.2.3.4",
                          "\"unterminated@example.com",
                          "us(er)@example.com",
                          "us\xc3\xa9r@example.com",
                          "a@b@example.com"}) {
    ExpectRefused(Normalize(Channel::kEmail, bad), "invalid_email", "devices[0].address");
  }
  ExpectRefused(Normalize(Channel::kEmail, std::string(65, 'l') + "@example.com"), "invalid_email",
                "devices[0].address");
  ExpectRefused(Normalize(Channel::kEmail, "user@" + std::string(64, 'd') + ".com"),
                "invalid_email", "devices[0].address");
}

TEST(NormalizeAddressTest, EmailRefusalDoesNotEchoTheAddress) {
  auto r = Normalize(Channel::kEmail, "secret.person@nodot");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.find("secret.person"), std::string::npos);
  EXPECT_EQ(r.error().message.find("nodot"), std::string::npos);
}

TEST(NormalizeAddressTest, PhoneNumberIsStoredInE164) {
  EXPECT_EQ(Normalized(Channel::kSms, "+82 10-2222-3333"), "+821022223333");
  EXPECT_EQ(Normalized(Channel::kSms, "+44 7911 123456"), "+447911123456");
  EXPECT_EQ(Normalized(Channel::kSms, "+1 (650) 253-0000"), "+16502530000");
  EXPECT_EQ(Normalized(Channel::kSms, "+821022223333"), "+821022223333");
}

TEST(NormalizeAddressTest, FixedLineOrMobileNumbersAreAccepted) {
  // US numbers cannot be told apart from mobiles by their digits.
  EXPECT_EQ(Normalized(Channel::kSms, "+1 650-253-0000"), "+16502530000");
}

TEST(NormalizeAddressTest, PhoneNumberThatCannotReceiveSmsIsRefused) {
  const auto fixed = Normalize(Channel::kSms, "+44 20 7946 0958");  // London landline
  ExpectRefused(fixed, "phone_not_sms_capable", "devices[0].address");
  EXPECT_EQ(fixed.error().message.find("7946"), std::string::npos);
  ExpectRefused(Normalize(Channel::kSms, "+1 800 555 0199"), "phone_not_sms_capable",
                "devices[0].address");  // US toll free
}

TEST(NormalizeAddressTest, PhoneNumberRefusesInvalidInput) {
  for (const char* bad : {"", "01022223333", "82 10-2222-3333", "+", "+82 10", "+999 1234567",
                          "+1 650 253 0000 ext. 12", "+1-800-FLOWERS", "+82 10 2222 3333 x"}) {
    ExpectRefused(Normalize(Channel::kSms, bad), "invalid_phone_number", "devices[0].address");
  }
  ExpectRefused(Normalize(Channel::kSms, "+" + std::string(100, '1')), "invalid_phone_number",
                "devices[0].address");
}

// ---- user shape ------------------------------------------------------------------------------

User UserWithDevices(size_t n) {
  User u;
  u.external_id = "u1";
  u.consent_from = 1000;
  u.consent_until = 2000;
  for (size_t i = 0; i < n; ++i) {
    Device d;
    d.channel = Channel::kEmail;
    d.address = "user" + std::to_string(i) + "@example.com";
    u.devices.push_back(d);
  }
  return u;
}

TEST(ValidateUserShapeTest, AcceptsSixteenDistinctDevices) {
  EXPECT_TRUE(ValidateUserShape(UserWithDevices(0)).ok());
  EXPECT_TRUE(ValidateUserShape(UserWithDevices(16)).ok());
}

TEST(ValidateUserShapeTest, RefusesSeventeenDevices) {
  const Status s = ValidateUserShape(UserWithDevices(17));
  ExpectRefused(s, "too_many_devices", "devices");
  EXPECT_NE(s.error().message.find("16"), std::string::npos);
}

TEST(ValidateUserShapeTest, SameAddressOnDifferentChannelsIsNotADuplicate) {
  User u = UserWithDevices(0);
  u.devices.push_back({.channel = Channel::kSms, .address = "+821022223333"});
  u.devices.push_back({.channel = Channel::kAndroid, .address = "+821022223333"});
  EXPECT_TRUE(ValidateUserShape(u).ok());
}

TEST(ValidateUserShapeTest, DuplicateDeviceNamesTheSecondOne) {
  User u = UserWithDevices(3);
  u.devices.push_back(u.devices[1]);
  const Status s = ValidateUserShape(u);
  ExpectRefused(s, "duplicate_device", "devices[3].address");
  EXPECT_EQ(s.error().message.find("user1@example.com"), std::string::npos);
}

TEST(ValidateUserShapeTest, ConsentUntilAfterConsentFromIsAccepted) {
  User u = UserWithDevices(1);
  u.consent_from = 5000;
  u.consent_until = 5001;
  EXPECT_TRUE(ValidateUserShape(u).ok());
}

TEST(ValidateUserShapeTest, ConsentWindowMustNotBeEmptyOrReversed) {
  User u = UserWithDevices(1);
  u.consent_from = 5000;
  u.consent_until = 5000;
  ExpectRefused(ValidateUserShape(u), "invalid_consent_window", "consent_until");
  u.consent_until = 4000;
  ExpectRefused(ValidateUserShape(u), "invalid_consent_window", "consent_until");
}

// ---- notification text -----------------------------------------------------------------------

TEST(ValidateTextTest, AcceptsUpTo1500BytesTogether) {
  EXPECT_TRUE(ValidateText("", "x").ok());
  EXPECT_TRUE(ValidateText("Sale", "\xf0\x9f\x8e\x89 50% off today").ok());
  EXPECT_TRUE(ValidateText("", std::string(1500, 'b')).ok());
  EXPECT_TRUE(ValidateText(std::string(500, 't'), std::string(1000, 'b')).ok());
}

TEST(ValidateTextTest, Refuses1501BytesAndStatesSizeAndLimit) {
  const Status s = ValidateText(std::string(501, 't'), std::string(1000, 'b'));
  ExpectRefused(s, "text_too_large", "body");
  EXPECT_NE(s.error().message.find("1501"), std::string::npos);
  EXPECT_NE(s.error().message.find("1500"), std::string::npos);
  ExpectRefused(ValidateText("", std::string(1501, 'b')), "text_too_large", "body");
}

TEST(ValidateTextTest, RefusesEmptyBody) {
  ExpectRefused(ValidateText("", ""), "text_empty", "body");
  ExpectRefused(ValidateText("title only", ""), "text_empty", "body");
}

TEST(ValidateTextTest, RefusesInvalidUtf8NamingTheFieldAtFault) {
  ExpectRefused(ValidateText("ok", "bad \xc0\xaf"), "invalid_utf8", "body");
  ExpectRefused(ValidateText("bad \xed\xa0\x80", "ok"), "invalid_utf8", "title");
}

}  // namespace
}  // namespace herald

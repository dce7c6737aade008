#include "sim/mail_parse.h"

#include <gtest/gtest.h>

namespace herald::sim {
namespace {

TEST(MailParseTest, ReadsHeadersAndPlainBody) {
  ParsedMail m = ParseMail(
      "From: a@b\r\nSubject: Hello\r\n there\r\nMessage-ID: <abc@host>\r\n"
      "X-Herald-Delivery-Id: dlv_1\r\n\r\nLine one\r\nLine two\r\n");
  EXPECT_EQ(m.subject, "Hello there");  // unfolded
  EXPECT_EQ(m.message_id, "abc@host");
  EXPECT_EQ(m.delivery_id, "dlv_1");
  EXPECT_EQ(m.body, "Line one\nLine two");
}

TEST(MailParseTest, DecodesEncodedWordsAndTransferEncodings) {
  EXPECT_EQ(DecodeEncodedWords("=?UTF-8?B?R3LDvMOfZQ==?= =?utf-8?Q?_und_Caf=C3=A9?="),
            "Grüße und Café");
  EXPECT_EQ(DecodeEncodedWords("plain =?bad"), "plain =?bad");
  EXPECT_EQ(DecodeQuotedPrintable("a=3Db=\r\nc"), "a=bc");
  ParsedMail m = ParseMail("Subject: s\nContent-Transfer-Encoding: base64\n\nSGVsbG8gd29ybGQ=\n");
  EXPECT_EQ(m.body, "Hello world");
}

TEST(MailParseTest, TakesTheTextPartOfMultipart) {
  ParsedMail m = ParseMail(
      "Subject: multi\r\nContent-Type: multipart/alternative; boundary=\"XYZ\"\r\n\r\n"
      "preamble\r\n--XYZ\r\nContent-Type: text/html\r\n\r\n<b>hi</b>\r\n"
      "--XYZ\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: quoted-printable\r\n\r\nhi =E2=9C=93\r\n--XYZ--\r\n");
  EXPECT_EQ(m.body, "hi \xE2\x9C\x93");
}

}  // namespace
}  // namespace herald::sim

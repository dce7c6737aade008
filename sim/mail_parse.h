// Just enough RFC 5322 / MIME reading for the SMTP simulator to record what it was sent: the
// Subject (RFC 2047 encoded words decoded), Message-ID, X-Herald-Delivery-Id, and the text body
// (quoted-printable or base64 decoded; of a multipart message, the first text/plain part).
// Pure functions, no I/O.
#pragma once

#include <string>
#include <string_view>

namespace herald::sim {

struct ParsedMail {
  std::string subject;
  std::string message_id;   // without the angle brackets
  std::string delivery_id;  // X-Herald-Delivery-Id
  std::string body;         // line ends as "\n", trailing line ends trimmed
};

// `data` is the message as received after dot-unstuffing, CRLF or LF line ends.
ParsedMail ParseMail(std::string_view data);

// RFC 2047 encoded words (=?charset?B?...?= and =?charset?Q?...?=) in a header value.
std::string DecodeEncodedWords(std::string_view value);
std::string DecodeQuotedPrintable(std::string_view text);

}  // namespace herald::sim

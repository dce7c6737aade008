#include "model/validation.h"

#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>
#include <unicode/uchar.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>

#include "model/phone_parse.h"

namespace herald {
namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

constexpr size_t kMinApnsChars = 64;
constexpr size_t kMaxApnsChars = 200;
constexpr size_t kMaxFcmChars = 4096;
constexpr size_t kMaxEmailLocalBytes = 64;
constexpr size_t kMaxDnsLabelBytes = 63;
// Longer than any E.164 number with its punctuation; keeps the parser off megabyte inputs.
constexpr size_t kMaxPhoneInputBytes = 64;

Error Invalid(std::string_view code, std::string message, std::string_view field) {
  return MakeError(ErrorKind::kInvalid, std::string(code), std::move(message), std::string(field));
}

// The name to use for a field in messages: the caller's path, or a fallback when it is empty.
std::string Name(std::string_view field, std::string_view fallback) {
  return std::string(field.empty() ? fallback : field);
}

bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAsciiAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsHexDigit(char c) {
  return IsAsciiDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
char ToLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Offset of the first byte that breaks UTF-8, or npos when s is well-formed.
size_t FirstInvalidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80;  // bounds of the second byte (tighter for E0, ED, F0, F4)
    unsigned char hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // UTF-16 surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // past U+10FFFF
    } else {
      return i;  // continuation byte, overlong C0/C1 lead, or F5-FF
    }
    if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

// Checks length, UTF-8 and control characters of a free-text field; `what` names the rule in
// the message (e.g. "1-128 bytes of UTF-8 without control characters").
Status CheckText(std::string_view s, std::string_view field, std::string_view fallback,
                 std::string_view code, size_t min_bytes, size_t max_bytes, std::string_view what) {
  const std::string name = Name(field, fallback);
  if (s.size() < min_bytes || s.size() > max_bytes) {
    return Invalid(
        code,
        name + " must be " + std::string(what) + "; got " + std::to_string(s.size()) + " bytes.",
        field);
  }
  if (const size_t bad = FirstInvalidUtf8(s); bad != std::string_view::npos) {
    return Invalid(code,
                   name + " must be " + std::string(what) + "; it is not valid UTF-8 (byte " +
                       std::to_string(bad) + ").",
                   field);
  }
  if (HasControlCharacters(s)) {
    return Invalid(code,
                   name + " must be " + std::string(what) +
                       "; it contains a control character (such as a newline or tab).",
                   field);
  }
  if (const std::optional<uint32_t> cf = FirstFormatCharacter(s)) {
    char hex[16];
    std::snprintf(hex, sizeof(hex), "U+%04X", *cf);
    return Invalid(code,
                   name + " must be " + std::string(what) +
                       "; it contains the invisible format "
                       "character " +
                       hex +
                       " (such as a bidirectional override or a zero-width "
                       "space), which can make text display as something else.",
                   field);
  }
  return Status::Ok();
}

Result<std::string> NormalizeApnsToken(std::string_view token, std::string_view field) {
  const bool size_ok = token.size() >= kMinApnsChars && token.size() <= kMaxApnsChars;
  if (!size_ok || !std::all_of(token.begin(), token.end(), IsHexDigit)) {
    return Invalid("invalid_apns_token",
                   Name(field, "address") +
                       " must be an APNs device token of 64-200 hexadecimal characters; got " +
                       std::to_string(token.size()) + " characters" +
                       (size_ok ? ", some of them not hexadecimal." : "."),
                   field);
  }
  std::string out(token);
  std::transform(out.begin(), out.end(), out.begin(), ToLowerAscii);
  return out;
}

bool IsFcmChar(char c) {
  return IsAsciiAlpha(c) || IsAsciiDigit(c) || c == '_' || c == ':' || c == '.' || c == '-';
}

Result<std::string> NormalizeFcmToken(std::string_view token, std::string_view field) {
  const bool size_ok = !token.empty() && token.size() <= kMaxFcmChars;
  if (!size_ok || !std::all_of(token.begin(), token.end(), IsFcmChar)) {
    return Invalid("invalid_fcm_token",
                   Name(field, "address") +
                       " must be an FCM registration token of 1-4096 characters from A-Z, a-z, "
                       "0-9, '_', ':', '.' and '-'; got " +
                       std::to_string(token.size()) + " characters" +
                       (size_ok ? ", some of them outside that set." : "."),
                   field);
  }
  return std::string(token);
}

// ---- email -----------------------------------------------------------------------------------

bool IsAtext(char c) {
  static constexpr std::string_view kSpecials = "!#$%&'*+-/=?^_`{|}~";
  return IsAsciiAlpha(c) || IsAsciiDigit(c) || kSpecials.find(c) != std::string_view::npos;
}

// RFC 5322 dot-atom-text: 1*atext *("." 1*atext).
bool IsDotAtom(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (s[i + 1] == '.') return false;
    } else if (!IsAtext(s[i])) {
      return false;
    }
  }
  return true;
}

// RFC 5322 quoted-string without folding: printable ASCII and spaces, with '"' and '\' escaped.
bool IsQuotedString(std::string_view s) {
  if (s.size() < 3 || s.front() != '"' || s.back() != '"') return false;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    const char c = s[i];
    if (c == '\\') {
      if (i + 2 >= s.size() || s[i + 1] < 0x20 || s[i + 1] > 0x7E) return false;
      ++i;
    } else if (c == '"' || c < 0x20 || c > 0x7E) {
      return false;
    }
  }
  return true;
}

bool IsIpv4Literal(std::string_view s) {
  if (s.size() < 2 || s.front() != '[' || s.back() != ']') return false;
  s = s.substr(1, s.size() - 2);
  for (int octet = 0; octet < 4; ++octet) {
    if (octet > 0) {
      if (s.empty() || s.front() != '.') return false;
      s.remove_prefix(1);
    }
    size_t digits = 0;
    int value = 0;
    while (digits < s.size() && IsAsciiDigit(s[digits]) && digits < 3) {
      value = value * 10 + (s[digits] - '0');
      ++digits;
    }
    if (digits == 0 || value > 255 || (digits > 1 && s.front() == '0')) return false;
    s.remove_prefix(digits);
  }
  return s.empty();
}

// Empty when the domain is acceptable, otherwise the reason it is not.
std::string DomainProblem(std::string_view domain) {
  if (domain.empty()) return "the domain after '@' is empty";
  if (domain.front() == '[') {
    return IsIpv4Literal(domain) ? ""
                                 : "an address literal must be an IPv4 address like [192.0.2.1]";
  }
  size_t labels = 0;
  std::string_view last;
  for (std::string_view rest = domain;;) {
    const size_t dot = rest.find('.');
    const std::string_view label = rest.substr(0, dot);
    if (label.empty()) return "the domain has an empty label (two dots, or a dot at either end)";
    if (label.size() > kMaxDnsLabelBytes) return "a domain label is longer than 63 characters";
    for (char c : label) {
      if (!IsAsciiAlpha(c) && !IsAsciiDigit(c) && c != '-') {
        return "domain labels may hold only letters, digits and '-'";
      }
    }
    if (label.front() == '-' || label.back() == '-') {
      return "a domain label starts or ends with '-'";
    }
    ++labels;
    last = label;
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  if (labels < 2) return "the domain needs at least one dot, like example.com";
  if (std::all_of(last.begin(), last.end(), IsAsciiDigit)) {
    return "the top-level domain is all digits (write an IP address as [192.0.2.1])";
  }
  return "";
}

Result<std::string> NormalizeEmail(std::string_view address, std::string_view field) {
  const auto refuse = [&](std::string_view why) -> Error {
    return Invalid("invalid_email",
                   Name(field, "address") +
                       " must be an email address like name@example.com of at most 254 bytes; " +
                       std::string(why) + ".",
                   field);
  };
  if (address.size() > kMaxEmailBytes) {
    return refuse("got " + std::to_string(address.size()) + " bytes");
  }
  const size_t at = address.rfind('@');
  if (at == std::string_view::npos) return refuse("it has no '@'");
  const std::string_view local = address.substr(0, at);
  const std::string_view domain = address.substr(at + 1);
  if (local.empty()) return refuse("the part before '@' is empty");
  if (local.size() > kMaxEmailLocalBytes) {
    return refuse("the part before '@' is " + std::to_string(local.size()) +
                  " bytes, more than the 64 allowed");
  }
  if (!(local.front() == '"' ? IsQuotedString(local) : IsDotAtom(local))) {
    return refuse(
        "the part before '@' must be letters, digits and !#$%&'*+-/=?^_`{|}~ separated by "
        "single dots, or a quoted string");
  }
  if (std::string why = DomainProblem(domain); !why.empty()) return refuse(why);
  std::string out(address);
  std::transform(out.begin() + static_cast<ptrdiff_t>(at) + 1, out.end(),
                 out.begin() + static_cast<ptrdiff_t>(at) + 1, ToLowerAscii);
  return out;
}

// ---- sms -------------------------------------------------------------------------------------

Result<std::string> NormalizePhone(std::string_view number, std::string_view field) {
  const std::string name = Name(field, "address");
  const auto invalid = [&](std::string_view why) -> Error {
    return Invalid("invalid_phone_number",
                   name + " must be a phone number in international format, like +14155550123; " +
                       std::string(why) + ".",
                   field);
  };
  if (number.empty() || number.front() != '+') return invalid("it must start with '+'");
  if (number.size() > kMaxPhoneInputBytes) {
    return invalid("got " + std::to_string(number.size()) + " bytes, more than the 64 allowed");
  }
  // Letters would let the parser read extensions ("ext. 12") or vanity words: refuse them.
  for (char c : number.substr(1)) {
    if (!IsAsciiDigit(c) && c != ' ' && c != '-' && c != '.' && c != '(' && c != ')') {
      return invalid("after the '+' only digits, spaces, '-', '.' and parentheses are allowed");
    }
  }
  const PhoneNumberUtil& util = *PhoneNumberUtil::GetInstance();
  PhoneNumber parsed;
  PhoneNumberUtil::PhoneNumberType type = PhoneNumberUtil::UNKNOWN;
  const bool canonical = internal::ReadCanonicalPhone(number, &parsed, &type);
  switch (canonical ? PhoneNumberUtil::NO_PARSING_ERROR
                    : util.Parse(std::string(number), "ZZ", &parsed)) {
    case PhoneNumberUtil::NO_PARSING_ERROR: break;
    case PhoneNumberUtil::INVALID_COUNTRY_CODE_ERROR:
      return invalid("it does not start with a known country code");
    case PhoneNumberUtil::TOO_SHORT_NSN:
    case PhoneNumberUtil::TOO_SHORT_AFTER_IDD: return invalid("it has too few digits");
    case PhoneNumberUtil::TOO_LONG_NSN: return invalid("it has too many digits");
    default: return invalid("it could not be read as a number");
  }
  // IsValidNumber(n) is exactly GetNumberType(n) != UNKNOWN (both resolve the region and match
  // the same metadata); asking once halves the regex work.
  if (!canonical) type = util.GetNumberType(parsed);
  switch (type) {
    case PhoneNumberUtil::UNKNOWN: return invalid("it is not a valid number for its country code");
    case PhoneNumberUtil::MOBILE:
    case PhoneNumberUtil::FIXED_LINE_OR_MOBILE:
    case PhoneNumberUtil::PERSONAL_NUMBER: break;
    default:
      return Invalid("phone_not_sms_capable",
                     name +
                         " is a valid number of a kind that cannot receive SMS (fixed line, toll "
                         "free, premium rate, shared cost, VoIP, pager or similar); give a "
                         "mobile number.",
                     field);
  }
  std::string e164;
  util.Format(parsed, PhoneNumberUtil::E164, &e164);
  return e164;
}

}  // namespace

bool IsValidUtf8(std::string_view s) { return FirstInvalidUtf8(s) == std::string_view::npos; }

bool HasControlCharacters(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) return true;
    // C1 controls U+0080-U+009F are encoded as C2 80 - C2 9F.
    if (c == 0xC2 && i + 1 < s.size()) {
      const auto next = static_cast<unsigned char>(s[i + 1]);
      if (next >= 0x80 && next <= 0x9F) return true;
    }
  }
  return false;
}

std::optional<uint32_t> FirstFormatCharacter(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const auto n = static_cast<int32_t>(s.size());
  for (int32_t i = 0; i < n;) {
    if (p[i] < 0x80) {  // ASCII has no format characters
      ++i;
      continue;
    }
    UChar32 c = 0;
    U8_NEXT(p, i, n, c);
    if (c < 0) continue;  // ill-formed: IsValidUtf8 reports it
    // ZERO WIDTH NON-JOINER and JOINER are kept: Persian and Indic names are spelt with them,
    // and emoji sequences are joined by them. Neither reorders text.
    if (c == 0x200C || c == 0x200D) continue;
    if (u_charType(c) == U_FORMAT_CHAR) return static_cast<uint32_t>(c);
  }
  return std::nullopt;
}

Status ValidateExternalId(std::string_view id, std::string_view field) {
  return CheckText(id, field, "external_id", "invalid_external_id", 1, kMaxExternalIdBytes,
                   "1-128 bytes of UTF-8 without control characters");
}

Status ValidateName(std::string_view name, std::string_view field) {
  return CheckText(name, field, "name", "invalid_name", 0, kMaxNameBytes,
                   "at most 256 bytes of UTF-8 without control characters");
}

Status ValidateGroupKey(std::string_view key, std::string_view field) {
  const auto allowed = [](char c) {
    return IsAsciiAlpha(c) || IsAsciiDigit(c) || c == '_' || c == '.' || c == ':' || c == '-';
  };
  const bool size_ok = !key.empty() && key.size() <= kMaxGroupKeyBytes;
  if (!size_ok || !std::all_of(key.begin(), key.end(), allowed)) {
    return Invalid("invalid_group_key",
                   Name(field, "group key") +
                       " must be 1-128 characters from A-Z, a-z, 0-9, '_', '.', ':' and '-'; got " +
                       std::to_string(key.size()) + " characters" +
                       (size_ok ? ", some of them outside that set." : "."),
                   field);
  }
  return Status::Ok();
}

Result<std::string> NormalizeAddress(Channel channel, std::string_view address,
                                     std::string_view field) {
  switch (channel) {
    case Channel::kIos: return NormalizeApnsToken(address, field);
    case Channel::kAndroid: return NormalizeFcmToken(address, field);
    case Channel::kEmail: return NormalizeEmail(address, field);
    case Channel::kSms: return NormalizePhone(address, field);
  }
  return Invalid("invalid_channel", "The channel must be one of ios, android, email or sms.",
                 field);
}

Status ValidateUserShape(const User& user) {
  if (user.devices.size() > kMaxDevicesPerUser) {
    return Invalid("too_many_devices",
                   "A user may have at most 16 devices; got " +
                       std::to_string(user.devices.size()) + ". Remove some before adding more.",
                   "devices");
  }
  for (size_t i = 1; i < user.devices.size(); ++i) {
    const Device& d = user.devices[i];
    for (size_t j = 0; j < i; ++j) {
      const Device& e = user.devices[j];
      if (d.channel == e.channel && d.address == e.address) {
        const std::string path = "devices[" + std::to_string(i) + "]";
        return Invalid("duplicate_device",
                       path + " repeats the " + std::string(ToString(d.channel)) +
                           " address of devices[" + std::to_string(j) +
                           "]; each channel and address pair may appear only once per user.",
                       path + ".address");
      }
    }
  }
  if (user.consent_until <= user.consent_from) {
    return Invalid("invalid_consent_window",
                   "consent_until must be later than consent_from; got consent_from " +
                       FormatRfc3339(user.consent_from) + " and consent_until " +
                       FormatRfc3339(user.consent_until) + ".",
                   "consent_until");
  }
  return Status::Ok();
}

Status ValidateText(std::string_view title, std::string_view body) {
  for (const auto& [text, field] : {std::pair{title, "title"}, std::pair{body, "body"}}) {
    if (const size_t bad = FirstInvalidUtf8(text); bad != std::string_view::npos) {
      return Invalid("invalid_utf8",
                     std::string(field) + " is not valid UTF-8 (the first bad byte is at offset " +
                         std::to_string(bad) + "); send text encoded as UTF-8.",
                     field);
    }
  }
  if (body.empty()) {
    return Invalid("text_empty", "body must not be empty; give 1-1500 bytes of text.", "body");
  }
  const size_t total = title.size() + body.size();
  if (total > kMaxTextBytes) {
    return Invalid("text_too_large",
                   "title and body together must be at most 1500 bytes of UTF-8; got " +
                       std::to_string(total) + " bytes. Shorten the text.",
                   "body");
  }
  return Status::Ok();
}

}  // namespace herald

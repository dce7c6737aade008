// The validation rules of DESIGN §5, one function each. Every refusal is an Error of kind
// kInvalid with a stable code and the field path given by the caller. Thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "model/model.h"

namespace herald {

inline constexpr size_t kMaxExternalIdBytes = 128;
inline constexpr size_t kMaxNameBytes = 256;
inline constexpr size_t kMaxDevicesPerUser = 16;
inline constexpr size_t kMaxGroupKeyBytes = 128;
inline constexpr size_t kMaxEmailBytes = 254;
inline constexpr size_t kMaxTextBytes = 1500;

// True when s is well-formed UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF).
bool IsValidUtf8(std::string_view s);
// True when s holds a C0 control character, DEL, or a C1 control (U+0080-U+009F).
bool HasControlCharacters(std::string_view s);
// The first invisible format character (Unicode category Cf: bidirectional overrides and
// isolates, zero-width space, soft hyphen, BOM, tag characters, ...) in UTF-8 text, or nullopt.
// U+200C/U+200D (zero-width non-joiner and joiner) are not reported: names are spelt with them.
std::optional<uint32_t> FirstFormatCharacter(std::string_view s);

// Codes: "invalid_external_id".
Status ValidateExternalId(std::string_view id, std::string_view field);
// Codes: "invalid_name" (too long, bad UTF-8, control or invisible format characters).
Status ValidateName(std::string_view name, std::string_view field);
// Codes: "invalid_group_key".
Status ValidateGroupKey(std::string_view key, std::string_view field);

// Checks a device address for its channel and returns it normalised:
//  ios     -> APNs token, 64-200 hex chars, returned lower-cased; code "invalid_apns_token"
//  android -> FCM token, 1-4096 chars of [A-Za-z0-9_:.-];       code "invalid_fcm_token"
//  email   -> addr-spec (RFC 5322 dot-atom or quoted local part, domain of DNS labels or an
//             address literal), at most 254 bytes, domain lower-cased; code "invalid_email"
//  sms     -> parsed with libphonenumber (a leading '+' is required), returned as E.164;
//             code "invalid_phone_number" when it is not a valid number,
//             "phone_not_sms_capable" when its type cannot receive SMS (fixed line, toll free,
//             premium rate, shared cost, VoIP-only ranges are refused; mobile,
//             fixed-line-or-mobile and personal numbers are accepted).
Result<std::string> NormalizeAddress(Channel channel, std::string_view address,
                                     std::string_view field);

// Checks a user as a whole after each field was checked: device count ("too_many_devices"),
// duplicate channel+address pairs ("duplicate_device", field "devices[i].address"),
// consent window ("invalid_consent_window": consent_until must be after consent_from).
Status ValidateUserShape(const User& user);

// Notification text: title + body valid UTF-8, 1-1500 bytes together.
// Codes "invalid_utf8", "text_empty", "text_too_large" (the message states the size and limit).
Status ValidateText(std::string_view title, std::string_view body);

}  // namespace herald

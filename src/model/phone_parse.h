// The regex-light reading of a phone number written in canonical E.164 ("+" and digits only).
//
// libphonenumber's Parse runs about ten ICU regular expressions (extension, viability, plus sign,
// national prefix...) whatever the input, and GetNumberType converts the number to UTF-16 for
// each of the up to eleven patterns it tries: together ~11 µs per number, most of a bulk
// import's time. For the canonical form ReadCanonicalPhone reaches the same PhoneNumber
// directly and classifies it with the same metadata (libphonenumber's own compiled-in
// collection) and the same rules, matched by RE2; it declines (the caller then asks
// libphonenumber) for everything else: punctuation, a leading zero after the country code, a
// number the country's national-prefix rule could rewrite, non-geographic codes.
// phone_parse_test.cc checks it against libphonenumber over every calling code.
#pragma once

#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

#include <string_view>

namespace herald::internal {

// True with *out and *type set exactly as PhoneNumberUtil::Parse(number, "ZZ", out) (returning
// NO_PARSING_ERROR) and then GetNumberType(*out) would set them; false when the fast reading
// does not apply.
bool ReadCanonicalPhone(std::string_view number, i18n::phonenumbers::PhoneNumber* out,
                        i18n::phonenumbers::PhoneNumberUtil::PhoneNumberType* type);

}  // namespace herald::internal

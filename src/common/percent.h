// Percent-decoding (RFC 3986 §2.1) for paths, query strings and form bodies. Pure functions,
// thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace herald {

// 0-15 for a hex digit (either case), -1 for anything else.
int HexDigitValue(char c);

// Decodes %XX escapes, and '+' to a space when `plus_is_space` (query strings and
// application/x-www-form-urlencoded). A malformed escape is kept literally.
std::string PercentDecode(std::string_view s, bool plus_is_space);

}  // namespace herald

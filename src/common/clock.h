// Time in Herald is milliseconds since the Unix epoch (UTC), held in an int64.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace herald {

using UnixMillis = int64_t;

// The wall clock, in milliseconds.
UnixMillis NowMillis();

// RFC 3339 in UTC with millisecond precision: 2026-11-24T06:00:00.000Z.
std::string FormatRfc3339(UnixMillis t);

// Parses RFC 3339 (`Z` or a numeric offset, optional fractions; a 'T' or ' ' separator).
// Returns nullopt for anything else, including out-of-range fields.
std::optional<UnixMillis> ParseRfc3339(std::string_view s);

}  // namespace herald

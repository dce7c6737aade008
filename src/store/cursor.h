// Page cursors and limits of every store backend. A cursor is base64url("<tag>:<last key>"): opaque
// to clients, and the tag makes a cursor of one listing (or garbage) fail to decode in another.
// Thread-safe (pure functions).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace herald {

inline constexpr int kMaxPageLimit = 1000;

// The page size the store uses for a requested limit: clamped to [1, kMaxPageLimit].
int ClampLimit(int limit);

std::string EncodeCursor(char tag, std::string_view last_key);
// The last key of the previous page; "" for an empty cursor. kInvalid "invalid_cursor"
// (field "cursor") when the cursor was not made by EncodeCursor with this tag.
Result<std::string> DecodeCursor(char tag, std::string_view cursor);

// The same for row keys (audit ids, delivery and event keys), sealed (common/sealed_ids.h) so
// that a cursor does not show how many rows all tenants together have; 0 for an empty cursor.
std::string EncodeIdCursor(char tag, int64_t last_id);
Result<int64_t> DecodeIdCursor(char tag, std::string_view cursor);

}  // namespace herald

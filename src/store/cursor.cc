#include "store/cursor.h"

#include <algorithm>
#include <charconv>

#include "common/sealed_ids.h"
#include "crypto/crypto.h"

namespace herald {
namespace {

Error InvalidCursor() {
  return MakeError(ErrorKind::kInvalid, "invalid_cursor",
                   "The cursor is not one this listing returned; start again without it.",
                   "cursor");
}

}  // namespace

int ClampLimit(int limit) { return std::clamp(limit, 1, kMaxPageLimit); }

std::string EncodeCursor(char tag, std::string_view last_key) {
  std::string raw;
  raw.reserve(last_key.size() + 2);
  raw.push_back(tag);
  raw.push_back(':');
  raw.append(last_key);
  return crypto::Base64UrlEncode(raw);
}

Result<std::string> DecodeCursor(char tag, std::string_view cursor) {
  if (cursor.empty()) return std::string();
  Result<std::string> raw = crypto::Base64UrlDecode(cursor);
  if (!raw.ok() || raw->size() < 3 || (*raw)[0] != tag || (*raw)[1] != ':') {
    return InvalidCursor();
  }
  return raw->substr(2);
}

std::string EncodeIdCursor(char tag, int64_t last_id) {
  return EncodeCursor(tag, SealRowKey(tag, last_id));
}

Result<int64_t> DecodeIdCursor(char tag, std::string_view cursor) {
  if (cursor.empty()) return int64_t{0};
  Result<std::string> key = DecodeCursor(tag, cursor);
  if (!key.ok()) return key.take_error();
  const std::optional<int64_t> id = OpenRowKey(tag, *key);
  if (!id) return InvalidCursor();
  return *id;
}

}  // namespace herald

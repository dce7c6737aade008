// Strict JSON reading for request bodies: a depth limit, objects only where objects belong,
// unknown fields refused, typed getters that name the field at fault. nlohmann is confined to
// src/api.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/result.h"

namespace herald::api {

using Json = nlohmann::json;

inline constexpr int kMaxJsonDepth = 32;

// Parses text as JSON, refusing invalid UTF-8 and nesting deeper than kMaxJsonDepth (400
// "malformed_json" / "json_too_deep"), numbers beyond a double's range (400
// "number_out_of_range") and an object that names a member twice (422 "duplicate_field",
// field = the member's name). Never throws.
Result<Json> ParseJson(std::string_view text);
// The same, and the document must be an object (422 "invalid_type" otherwise).
Result<Json> ParseJsonObject(std::string_view text);

// Refuses members not in `allowed` (422 "unknown_field", field = prefix + name).
Status CheckFields(const Json& obj, std::initializer_list<std::string_view> allowed,
                   std::string_view prefix = {});

// Typed getters: nullopt when the member is absent (or null, when null_is_absent). A member of
// the wrong type is 422 "invalid_type" naming the expected type.
Result<std::optional<std::string>> GetString(const Json& obj, std::string_view key,
                                             std::string_view path);
Result<std::optional<bool>> GetBool(const Json& obj, std::string_view key, std::string_view path);
Result<std::optional<int64_t>> GetInt(const Json& obj, std::string_view key, std::string_view path);
// An RFC 3339 time (422 "invalid_time").
Result<std::optional<UnixMillis>> GetTime(const Json& obj, std::string_view key,
                                          std::string_view path);

// "a string", "a number", ... for messages.
std::string_view JsonTypeName(const Json& v);

}  // namespace herald::api

#include "api/json_body.h"

#include <algorithm>
#include <exception>
#include <string>
#include <vector>

namespace herald::api {
namespace {

struct TooDeep {};
struct DuplicateKey {
  std::string key;
};

Error Invalid(std::string code, std::string message, std::string_view field) {
  return MakeError(ErrorKind::kInvalid, std::move(code), std::move(message), std::string(field));
}

Error WrongType(std::string_view path, std::string_view expected, const Json& got) {
  return Invalid("invalid_type",
                 std::string(path) + " must be " + std::string(expected) + "; got " +
                     std::string(JsonTypeName(got)) + ".",
                 path);
}

}  // namespace

std::string_view JsonTypeName(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: return "a string";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "an integer";
    case Json::value_t::number_float: return "a number";
    default: return "an unsupported value";
  }
}

Result<Json> ParseJson(std::string_view text) {
  // The members seen so far of each object being read, innermost last: RFC 8259 leaves
  // duplicate names to the reader, and a reader that silently keeps the last one lets two
  // parties read one document differently (a signature checked over one value, the other used).
  std::vector<std::vector<std::string>> open_objects;
  try {
    auto guard = [&open_objects](int depth, Json::parse_event_t event, Json& parsed) {
      switch (event) {
        case Json::parse_event_t::object_start:
          if (depth >= kMaxJsonDepth) throw TooDeep{};
          open_objects.emplace_back();
          break;
        case Json::parse_event_t::array_start:
          if (depth >= kMaxJsonDepth) throw TooDeep{};
          break;
        case Json::parse_event_t::object_end:
          if (!open_objects.empty()) open_objects.pop_back();
          break;
        case Json::parse_event_t::key: {
          auto& seen = open_objects.back();
          const auto& key = parsed.get_ref<const std::string&>();
          if (std::find(seen.begin(), seen.end(), key) != seen.end()) throw DuplicateKey{key};
          seen.push_back(key);
          break;
        }
        default: break;
      }
      return true;
    };
    return Json::parse(text.begin(), text.end(), guard);
  } catch (const TooDeep&) {
    return MakeError(ErrorKind::kMalformed, "json_too_deep",
                     "The JSON body nests deeper than " + std::to_string(kMaxJsonDepth) +
                         " levels; flatten it.");
  } catch (const DuplicateKey& d) {
    return Invalid(
        "duplicate_field",
        "The member \"" + d.key + "\" appears twice in one object; send each member once.", d.key);
  } catch (const Json::parse_error& e) {
    std::string what = e.what();
    // nlohmann's message names the byte position and the problem (including ill-formed UTF-8).
    const auto pos = what.find("parse error");
    return MakeError(
        ErrorKind::kMalformed, "malformed_json",
        "The body is not valid JSON: " + (pos == std::string::npos ? what : what.substr(pos)));
  } catch (const Json::out_of_range&) {
    // nlohmann's out_of_range.406: a number (1e400, -1e400) beyond a double's range.
    return MakeError(ErrorKind::kMalformed, "number_out_of_range",
                     "The body holds a number beyond the range of a 64-bit float (about "
                     "1.8e308); send numbers within it.");
  } catch (const std::exception&) {
    return MakeError(ErrorKind::kMalformed, "malformed_json", "The body is not valid JSON.");
  }
}

Result<Json> ParseJsonObject(std::string_view text) {
  if (text.empty()) {
    return MakeError(ErrorKind::kMalformed, "malformed_json",
                     "The request needs a JSON object body; it was empty.");
  }
  auto doc = ParseJson(text);
  if (!doc.ok()) return doc;
  if (!doc->is_object()) {
    return Invalid("invalid_type",
                   "The body must be a JSON object; got " + std::string(JsonTypeName(*doc)) + ".",
                   "");
  }
  return doc;
}

Status CheckFields(const Json& obj, std::initializer_list<std::string_view> allowed,
                   std::string_view prefix) {
  for (const auto& [key, value] : obj.items()) {
    bool known = false;
    for (auto a : allowed) known = known || a == key;
    if (!known) {
      const std::string path = std::string(prefix) + key;
      std::string message = "Unknown field \"" + path + "\"; the allowed fields are: ";
      bool first = true;
      for (auto a : allowed) {
        if (!first) message += ", ";
        message += a;
        first = false;
      }
      message += '.';
      return Invalid("unknown_field", std::move(message), path);
    }
  }
  return Status::Ok();
}

Result<std::optional<std::string>> GetString(const Json& obj, std::string_view key,
                                             std::string_view path) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<std::string>{};
  if (!it->is_string()) return WrongType(path, "a string", *it);
  return std::optional<std::string>(it->get<std::string>());
}

Result<std::optional<bool>> GetBool(const Json& obj, std::string_view key, std::string_view path) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<bool>{};
  if (!it->is_boolean()) return WrongType(path, "a boolean (true or false)", *it);
  return std::optional<bool>(it->get<bool>());
}

Result<std::optional<int64_t>> GetInt(const Json& obj, std::string_view key,
                                      std::string_view path) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<int64_t>{};
  if (it->is_number_integer()) return std::optional<int64_t>(it->get<int64_t>());
  if (it->is_number_unsigned()) {
    const auto v = it->get<uint64_t>();
    if (v <= static_cast<uint64_t>(INT64_MAX)) return std::optional<int64_t>(int64_t(v));
  }
  return WrongType(path, "an integer", *it);
}

Result<std::optional<UnixMillis>> GetTime(const Json& obj, std::string_view key,
                                          std::string_view path) {
  auto s = GetString(obj, key, path);
  if (!s.ok()) return s.take_error();
  if (!s->has_value()) return std::optional<UnixMillis>{};
  auto t = ParseRfc3339(**s);
  if (!t) {
    return Invalid("invalid_time",
                   std::string(path) + " must be an RFC 3339 time such as 2026-11-24T06:00:00Z.",
                   path);
  }
  return std::optional<UnixMillis>(*t);
}

}  // namespace herald::api

// ReadUserLine: the NDJSON import's reader. A document DOM per line (nlohmann) costs more than
// validating the user, so lines of the usual shape are read by a small scanner that knows the
// fields of a user and builds the User directly. The scanner only ever accepts: anything it does
// not fully understand (escapes, nulls, numbers, duplicate or unknown members, a refused value)
// goes to the DOM path, which therefore decides every refusal and its message.
#include <algorithm>
#include <array>
#include <cstring>
#include <optional>

#include "api/user_codec.h"
#include "model/validation.h"

namespace herald::api {
namespace {

constexpr int64_t kDayMillis = 86'400'000;
constexpr size_t kMaxGroups = 256;

// A forward-only scanner over one line. Every Read* returns false when the text is not the
// simple form it accepts; the caller then gives the line to the DOM path.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  void SkipSpace() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\r' || *p_ == '\n')) ++p_;
  }
  bool AtEnd() {
    SkipSpace();
    return p_ == end_;
  }
  // Reads a JSON array of at most `max` elements, `element` reading each (false: refused).
  template <typename F>
  bool ReadArray(size_t max, F&& element) {
    if (!Take('[')) return false;
    for (size_t n = 0; !Take(']'); ++n) {
      if ((n > 0 && !Take(',')) || n == max || !element()) return false;
    }
    return true;
  }
  bool Take(char c) {
    SkipSpace();
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }
  bool Peek(char c) {
    SkipSpace();
    return p_ < end_ && *p_ == c;
  }

  // A string without escapes and without control characters; the bytes must be valid UTF-8
  // (checked when any is outside ASCII). The view points into the line.
  bool ReadString(std::string_view& out) {
    if (!Take('"')) return false;
    const char* start = p_;
    bool ascii = true;
    for (; p_ < end_; ++p_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') break;
      if (c == '\\' || c < 0x20) return false;
      ascii = ascii && c < 0x80;
    }
    if (p_ == end_) return false;
    out = std::string_view(start, static_cast<size_t>(p_ - start));
    ++p_;
    return ascii || IsValidUtf8(out);
  }

  bool ReadBool(bool& out) {
    SkipSpace();
    if (Literal("true")) {
      out = true;
      return true;
    }
    if (Literal("false")) {
      out = false;
      return true;
    }
    return false;
  }

 private:
  bool Literal(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() ||
        std::memcmp(p_, word.data(), word.size()) != 0) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  const char* p_;
  const char* end_;
};

// {"channel": ..., "address": ...}, each exactly once, valid, in either order.
bool ScanDevice(Scanner& in, Device& out) {
  if (!in.Take('{')) return false;
  std::optional<std::string_view> channel, address;
  for (bool first = true; !in.Take('}'); first = false) {
    if (!first && !in.Take(',')) return false;
    std::string_view key, value;
    if (!in.ReadString(key) || !in.Take(':') || !in.ReadString(value)) return false;
    std::optional<std::string_view>* slot = key == "channel"   ? &channel
                                            : key == "address" ? &address
                                                               : nullptr;
    if (slot == nullptr || slot->has_value()) return false;
    *slot = value;
  }
  if (!channel || !address) return false;
  const std::optional<Channel> c = ParseChannel(*channel);
  if (!c) return false;
  Result<std::string> normalised = NormalizeAddress(*c, *address, "");
  if (!normalised.ok()) return false;
  out.channel = *c;
  out.address = std::move(*normalised);
  return true;
}

// A user line that ReadUser(ParseJson(line), defaults, true) would accept, read without a DOM;
// nullopt when the line needs the DOM path (including every line it would refuse).
std::optional<User> ScanUser(std::string_view line, const UserDefaults& defaults) {
  Scanner in(line);
  if (!in.Take('{')) return std::nullopt;
  enum Member { kExternalId, kName, kOptIn, kFrom, kUntil, kDevices, kGroups, kMembers };
  static constexpr std::array<std::string_view, kMembers> kNames = {
      "external_id", "name", "opt_in", "consent_from", "consent_until", "devices", "groups"};
  bool seen[kMembers] = {};
  User user;
  std::optional<UnixMillis> from, until;
  for (bool first = true; !in.Take('}'); first = false) {
    if (!first && !in.Take(',')) return std::nullopt;
    std::string_view key;
    if (!in.ReadString(key) || !in.Take(':')) return std::nullopt;
    const auto* name = std::find(kNames.begin(), kNames.end(), key);
    if (name == kNames.end()) return std::nullopt;  // unknown member: the DOM path refuses it
    const auto m = static_cast<Member>(name - kNames.begin());
    if (seen[m]) return std::nullopt;  // nlohmann keeps the last of duplicate members
    seen[m] = true;
    std::string_view text;
    switch (m) {
      case kExternalId:
        if (!in.ReadString(text) || !ValidateExternalId(text, "external_id").ok()) {
          return std::nullopt;
        }
        user.external_id = text;
        break;
      case kName:
        if (!in.ReadString(text) || !ValidateName(text, "name").ok()) return std::nullopt;
        user.name = text;
        break;
      case kOptIn:
        if (!in.ReadBool(user.opt_in)) return std::nullopt;
        break;
      case kFrom:
      case kUntil: {
        if (!in.ReadString(text)) return std::nullopt;
        const std::optional<UnixMillis> t = ParseRfc3339(text);
        if (!t) return std::nullopt;
        (m == kFrom ? from : until) = *t;
        break;
      }
      case kDevices:
        if (!in.ReadArray(kMaxDevicesPerUser,
                          [&] { return ScanDevice(in, user.devices.emplace_back()); })) {
          return std::nullopt;
        }
        break;
      case kGroups:
        if (!in.ReadArray(kMaxGroups, [&] {
              if (!in.ReadString(text) || !ValidateGroupKey(text, "").ok()) return false;
              user.groups.emplace_back(text);
              return true;
            })) {
          return std::nullopt;
        }
        break;
      case kMembers: return std::nullopt;
    }
  }
  if (!in.AtEnd() || !seen[kExternalId] || !seen[kOptIn]) return std::nullopt;
  user.consent_from = from.value_or(defaults.now);
  user.consent_until =
      until.value_or(user.consent_from + int64_t{defaults.default_consent_days} * kDayMillis);
  if (until && user.consent_until <= defaults.now) return std::nullopt;
  std::sort(user.groups.begin(), user.groups.end());
  user.groups.erase(std::unique(user.groups.begin(), user.groups.end()), user.groups.end());
  if (!ValidateUserShape(user).ok()) return std::nullopt;
  return user;
}

}  // namespace

Result<User> ReadUserLine(std::string_view line, const UserDefaults& defaults) {
  if (std::optional<User> user = ScanUser(line, defaults)) return std::move(*user);
  Result<Json> doc = ParseJson(line);
  if (!doc.ok()) return doc.take_error();
  return ReadUser(*doc, defaults, /*allow_external_id=*/true);
}

}  // namespace herald::api

#include "api/user_codec.h"

#include <algorithm>

#include "model/validation.h"

namespace herald::api {
namespace {

Error Invalid(std::string code, std::string message, std::string field) {
  return MakeError(ErrorKind::kInvalid, std::move(code), std::move(message), std::move(field));
}

constexpr int64_t kDayMillis = 86'400'000;

}  // namespace

Result<Device> ReadDevice(const Json& doc, const std::string& path) {
  if (!doc.is_object()) {
    return Invalid(
        "invalid_type",
        path + " must be an object {channel, address}; got " + std::string(JsonTypeName(doc)) + ".",
        path);
  }
  const std::string prefix = path.empty() ? "" : path + ".";
  if (auto s = CheckFields(doc, {"channel", "address"}, prefix); !s.ok()) return s.take_error();
  auto channel_text = GetString(doc, "channel", prefix + "channel");
  if (!channel_text.ok()) return channel_text.take_error();
  if (!channel_text->has_value()) {
    return Invalid("missing_field", prefix + "channel is required: ios, android, email or sms.",
                   prefix + "channel");
  }
  auto channel = ParseChannel(**channel_text);
  if (!channel) {
    return Invalid("invalid_channel", prefix + "channel must be ios, android, email or sms.",
                   prefix + "channel");
  }
  auto address = GetString(doc, "address", prefix + "address");
  if (!address.ok()) return address.take_error();
  if (!address->has_value()) {
    return Invalid("missing_field", prefix + "address is required.", prefix + "address");
  }
  auto normalised = NormalizeAddress(*channel, **address, prefix + "address");
  if (!normalised.ok()) return normalised.take_error();
  Device d;
  d.channel = *channel;
  d.address = std::move(*normalised);
  return d;
}

Result<User> ReadUser(const Json& doc, const UserDefaults& defaults, bool allow_external_id) {
  if (!doc.is_object()) {
    return Invalid("invalid_type",
                   "A user must be a JSON object; got " + std::string(JsonTypeName(doc)) + ".", "");
  }
  Status fields = allow_external_id
                      ? CheckFields(doc, {"external_id", "name", "opt_in", "consent_from",
                                          "consent_until", "devices", "groups"})
                      : CheckFields(doc, {"name", "opt_in", "consent_from", "consent_until",
                                          "devices", "groups"});
  if (!fields.ok()) return fields.take_error();
  User user;
  if (allow_external_id) {
    auto id = GetString(doc, "external_id", "external_id");
    if (!id.ok()) return id.take_error();
    if (!id->has_value()) {
      return Invalid("missing_field", "external_id is required on every line.", "external_id");
    }
    if (auto s = ValidateExternalId(**id, "external_id"); !s.ok()) return s.take_error();
    user.external_id = **id;
  }
  auto name = GetString(doc, "name", "name");
  if (!name.ok()) return name.take_error();
  user.name = name->value_or("");
  if (auto s = ValidateName(user.name, "name"); !s.ok()) return s.take_error();

  auto opt_in = GetBool(doc, "opt_in", "opt_in");
  if (!opt_in.ok()) return opt_in.take_error();
  if (!opt_in->has_value()) {
    return Invalid("missing_field",
                   "opt_in is required: true when the user agreed to receive notifications.",
                   "opt_in");
  }
  user.opt_in = **opt_in;

  auto from = GetTime(doc, "consent_from", "consent_from");
  if (!from.ok()) return from.take_error();
  auto until = GetTime(doc, "consent_until", "consent_until");
  if (!until.ok()) return until.take_error();
  user.consent_from = from->value_or(defaults.now);
  user.consent_until =
      until->value_or(user.consent_from + int64_t{defaults.default_consent_days} * kDayMillis);
  if (until->has_value() && user.consent_until <= defaults.now) {
    return Invalid("consent_expired",
                   "consent_until is not in the future; a user whose consent has ended cannot "
                   "be registered.",
                   "consent_until");
  }

  if (auto it = doc.find("devices"); it != doc.end() && !it->is_null()) {
    if (!it->is_array()) {
      return Invalid("invalid_type",
                     "devices must be a list; got " + std::string(JsonTypeName(*it)) + ".",
                     "devices");
    }
    if (it->size() > kMaxDevicesPerUser) {
      return Invalid("too_many_devices",
                     "A user can have at most 16 devices; got " + std::to_string(it->size()) + ".",
                     "devices");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      auto d = ReadDevice((*it)[i], "devices[" + std::to_string(i) + "]");
      if (!d.ok()) return d.take_error();
      user.devices.push_back(std::move(*d));
    }
  }
  if (auto it = doc.find("groups"); it != doc.end() && !it->is_null()) {
    if (!it->is_array()) {
      return Invalid(
          "invalid_type",
          "groups must be a list of group keys; got " + std::string(JsonTypeName(*it)) + ".",
          "groups");
    }
    if (it->size() > 256) {
      return Invalid("too_many_groups", "A user can be in at most 256 groups.", "groups");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      const std::string path = "groups[" + std::to_string(i) + "]";
      const Json& g = (*it)[i];
      if (!g.is_string()) {
        return Invalid("invalid_type", path + " must be a string (a group key).", path);
      }
      if (auto s = ValidateGroupKey(g.get_ref<const std::string&>(), path); !s.ok()) {
        return s.take_error();
      }
      user.groups.push_back(g.get<std::string>());
    }
    std::sort(user.groups.begin(), user.groups.end());
    user.groups.erase(std::unique(user.groups.begin(), user.groups.end()), user.groups.end());
  }
  if (auto s = ValidateUserShape(user); !s.ok()) return s.take_error();
  return user;
}

Json DeviceJson(const Device& d) {
  return {{"id", d.id},
          {"channel", ToString(d.channel)},
          {"address", d.address},
          {"disabled", d.disabled},
          {"created_at", FormatRfc3339(d.created_at)}};
}

Json UserJson(const User& u) {
  Json devices = Json::array();
  for (const auto& d : u.devices) devices.push_back(DeviceJson(d));
  return {{"external_id", u.external_id},
          {"name", u.name},
          {"opt_in", u.opt_in},
          {"consent_from", FormatRfc3339(u.consent_from)},
          {"consent_until", FormatRfc3339(u.consent_until)},
          {"devices", devices},
          {"groups", u.groups},
          {"version", u.version},
          {"created_at", FormatRfc3339(u.created_at)},
          {"updated_at", FormatRfc3339(u.updated_at)}};
}

Json UserWritableJson(const User& u) {
  Json devices = Json::array();
  for (const auto& d : u.devices) {
    devices.push_back({{"channel", ToString(d.channel)}, {"address", d.address}});
  }
  return {{"name", u.name},
          {"opt_in", u.opt_in},
          {"consent_from", FormatRfc3339(u.consent_from)},
          {"consent_until", FormatRfc3339(u.consent_until)},
          {"devices", devices},
          {"groups", u.groups}};
}

}  // namespace herald::api

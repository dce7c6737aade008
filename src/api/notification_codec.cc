#include "api/notification_codec.h"

#include <algorithm>

#include "crypto/crypto.h"
#include "model/validation.h"

namespace herald::api {
namespace {

Error Invalid(std::string code, std::string message, std::string field) {
  return MakeError(ErrorKind::kInvalid, std::move(code), std::move(message), std::move(field));
}

Error WrongType(const std::string& path, std::string_view expected, const Json& got) {
  return Invalid(
      "invalid_type",
      path + " must be " + std::string(expected) + "; got " + std::string(JsonTypeName(got)) + ".",
      path);
}

// Offset of the first control character other than \n and \t (C0, DEL, or C1 as UTF-8), or
// npos. The text is valid UTF-8 already.
size_t FirstForbiddenControl(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F) return i;
    if (c == 0xC2 && i + 1 < s.size()) {
      const auto next = static_cast<unsigned char>(s[i + 1]);
      if (next >= 0x80 && next <= 0x9F) return i;
    }
  }
  return std::string_view::npos;
}

// Reads to.<key>: an array of strings, each checked by `validate`, sorted and merged, at most
// `max` distinct entries.
template <typename Validate>
Result<std::vector<std::string>> ReadIdList(const Json& to, std::string_view key, size_t max,
                                            std::string_view what, Validate validate) {
  const std::string path = "to." + std::string(key);
  std::vector<std::string> out;
  auto it = to.find(key);
  if (it == to.end() || it->is_null()) return out;
  if (!it->is_array()) return WrongType(path, "an array of strings", *it);
  out.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    const std::string item_path = path + "[" + std::to_string(i) + "]";
    const Json& v = (*it)[i];
    if (!v.is_string()) return WrongType(item_path, "a string", v);
    if (Status s = validate(v.get_ref<const std::string&>(), item_path); !s.ok()) {
      return s.take_error();
    }
    out.push_back(v.get<std::string>());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (out.size() > max) {
    return Invalid("too_many_" + std::string(key),
                   path + " names " + std::to_string(out.size()) + " distinct " +
                       std::string(what) + "; the limit is " + std::to_string(max) +
                       ". Split the send into several notifications.",
                   path);
  }
  return out;
}

Status ReadTo(const Json& doc, Notification& n) {
  auto to = doc.find("to");
  if (to == doc.end() || to->is_null()) {
    return Invalid("missing_field",
                   "to is required: name the recipients as {\"groups\": [...], \"users\": [...]}.",
                   "to");
  }
  if (!to->is_object()) return WrongType("to", "an object {groups, users}", *to);
  if (Status s = CheckFields(*to, {"groups", "users"}, "to."); !s.ok()) return s;
  auto groups = ReadIdList(*to, "groups", kMaxSendGroups, "groups", ValidateGroupKey);
  if (!groups.ok()) return groups.take_error();
  auto users = ReadIdList(*to, "users", kMaxSendUsers, "users", ValidateExternalId);
  if (!users.ok()) return users.take_error();
  if (groups->empty() && users->empty()) {
    return Invalid("no_recipients",
                   "to names nobody: give at least one group key in to.groups or one external "
                   "id in to.users.",
                   "to");
  }
  n.to_groups = std::move(*groups);
  n.to_users = std::move(*users);
  return Status::Ok();
}

Status ReadText(const Json& doc, Notification& n) {
  auto title = GetString(doc, "title", "title");
  if (!title.ok()) return title.take_error();
  auto body = GetString(doc, "body", "body");
  if (!body.ok()) return body.take_error();
  if (!body->has_value()) {
    return Invalid("missing_field", "body is required: the notification's text (1-1500 bytes).",
                   "body");
  }
  n.title = title->value_or("");
  n.body = std::move(**body);
  if (Status s = ValidateText(n.title, n.body); !s.ok()) return s;
  for (const auto& [text, field] : {std::pair{&n.title, "title"}, std::pair{&n.body, "body"}}) {
    if (const size_t at = FirstForbiddenControl(*text); at != std::string_view::npos) {
      return Invalid("control_character",
                     std::string(field) + " holds a control character at byte " +
                         std::to_string(at) + "; only line feeds (\\n) and tabs (\\t) are allowed.",
                     field);
    }
  }
  return Status::Ok();
}

Status ReadChannels(const Json& doc, Notification& n) {
  auto it = doc.find("channels");
  if (it == doc.end() || it->is_null()) return Status::Ok();
  if (!it->is_array()) return WrongType("channels", "an array of channel names", *it);
  if (it->empty()) {
    return Invalid("no_channels",
                   "channels is empty; leave it out to use every channel, or name some of ios, "
                   "android, email, sms.",
                   "channels");
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const std::string path = "channels[" + std::to_string(i) + "]";
    const Json& v = (*it)[i];
    if (!v.is_string()) return WrongType(path, "a string", v);
    auto channel = ParseChannel(v.get_ref<const std::string&>());
    if (!channel) {
      return Invalid("invalid_channel", path + " must be ios, android, email or sms.", path);
    }
    if (std::find(n.channels.begin(), n.channels.end(), *channel) != n.channels.end()) {
      return Invalid(
          "duplicate_channel",
          path + " repeats \"" + std::string(ToString(*channel)) + "\"; name each channel once.",
          path);
    }
    n.channels.push_back(*channel);
  }
  std::sort(n.channels.begin(), n.channels.end());  // a filter: its order carries no meaning
  return Status::Ok();
}

Status ReadPriority(const Json& doc, Notification& n) {
  auto priority = GetString(doc, "priority", "priority");
  if (!priority.ok()) return priority.take_error();
  n.priority = 10;
  if (!priority->has_value() || **priority == "high") return Status::Ok();
  if (**priority == "normal") {
    n.priority = 5;
    return Status::Ok();
  }
  return Invalid("invalid_priority", "priority must be \"high\" (the default) or \"normal\".",
                 "priority");
}

Json ChannelNames(const std::vector<Channel>& channels) {
  Json out = Json::array();
  if (channels.empty()) {
    for (Channel c : kAllChannels) out.push_back(ToString(c));
  }
  for (Channel c : channels) out.push_back(ToString(c));
  return out;
}

Json NullIfEmpty(const std::string& s) { return s.empty() ? Json() : Json(s); }

}  // namespace

Result<Notification> ReadSendRequest(const Json& doc) {
  if (Status s = CheckFields(doc, {"to", "title", "body", "channels", "priority"}); !s.ok()) {
    return s.take_error();
  }
  Notification n;
  if (Status s = ReadTo(doc, n); !s.ok()) return s.take_error();
  if (Status s = ReadText(doc, n); !s.ok()) return s.take_error();
  if (Status s = ReadChannels(doc, n); !s.ok()) return s.take_error();
  if (Status s = ReadPriority(doc, n); !s.ok()) return s.take_error();
  return n;
}

Result<std::string> ReadIdempotencyKey(const std::string* header) {
  if (header == nullptr) return std::string();
  bool ok = !header->empty() && header->size() <= kMaxIdempotencyKeyBytes;
  for (char c : *header) ok = ok && c >= 0x20 && c <= 0x7E;
  if (!ok) {
    return Invalid("invalid_idempotency_key",
                   "The Idempotency-Key header must be 1-255 printable ASCII characters; a UUID "
                   "is a good choice.",
                   "Idempotency-Key");
  }
  return *header;
}

std::string SendRequestHash(const Notification& n) {
  std::vector<std::string> channels;
  for (Channel c : n.channels) channels.emplace_back(ToString(c));
  const Json canonical = {{"to", {{"groups", n.to_groups}, {"users", n.to_users}}},
                          {"title", n.title},
                          {"body", n.body},
                          {"channels", channels},
                          {"priority", n.priority}};
  const auto digest = crypto::Sha256(canonical.dump());
  return crypto::ToHex(digest.data(), digest.size());
}

std::string_view PriorityName(int priority) { return priority >= 10 ? "high" : "normal"; }

Json AcceptedJson(const Notification& n) {
  return {{"id", n.id},
          {"accepted_at", FormatRfc3339(n.accepted_at)},
          {"deadline", FormatRfc3339(n.deadline)}};
}

Json NotificationJson(const Notification& n) {
  Json counts = Json::object();
  for (DeliveryStatus s : kAllDeliveryStatuses) {
    counts[std::string(ToString(s))] = n.counts[static_cast<size_t>(s)];
  }
  return {{"id", n.id},
          {"status", ToString(n.status)},
          {"accepted_at", FormatRfc3339(n.accepted_at)},
          {"deadline", FormatRfc3339(n.deadline)},
          {"completed_at", n.completed_at == 0 ? Json() : Json(FormatRfc3339(n.completed_at))},
          {"title", n.title},
          {"body", n.body},
          {"to", {{"groups", n.to_groups}, {"users", n.to_users}}},
          {"channels", ChannelNames(n.channels)},
          {"priority", PriorityName(n.priority)},
          {"fanout_done", n.fanout_done},
          {"deliveries", n.deliveries},
          {"counts", std::move(counts)}};
}

Json DeliveryJson(const Delivery& d) {
  return {{"id", d.id},
          {"external_id", d.external_id},
          {"device_id", d.device_id},
          {"channel", ToString(d.channel)},
          {"status", ToString(d.status)},
          {"attempts", d.attempts},
          {"provider", NullIfEmpty(d.provider)},
          {"provider_message_id", NullIfEmpty(d.provider_message_id)},
          {"reason", NullIfEmpty(d.reason)},
          {"deadline", FormatRfc3339(d.deadline)},
          {"updated_at", FormatRfc3339(d.updated_at)}};
}

Json EventJson(const DeliveryEvent& e) {
  return {{"at", FormatRfc3339(e.at)},
          {"stage", ToString(e.stage)},
          {"delivery_id", e.delivery_id},
          {"notification_id", e.notification_id},
          {"device_id", e.device_id},
          {"channel", ToString(e.channel)},
          {"provider", NullIfEmpty(e.provider)},
          {"attempt", e.attempt},
          {"reason", NullIfEmpty(e.reason)}};
}

}  // namespace herald::api

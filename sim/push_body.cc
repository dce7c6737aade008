#include "sim/push_body.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "sim/routes.h"

namespace herald::sim {
namespace {

using nlohmann::json;

// What a value is, as far as the rules care.
enum class Kind : uint8_t { kString, kObject, kOther };

// The role a value plays in a body: which member, on which path, it is. kSkip: none the rules
// look at (it and everything inside it are passed over).
enum class Role : uint8_t {
  kSkip,
  kRoot,
  kMessage,       // FCM: message
  kToken,         //   message.token
  kNotification,  //   message.notification
  kData,          //   message.data
  kDataValue,     //   message.data[key]
  kAps,           // APNs: aps
  kAlert,         //   aps.alert
  kTitle,         // FCM message.notification.title, APNs aps.alert.title
  kBody,          // FCM message.notification.body, APNs aps.alert.body
};

// Turns nlohmann's SAX events into the two calls a reader needs: Member(object, name), the role
// of a member's value given the role of the object holding it; and Value(role, kind, text), at
// the start of each value that has a role (text: the value of a string, else null). Members of
// objects with a role are offered to Member; arrays, and values of role kSkip, are skipped whole.
class PathReader : public nlohmann::json_sax<json> {
 public:
  bool null() override { return Scalar(nullptr); }
  bool boolean(bool /*val*/) override { return Scalar(nullptr); }
  bool number_integer(number_integer_t /*val*/) override { return Scalar(nullptr); }
  bool number_unsigned(number_unsigned_t /*val*/) override { return Scalar(nullptr); }
  bool number_float(number_float_t /*val*/, const string_t& /*s*/) override {
    return Scalar(nullptr);
  }
  bool string(string_t& val) override { return Scalar(&val); }
  bool binary(binary_t& /*val*/) override { return Scalar(nullptr); }
  bool start_object(std::size_t /*elements*/) override { return Open(Kind::kObject); }
  bool start_array(std::size_t /*elements*/) override { return Open(Kind::kOther); }
  bool key(string_t& val) override {
    if (skipping_ == 0) next_ = Member(path_[depth_ - 1], val);
    return true;
  }
  bool end_object() override { return Close(); }
  bool end_array() override { return Close(); }
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const json::exception& /*ex*/) override {
    return false;
  }

 protected:
  virtual Role Member(Role object, const std::string& name) = 0;
  virtual void Value(Role role, Kind kind, const std::string* text) = 0;

 private:
  bool Scalar(const std::string* text) {
    if (skipping_ == 0 && next_ != Role::kSkip) {
      Value(next_, text != nullptr ? Kind::kString : Kind::kOther, text);
    }
    return true;
  }
  bool Open(Kind kind) {
    if (skipping_ == 0 && next_ != Role::kSkip) {
      Value(next_, kind, nullptr);
      // Roles nest at most four deep (root, message, notification, title): path_ has room.
      if (kind == Kind::kObject && depth_ < path_.size()) {
        path_[depth_++] = next_;
        return true;
      }
    }
    ++skipping_;
    return true;
  }
  bool Close() {
    if (skipping_ > 0) {
      --skipping_;
    } else {
      --depth_;
    }
    return true;
  }

  std::array<Role, 8> path_{};  // the roles of the open objects being read
  size_t depth_ = 0;
  size_t skipping_ = 0;      // how deep inside a skipped value the parser is
  Role next_ = Role::kRoot;  // the role of the next value
};

void AssignString(std::string& out, const std::string* text) {
  if (text != nullptr) {
    out = *text;
  } else {
    out.clear();
  }
}

FcmSend Refused(std::string error) {
  FcmSend out;
  out.error = std::move(error);
  return out;
}

// Keeps what the last "message" member says. Each member the rules read resets, when it starts,
// all that was read from an earlier member of the same name.
class FcmReader final : public PathReader {
 public:
  FcmSend Rules(bool parsed) && {
    if (!parsed || !message_.object) return Refused(std::string(kFcmNoMessage));
    if (!IsFcmRegistrationToken(message_.token)) return Refused(std::string(kFcmBadToken));
    if (!message_.notification.object || !message_.data.object) {
      return Refused(std::string(kFcmBadObjects));
    }
    size_t payload = message_.notification.title.size() + message_.notification.body.size();
    for (const auto& [key, size] : message_.data.sizes) {  // in key order, as the DOM has them
      if (!size) return Refused("Invalid value at 'message.data[" + key + "].value' (TYPE_STRING)");
      payload += key.size() + *size;
    }
    if (payload > kFcmMaxPayload) return Refused(std::string(kFcmTooBig));
    FcmSend out;
    out.token = std::move(message_.token);
    out.title = std::move(message_.notification.title);
    out.body = std::move(message_.notification.body);
    out.delivery_id = std::move(message_.data.delivery_id);
    return out;
  }

 private:
  struct Notification {
    bool object = true;  // absent counts as an empty object
    std::string title;
    std::string body;
  };
  struct Data {
    bool object = true;
    std::map<std::string, std::optional<size_t>, std::less<>> sizes;  // nullopt: not a string
    std::string delivery_id;
  };
  struct Message {
    bool object = false;
    std::string token;
    Notification notification;
    Data data;
  };

  Role Member(Role object, const std::string& name) override {
    switch (object) {
      case Role::kRoot: return name == "message" ? Role::kMessage : Role::kSkip;
      case Role::kMessage:
        if (name == "token") return Role::kToken;
        if (name == "notification") return Role::kNotification;
        return name == "data" ? Role::kData : Role::kSkip;
      case Role::kNotification:
        if (name == "title") return Role::kTitle;
        return name == "body" ? Role::kBody : Role::kSkip;
      case Role::kData:
        data_value_ = message_.data.sizes.try_emplace(name).first;
        return Role::kDataValue;
      default: return Role::kSkip;
    }
  }

  void Value(Role role, Kind kind, const std::string* text) override {
    switch (role) {
      case Role::kMessage: message_ = Message{.object = kind == Kind::kObject}; break;
      case Role::kToken: AssignString(message_.token, text); break;
      case Role::kNotification:
        message_.notification = Notification{.object = kind == Kind::kObject};
        break;
      case Role::kTitle: AssignString(message_.notification.title, text); break;
      case Role::kBody: AssignString(message_.notification.body, text); break;
      case Role::kData: message_.data = Data{.object = kind == Kind::kObject}; break;
      case Role::kDataValue:
        data_value_->second = text != nullptr ? std::optional(text->size()) : std::nullopt;
        if (data_value_->first == "delivery_id") AssignString(message_.data.delivery_id, text);
        break;
      default: break;
    }
  }

  Message message_;
  decltype(Data::sizes)::iterator data_value_;  // the member of message.data being read
};

// Keeps what the last "aps" member says, as FcmReader does for "message".
class ApnsReader final : public PathReader {
 public:
  ApnsAlert Rules(bool parsed, bool background) && {
    if (!parsed || !aps_.object) return {};
    bool ok = false;
    if (!aps_.alert) {
      ok = background && aps_.content_available;
    } else if (*aps_.alert == Kind::kString) {
      ok = true;
    } else if (*aps_.alert == Kind::kObject) {
      ok = aps_.alert_members;
    }
    if (!ok) return {};
    return ApnsAlert{.ok = true, .title = std::move(aps_.title), .body = std::move(aps_.body)};
  }

 private:
  struct Aps {
    bool object = false;
    bool content_available = false;
    std::optional<Kind> alert;  // nullopt: absent
    bool alert_members = false;
    std::string title;
    std::string body;  // aps.alert.body, or aps.alert when a string
  };

  Role Member(Role object, const std::string& name) override {
    switch (object) {
      case Role::kRoot: return name == "aps" ? Role::kAps : Role::kSkip;
      case Role::kAps:
        if (name == "content-available") aps_.content_available = true;  // whatever its value
        return name == "alert" ? Role::kAlert : Role::kSkip;
      case Role::kAlert:
        aps_.alert_members = true;
        if (name == "title") return Role::kTitle;
        return name == "body" ? Role::kBody : Role::kSkip;
      default: return Role::kSkip;
    }
  }

  void Value(Role role, Kind kind, const std::string* text) override {
    switch (role) {
      case Role::kAps: aps_ = Aps{.object = kind == Kind::kObject}; break;
      case Role::kAlert:
        aps_.alert = kind;
        aps_.alert_members = false;
        aps_.title.clear();
        AssignString(aps_.body, text);
        break;
      case Role::kTitle: AssignString(aps_.title, text); break;
      case Role::kBody: AssignString(aps_.body, text); break;
      default: break;
    }
  }

  Aps aps_;
};

}  // namespace

bool IsFcmRegistrationToken(std::string_view token) {
  return !token.empty() && token.size() <= 4096 &&
         std::all_of(token.begin(), token.end(), [](unsigned char c) {
           return std::isalnum(c) != 0 || c == '_' || c == ':' || c == '.' || c == '-';
         });
}

FcmSend CheckFcmSend(std::string_view json_body) {
  FcmReader reader;
  const bool parsed = json::sax_parse(json_body, &reader);
  return std::move(reader).Rules(parsed);
}

ApnsAlert CheckApnsAlert(std::string_view json_body, bool background) {
  ApnsReader reader;
  const bool parsed = json::sax_parse(json_body, &reader);
  return std::move(reader).Rules(parsed, background);
}

void AppendJsonString(std::string& out, std::string_view s) {
  const bool plain = std::all_of(s.begin(), s.end(), [](char c) {
    return c >= 0x20 && c < 0x7F && c != '"' && c != '\\';  // written as is by nlohmann
  });
  if (!plain) {
    out += JsonQuote(s);
    return;
  }
  out.push_back('"');
  out.append(s);
  out.push_back('"');
}

}  // namespace herald::sim

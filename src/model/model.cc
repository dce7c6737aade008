#include "model/model.h"

namespace herald {

std::string_view ToString(Channel c) {
  switch (c) {
    case Channel::kIos: return "ios";
    case Channel::kAndroid: return "android";
    case Channel::kEmail: return "email";
    case Channel::kSms: return "sms";
  }
  return "email";
}

std::optional<Channel> ParseChannel(std::string_view s) {
  for (Channel c : kAllChannels) {
    if (ToString(c) == s) return c;
  }
  return std::nullopt;
}

}  // namespace herald

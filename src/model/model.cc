#include "model/model.h"

#include <charconv>

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

std::string_view ToString(RateClass c) {
  switch (c) {
    case RateClass::kSends: return "sends";
    case RateClass::kUserWrites: return "user_writes";
    case RateClass::kImports: return "imports";
    case RateClass::kReads: return "reads";
  }
  return "reads";
}

std::optional<RateClass> ParseRateClass(std::string_view s) {
  for (RateClass c : kAllRateClasses) {
    if (ToString(c) == s) return c;
  }
  return std::nullopt;
}

std::string EncodeRateLimits(const RateLimits& limits) {
  std::string out;
  for (RateClass c : kAllRateClasses) {
    const std::optional<RateQuota>& q = limits[c];
    if (!q) continue;
    if (!out.empty()) out.push_back(';');
    out += std::string(ToString(c)) + "=" + std::to_string(q->limit) + "/" +
           std::to_string(q->window_s) + "/" + std::to_string(q->per_key_limit);
  }
  return out;
}

RateLimits DecodeRateLimits(std::string_view text) {
  RateLimits out;
  auto number = [](std::string_view& rest, int64_t& v) {
    const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), v);
    if (ec != std::errc()) return false;
    rest.remove_prefix(static_cast<size_t>(end - rest.data()));
    return true;
  };
  while (!text.empty()) {
    const size_t semi = text.find(';');
    std::string_view part = text.substr(0, semi);
    text = semi == std::string_view::npos ? std::string_view() : text.substr(semi + 1);
    const size_t eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    const std::optional<RateClass> c = ParseRateClass(part.substr(0, eq));
    std::string_view rest = part.substr(eq + 1);
    RateQuota q;
    if (!c || !number(rest, q.limit) || rest.empty() || rest.front() != '/') continue;
    rest.remove_prefix(1);
    if (!number(rest, q.window_s) || rest.empty() || rest.front() != '/') continue;
    rest.remove_prefix(1);
    if (!number(rest, q.per_key_limit) || !rest.empty()) continue;
    if (q.limit < 1 || q.window_s < 1 || q.per_key_limit < 0) continue;
    out[*c] = q;
  }
  return out;
}

}  // namespace herald

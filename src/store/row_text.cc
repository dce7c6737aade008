#include "store/row_text.h"

#include <algorithm>

namespace herald {

std::string Join(const std::vector<std::string>& items, char sep) {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out.push_back(sep);
    out += s;
  }
  return out;
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  while (!s.empty()) {
    size_t at = s.find(sep);
    out.emplace_back(s.substr(0, at));
    if (at == std::string_view::npos) break;
    s.remove_prefix(at + 1);
  }
  return out;
}

std::string ChannelList(const std::vector<Channel>& channels) {
  if (channels.empty()) return "";
  std::string out = " ";
  for (Channel c : channels) {
    out += ToString(c);
    out.push_back(' ');
  }
  return out;
}

std::vector<Channel> ParseChannelList(std::string_view s) {
  std::vector<Channel> out;
  for (const std::string& name : Split(s, ' ')) {
    if (auto c = ParseChannel(name)) out.push_back(*c);
  }
  return out;
}

std::string JoinScopes(const std::vector<std::string>& scopes) { return Join(scopes, ' '); }

std::vector<std::string> SplitScopes(std::string_view joined) {
  std::vector<std::string> out = Split(joined, ' ');
  out.erase(std::remove(out.begin(), out.end(), std::string()), out.end());
  return out;
}

void DeriveNotificationStatus(Notification& n, UnixMillis cancelled_at, int64_t open,
                              UnixMillis last_update) {
  if (cancelled_at != 0) {
    n.status = NotificationStatus::kCancelled;
    n.completed_at = cancelled_at;
  } else if (n.fanout_done && open == 0) {
    n.status = NotificationStatus::kCompleted;
    n.completed_at = std::max(last_update, n.accepted_at);
  } else if (n.deliveries > 0) {
    n.status = NotificationStatus::kInProgress;
  }
}

}  // namespace herald

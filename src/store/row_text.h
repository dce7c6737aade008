// How both store backends write lists into a column and read them back, and the status a
// notification derives from its counts: written once so that the backends agree. Pure
// functions, thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/model.h"
#include "model/notification.h"

namespace herald {

std::string Join(const std::vector<std::string>& items, char sep);
// The pieces between separators, empty ones included ("" gives none).
std::vector<std::string> Split(std::string_view s, char sep);

// " ios email " (padded, so that a search for ' ' + channel + ' ' matches whole names); "" for
// every channel.
std::string ChannelList(const std::vector<Channel>& channels);
std::vector<Channel> ParseChannelList(std::string_view s);

// API key scopes, space-separated.
std::string JoinScopes(const std::vector<std::string>& scopes);
std::vector<std::string> SplitScopes(std::string_view joined);

// Sets n.status and n.completed_at from what the store read: cancelled_at (0 = not cancelled),
// how many deliveries are not terminal yet, and the latest time a delivery changed status.
void DeriveNotificationStatus(Notification& n, UnixMillis cancelled_at, int64_t open,
                              UnixMillis last_update);

}  // namespace herald

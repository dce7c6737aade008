// Internal to src/api: notifications, deliveries and delivery events to and from JSON. The send
// body is read into a normalised Notification (the one place its rules live); its canonical
// form is hashed so an idempotent replay can be told from a reused key.
#pragma once

#include <string>
#include <string_view>

#include "api/json_body.h"
#include "common/result.h"
#include "model/notification.h"

namespace herald::api {

inline constexpr size_t kMaxSendGroups = 100;
inline constexpr size_t kMaxSendUsers = 10'000;
inline constexpr size_t kMaxIdempotencyKeyBytes = 255;

// Reads a send body {to:{groups?, users?}, title?, body, channels?, priority?} into a
// Notification holding title, body, to_groups and to_users (sorted, duplicates merged),
// channels (in request order, none repeated; empty = every channel) and priority (10 for
// "high", the default; 5 for "normal"). Refuses with 422 and the field at fault.
Result<Notification> ReadSendRequest(const Json& doc);

// The Idempotency-Key header (nullptr when absent): "" when absent, else 1-255 printable ASCII
// characters; an empty header is refused like any other bad key (422
// "invalid_idempotency_key").
Result<std::string> ReadIdempotencyKey(const std::string* header);

// Hex SHA-256 of the canonical JSON of what ReadSendRequest read (keys sorted, lists
// normalised), so that bodies that differ only in spelling (member order, duplicates,
// an explicit default) hash alike.
std::string SendRequestHash(const Notification& n);

// "high" (10 and above) or "normal".
std::string_view PriorityName(int priority);

// The 202 answer: {id, accepted_at, deadline}.
Json AcceptedJson(const Notification& n);
// GET /v1/notifications/{id}: the notification, its status and counts per delivery stage.
Json NotificationJson(const Notification& n);
Json DeliveryJson(const Delivery& d);
Json EventJson(const DeliveryEvent& e);

}  // namespace herald::api

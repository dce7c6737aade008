// Reads the JSON bodies of APNs pushes and FCM messages:send requests, applying the
// simulator's rules to them. One reader per body kind, on nlohmann's SAX interface: nlohmann's
// lexer and grammar (so a body is valid exactly when nlohmann's DOM parser accepts it), no DOM
// built, only the members the rules look at kept. Where a member name repeats, the last one wins,
// as in nlohmann's DOM: a later member replaces everything read from an earlier one.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace herald::sim {

// What an FCM messages:send body says, after the rules: `error` is the INVALID_ARGUMENT
// message to answer with, or "" when the message is acceptable.
struct FcmSend {
  std::string error;
  std::string token;        // message.token
  std::string title;        // message.notification.title, or ""
  std::string body;         // message.notification.body, or ""
  std::string delivery_id;  // message.data.delivery_id, or ""

  bool operator==(const FcmSend&) const = default;
};

// The limit on message.data (keys and values) plus title and body, in bytes.
inline constexpr size_t kFcmMaxPayload = 4096;

// FCM's INVALID_ARGUMENT messages for the rules CheckFcmSend applies (a non-string data value
// is named: "Invalid value at 'message.data[KEY].value' (TYPE_STRING)").
inline constexpr std::string_view kFcmNoMessage =
    "Invalid JSON payload received: expected {\"message\":{...}}.";
inline constexpr std::string_view kFcmBadToken =
    "The registration token is not a valid FCM registration token";
inline constexpr std::string_view kFcmBadObjects =
    "Invalid value at 'message.notification' or 'message.data'.";
inline constexpr std::string_view kFcmTooBig = "Message is too big";

// An FCM registration token: 1 to 4096 letters, digits and "_:.-".
bool IsFcmRegistrationToken(std::string_view token);

FcmSend CheckFcmSend(std::string_view json_body);

// What an APNs payload's aps.alert says. `ok` is false when the payload carries no alert (and
// is not a background push with aps.content-available): APNs' PayloadEmpty. When not ok,
// title and body are "".
struct ApnsAlert {
  bool ok = false;
  std::string title;
  std::string body;

  bool operator==(const ApnsAlert&) const = default;
};

ApnsAlert CheckApnsAlert(std::string_view json_body, bool background);

// Appends `s` as a JSON string literal (quotes included), exactly as DumpJson would write it.
void AppendJsonString(std::string& out, std::string_view s);

}  // namespace herald::sim

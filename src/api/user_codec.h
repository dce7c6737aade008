// Internal to src/api: users to and from JSON. The PUT body, each line of an NDJSON import and
// the result of a merge patch all go through ReadUser, so one set of rules applies everywhere.
#pragma once

#include <string>
#include <string_view>

#include "api/json_body.h"
#include "common/result.h"
#include "model/model.h"

namespace herald::api {

struct UserDefaults {
  UnixMillis now = 0;
  int default_consent_days = 365;
};

// Reads a user document {name?, opt_in, consent_from?, consent_until?, devices?, groups?}
// (plus "external_id" when allow_external_id) into a validated, normalised User. Omitted
// consent fields take their defaults: consent_from = now, consent_until = consent_from +
// default_consent_days. consent_until must be in the future.
Result<User> ReadUser(const Json& doc, const UserDefaults& defaults, bool allow_external_id);

// One line of an NDJSON import: the same as ReadUser(ParseJson(line), defaults, true), with
// the same errors, but lines of the usual shape are read without building a JSON document.
Result<User> ReadUserLine(std::string_view line, const UserDefaults& defaults);

// The stored user as the API shows it.
Json UserJson(const User& user);
Json DeviceJson(const Device& device);
// The writable fields of a stored user, in the PUT shape (for merge patches).
Json UserWritableJson(const User& user);

// Reads one device object {channel, address} at `path` (e.g. "devices[2]").
Result<Device> ReadDevice(const Json& doc, const std::string& path);

}  // namespace herald::api

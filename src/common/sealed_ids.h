// Ids and cursors that stand for a row key without showing it. Row keys count across every
// tenant, so a tenant that saw them (dlv_1041, then dlv_9377 a minute later) would learn the
// volume of all the others. A sealed id is the row key and a tag encrypted as one AES-128 block
// under a process-wide key (derived from the master key, so every process of a deployment and
// every restart agree): 22 base64url characters that look random, open only with the key, and
// whose tag and zero padding make a forged or altered id fail to open (a 2^-64 chance).
//
// Thread-safety: every function may be called from any thread; SetSealedIdKey should be called
// once at start, before other threads seal ids (until then a random per-process key is used).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace herald {

void SetSealedIdKey(const std::array<uint8_t, 16>& key);

// `tag` keeps kinds apart: an id sealed as one kind does not open as another.
std::string SealRowKey(char tag, int64_t row_key);
// nullopt unless `sealed` is exactly what SealRowKey(tag, k) returns for some k > 0.
std::optional<int64_t> OpenRowKey(char tag, std::string_view sealed);

}  // namespace herald

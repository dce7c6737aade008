// Row-level code for users, their devices and memberships in the SQLite store, split by the
// thread it runs on:
//  - Seal*: the calling thread encrypts names and addresses and computes blind indexes, so the
//    writer thread only does SQL;
//  - Write*/Find*/Bump*: the writer thread, inside the savepoint of one write operation;
//  - ReadUser: any thread, on a leased read connection inside a ReadTxn.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "crypto/crypto.h"
#include "model/model.h"
#include "store/sqlite/connection.h"
#include "store/sqlite/tenant_keys.h"

namespace herald::sqlite {

inline constexpr size_t kMaxDevices = 16;

// The encryption context of a device address: "addr:<channel>".
std::string AddressContext(Channel channel);

struct SealedDevice {
  std::string id;  // freshly minted; a PUT that keeps the address keeps the stored id instead
  Channel channel = Channel::kEmail;
  Bytes address_sealed;
  Bytes address_bidx;
  bool disabled = false;
};

struct SealedUser {
  std::string external_id;
  Bytes name_sealed;
  bool opt_in = true;
  UnixMillis consent_from = 0;
  UnixMillis consent_until = 0;
  std::vector<SealedDevice> devices;
  std::vector<std::string> groups;  // sorted, unique
};

SealedDevice SealDevice(const Device& device, const crypto::PiiCipher& cipher);

// Seals `user` and checks the rules the store owns: at most 16 devices ("too_many_devices"), no
// channel+address twice ("duplicate_device"), consent_from < consent_until
// ("invalid_consent_window") and consent_until in the future ("consent_expired"): a user whose
// consent already ended must not be written at all. All kInvalid.
Result<SealedUser> SealUser(const User& user, const crypto::PiiCipher& cipher, UnixMillis now);

// What the writer stored, to rebuild the returned User from the caller's plaintext.
struct StoredDevice {
  size_t input_index = 0;  // into SealedUser::devices
  std::string id;
  bool disabled = false;
  UnixMillis created_at = 0;
};
struct WrittenUser {
  bool created = false;
  int64_t version = 0;
  UnixMillis created_at = 0;
  std::vector<StoredDevice> devices;  // in the order GetUser lists them
};

// Group key -> row key, remembered across the users of one write operation. Clear it when a
// savepoint that may have created groups rolls back.
using GroupPks = std::unordered_map<std::string, int64_t>;

// Creates or replaces the user (see Store::PutUser). A stored user whose consent has ended is
// erased first and counts as absent.
Result<WrittenUser> WriteUser(Connection& conn, int64_t tenant_pk, const SealedUser& user,
                              std::optional<int64_t> expected_version, UnixMillis now,
                              GroupPks& groups);

// The row key of a user visible at `now`; kNotFound "user_not_found" otherwise.
Result<int64_t> FindVisibleUser(Connection& conn, int64_t tenant_pk, std::string_view external_id,
                                UnixMillis now);
// The row key of a group; kNotFound "group_not_found" otherwise.
Result<int64_t> FindGroup(Connection& conn, int64_t tenant_pk, std::string_view key);
Status InsertDevice(Connection& conn, int64_t user_pk, const SealedDevice& device, UnixMillis now);
// Adds the membership unless it exists; Connection::Changes() tells which.
Status InsertMembership(Connection& conn, int64_t group_pk, int64_t user_pk);
// Bumps version and updated_at of a user whose devices or memberships changed.
Status TouchUser(Connection& conn, int64_t user_pk, UnixMillis now);

// The user as visible at `now`, decrypted; kNotFound "user_not_found" otherwise.
Result<User> ReadUser(Connection& conn, const TenantRef& tenant, std::string_view tenant_id,
                      std::string_view external_id, UnixMillis now);

Error UserNotFound();
Error GroupNotFound();

}  // namespace herald::sqlite

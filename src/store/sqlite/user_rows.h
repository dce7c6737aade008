// Row-level code for users, their devices and memberships in the SQLite store, split by the
// thread it runs on (sealing, on the calling thread, is in sealed_user.h):
//  - Write*/Insert*/Find*/Touch*: the writer thread, inside the savepoint of one write operation;
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
#include "store/sealed_user.h"
#include "store/sqlite/connection.h"
#include "store/store.h"
#include "store/tenant_keys.h"

namespace herald::sqlite {

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
// erased first and counts as absent. On error the caller must roll back to a savepoint taken
// before the call: the user may be half written.
Result<WrittenUser> WriteUser(Connection& conn, int64_t tenant_pk, const SealedUser& user,
                              std::optional<int64_t> expected_version, UnixMillis now,
                              GroupPks& groups);

// Writes the lines of a bulk import (null entries were refused before: skipped), all inside one
// savepoint, setting results[i] for every written or failed line. With `savepoints`, each line
// gets its own and a failing line is rolled back alone. Without (a third cheaper for new users),
// the first failing line rolls the whole pass back and the answer is false: redo it with
// savepoints. An error is for the call as a whole (the transaction is lost).
Result<bool> WriteUserLines(Connection& conn, int64_t tenant_pk,
                            const std::vector<std::optional<SealedUser>>& lines, UnixMillis now,
                            std::vector<ImportLineResult>& results, bool savepoints);

// The row key of a user visible at `now`; kNotFound "user_not_found" otherwise.
Result<int64_t> FindVisibleUser(Connection& conn, int64_t tenant_pk, std::string_view external_id,
                                UnixMillis now);
// The row key of a group; kNotFound "group_not_found" otherwise.
Result<int64_t> FindGroup(Connection& conn, int64_t tenant_pk, std::string_view key);
// `ord` places the device in the user's list (GetUser lists devices by ord).
Status InsertDevice(Connection& conn, int64_t user_pk, const SealedDevice& device, int64_t ord,
                    UnixMillis now);
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

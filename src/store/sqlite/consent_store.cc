// SqliteStore methods for consent expiry: the reaper's view of the users table.
#include <exception>
#include <utility>

#include "store/sqlite/sqlite_store_impl.h"

namespace herald::sqlite {

Result<std::optional<UnixMillis>> SqliteStore::NextConsentExpiry() {
  return NoThrow([&]() -> Result<std::optional<UnixMillis>> {
    ReadPool::Lease conn = readers_->Acquire();
    Stmt q = conn->Prepare("SELECT MIN(consent_until) FROM users");  // users_consent_until
    Result<bool> row = q.Next();
    if (!row.ok()) return row.take_error();
    if (!*row || q.IsNull(0)) return std::optional<UnixMillis>();
    return std::optional<UnixMillis>(q.Int(0));
  });
}

Result<int64_t> SqliteStore::EraseExpiredUsers(UnixMillis now, int limit) {
  return NoThrow([&]() -> Result<int64_t> {
    if (limit <= 0) return int64_t{0};
    int64_t erased = 0;
    Status s = writer_->Run([&](Connection& c) -> Status {
      // Devices and memberships go with their user (ON DELETE CASCADE); secure_delete zeroes
      // the freed bytes.
      Stmt w = c.Prepare(
          "DELETE FROM users WHERE pk IN (SELECT pk FROM users WHERE consent_until <= ?1 "
          "ORDER BY consent_until LIMIT ?2)");
      Status r = w.Bind(1, now).Bind(2, limit).Run();
      erased = c.Changes();
      return r;
    });
    if (!s.ok()) return s.take_error();
    return erased;
  });
}

void SqliteStore::SetConsentExpiryListener(std::function<void(UnixMillis)> listener) {
  consent_listener_ = std::move(listener);
}

void SqliteStore::NotifyConsentExpiry(UnixMillis earliest) {
  if (!consent_listener_) return;
  try {
    consent_listener_(earliest);
  } catch (...) {  // the listener's failure is not the writer's
  }
}

}  // namespace herald::sqlite

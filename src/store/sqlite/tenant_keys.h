// In-memory cache of each tenant's internal row key and PII cipher (the tenant's data key,
// unwrapped with the master key on first use). Tenants are never deleted and their data key
// never changes, so an entry never goes stale.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "common/result.h"
#include "crypto/crypto.h"
#include "store/sqlite/read_pool.h"

namespace herald::sqlite {

struct TenantRef {
  int64_t pk = 0;
  std::shared_ptr<const crypto::PiiCipher> cipher;
};

class TenantKeys {
 public:
  TenantKeys(const crypto::Key& master, ReadPool* readers) : master_(master), readers_(readers) {}

  // The tenant's row key and cipher. kNotFound "tenant_not_found" for unknown ids;
  // kInternal "decrypt_failed" when the stored data key does not unwrap.
  Result<TenantRef> Get(std::string_view tenant_id);
  // Records a tenant the caller just committed.
  void Put(const std::string& tenant_id, TenantRef ref);

  const crypto::Key& master() const { return master_; }

 private:
  const crypto::Key master_;
  ReadPool* const readers_;
  std::shared_mutex mu_;
  std::map<std::string, TenantRef, std::less<>> cache_;
};

Error TenantNotFound();
Error DecryptFailed();

}  // namespace herald::sqlite

// In-memory cache of each tenant's internal row key and PII cipher (the tenant's data key,
// unwrapped with the master key on first use), for every store backend: the backend supplies
// how to read a tenant's row key and wrapped data key. Tenants are never deleted and their data key
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
#include <utility>

#include "common/result.h"
#include "crypto/crypto.h"

namespace herald {

struct TenantRef {
  int64_t pk = 0;
  std::shared_ptr<const crypto::PiiCipher> cipher;
};

// A tenant's row as a backend reads it.
struct WrappedTenantKey {
  int64_t pk = 0;
  crypto::Bytes wrapped;  // crypto::WrapDataKey(master, data key, tenant id)
};
// Reads the tenant's row: kNotFound (TenantNotFound()) when there is none.
using TenantKeyLoader = std::function<Result<WrappedTenantKey>(std::string_view tenant_id)>;

class TenantKeys {
 public:
  TenantKeys(const crypto::Key& master, TenantKeyLoader load)
      : master_(master), load_(std::move(load)) {}

  // The tenant's row key and cipher. kNotFound "tenant_not_found" for unknown ids;
  // kInternal "decrypt_failed" when the stored data key does not unwrap.
  Result<TenantRef> Get(std::string_view tenant_id);
  // Records a tenant the caller just committed.
  void Put(const std::string& tenant_id, TenantRef ref);

  const crypto::Key& master() const { return master_; }

 private:
  const crypto::Key master_;
  const TenantKeyLoader load_;
  std::shared_mutex mu_;
  std::map<std::string, TenantRef, std::less<>> cache_;
};

Error TenantNotFound();
Error DecryptFailed();

}  // namespace herald

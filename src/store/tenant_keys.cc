#include "store/tenant_keys.h"

#include <mutex>
#include <utility>

namespace herald {

Error TenantNotFound() {
  return MakeError(ErrorKind::kNotFound, "tenant_not_found", "No such tenant.");
}

Error DecryptFailed() {
  return MakeError(ErrorKind::kInternal, "decrypt_failed",
                   "Stored data could not be decrypted; the master key or the data is wrong.");
}

Result<TenantRef> TenantKeys::Get(std::string_view tenant_id) {
  {
    std::shared_lock lock(mu_);
    auto it = cache_.find(tenant_id);
    if (it != cache_.end()) return it->second;
  }
  Result<WrappedTenantKey> row = load_(tenant_id);
  if (!row.ok()) return row.take_error();
  Result<crypto::Key> key = crypto::UnwrapDataKey(master_, row->wrapped, tenant_id);
  if (!key.ok()) return DecryptFailed();
  TenantRef ref{row->pk, std::make_shared<const crypto::PiiCipher>(*key)};
  key->fill(0);
  Put(std::string(tenant_id), ref);
  return ref;
}

void TenantKeys::Put(const std::string& tenant_id, TenantRef ref) {
  std::unique_lock lock(mu_);
  cache_.insert_or_assign(tenant_id, std::move(ref));
}

}  // namespace herald

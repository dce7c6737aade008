#include "store/sqlite/tenant_keys.h"

#include <mutex>
#include <utility>

namespace herald::sqlite {

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
  int64_t pk = 0;
  crypto::Bytes wrapped;
  {
    ReadPool::Lease conn = readers_->Acquire();
    Stmt q = conn->Prepare("SELECT pk, wrapped_key FROM tenants WHERE id = ?1");
    q.Bind(1, tenant_id);
    Result<bool> row = q.Next();
    if (!row.ok()) return row.take_error();
    if (!*row) return TenantNotFound();
    pk = q.Int(0);
    wrapped = q.Blob(1);
  }
  Result<crypto::Key> key = crypto::UnwrapDataKey(master_, wrapped, tenant_id);
  if (!key.ok()) return DecryptFailed();
  TenantRef ref{pk, std::make_shared<const crypto::PiiCipher>(*key)};
  key->fill(0);
  Put(std::string(tenant_id), ref);
  return ref;
}

void TenantKeys::Put(const std::string& tenant_id, TenantRef ref) {
  std::unique_lock lock(mu_);
  cache_.insert_or_assign(tenant_id, std::move(ref));
}

}  // namespace herald::sqlite

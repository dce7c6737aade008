// The system of record. This interface is all that the API and the pipeline know of storage;
// backends (sqlite/, later postgres/) live behind it and pass one conformance suite
// (src/store/store_conformance_test.cc).
//
// Contract for every backend:
//  - Thread-safe: any thread may call any method concurrently.
//  - Tenant-scoped: every method that takes a tenant id sees only that tenant's rows; another
//    tenant's ids answer kNotFound, exactly as ids that do not exist.
//  - All-or-nothing: a call that returns an error has written nothing.
//  - PII (user names, device addresses) is encrypted before it is written, with the tenant's
//    data key; equality checks use a keyed blind index. Nothing else is secret at this level.
//  - Users whose consent_until <= now are treated as gone by every read, even before
//    EraseExpiredUsers removed them.
//  - Errors: kNotFound, kConflict (duplicates, version mismatch), kInvalid (a rule the store
//    itself checks), kUnavailable (storage down or busy), kInternal.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "model/model.h"

namespace herald {

struct PageRequest {
  std::string cursor;  // opaque, from a previous Page::next_cursor; empty = from the start
  int limit = 100;     // clamped to [1, 1000] by the store
};

template <typename T>
struct Page {
  std::vector<T> items;
  std::string next_cursor;  // empty when there is nothing more
};

struct PutUserOutcome {
  User user;  // as stored (device ids assigned, groups normalised, version bumped)
  bool created = false;
};

// What one line of a bulk import became.
struct ImportLineResult {
  bool ok = false;
  bool created = false;
  Error error;  // when !ok
};

struct ApiKeyRecord {
  ApiKey key;
  std::vector<uint8_t> hash;
};

class Store {
 public:
  virtual ~Store() = default;

  // ---- tenants ----
  // Creates the tenant and its data key. Assigns tenant.id when empty.
  virtual Result<Tenant> CreateTenant(Tenant tenant) = 0;
  virtual Result<Tenant> GetTenant(std::string_view tenant_id) = 0;
  virtual Result<Page<Tenant>> ListTenants(const PageRequest& page) = 0;
  // Replaces name, delivery_deadline_minutes and default_consent_days.
  virtual Result<Tenant> UpdateTenant(const Tenant& tenant) = 0;

  // ---- API keys ----
  virtual Status CreateApiKey(const ApiKey& key, const std::vector<uint8_t>& hash) = 0;
  // Any tenant's key by id (authentication looks keys up before it knows the tenant).
  virtual Result<ApiKeyRecord> GetApiKey(std::string_view key_id) = 0;
  virtual Result<std::vector<ApiKey>> ListApiKeys(std::string_view tenant_id) = 0;
  // Marks the key revoked; it fails authentication from the moment this returns.
  virtual Status RevokeApiKey(std::string_view tenant_id, std::string_view key_id) = 0;

  // ---- provider settings ----
  virtual Status PutProviderSettings(const ProviderSettings& settings) = 0;
  virtual Result<ProviderSettings> GetProviderSettings(std::string_view tenant_id,
                                                       Channel channel) = 0;

  // ---- users ----
  // Creates or replaces the user (devices and group memberships are replaced as a whole;
  // groups named and not yet existing are created). A device whose channel and address match a
  // device the user already has keeps its id. When expected_version is set and differs from
  // the stored version (0 = must not exist), fails with kConflict "version_conflict".
  // Fields must already be validated and normalised (model/validation.h).
  virtual Result<PutUserOutcome> PutUser(const User& user,
                                         std::optional<int64_t> expected_version = {}) = 0;
  // The same for many users of one tenant, committed together; one result per user, in order.
  // A user that fails leaves the others unaffected.
  virtual Result<std::vector<ImportLineResult>> PutUsers(std::string_view tenant_id,
                                                         std::vector<User> users) = 0;
  virtual Result<User> GetUser(std::string_view tenant_id, std::string_view external_id) = 0;
  // Erases the user, their devices and memberships at once.
  virtual Status DeleteUser(std::string_view tenant_id, std::string_view external_id) = 0;
  // Adds one device (kConflict "duplicate_device" when the user already has the address,
  // kInvalid "too_many_devices" past 16). Returns the stored device.
  virtual Result<Device> AddDevice(std::string_view tenant_id, std::string_view external_id,
                                   Device device) = 0;
  virtual Status RemoveDevice(std::string_view tenant_id, std::string_view external_id,
                              std::string_view device_id) = 0;

  // ---- groups ----
  virtual Result<Group> PutGroup(const Group& group) = 0;  // create or rename; returns stored
  virtual Result<Group> GetGroup(std::string_view tenant_id, std::string_view key) = 0;
  virtual Status DeleteGroup(std::string_view tenant_id, std::string_view key) = 0;
  // kNotFound "group_not_found" / "user_not_found". Adding an existing member is not an error.
  virtual Status AddMember(std::string_view tenant_id, std::string_view group_key,
                           std::string_view external_id) = 0;
  virtual Status RemoveMember(std::string_view tenant_id, std::string_view group_key,
                              std::string_view external_id) = 0;
  // Adds every listed user that exists; returns the external ids that do not.
  virtual Result<std::vector<std::string>> AddMembers(std::string_view tenant_id,
                                                      std::string_view group_key,
                                                      const std::vector<std::string>& ids) = 0;
  // External ids of the members, in external id order.
  virtual Result<Page<std::string>> ListMembers(std::string_view tenant_id,
                                                std::string_view group_key,
                                                const PageRequest& page) = 0;

  // ---- consent expiry ----
  // The earliest consent_until of any user (any tenant), or nullopt when there are no users.
  virtual Result<std::optional<UnixMillis>> NextConsentExpiry() = 0;
  // Erases up to `limit` users whose consent_until <= now; returns how many were erased.
  virtual Result<int64_t> EraseExpiredUsers(UnixMillis now, int limit) = 0;
  // Called (from any thread) after a write that may have moved the earliest consent expiry
  // earlier, with the new candidate. Set once, before concurrent use.
  virtual void SetConsentExpiryListener(std::function<void(UnixMillis)> listener) = 0;

  // ---- audit ----
  // Queues the record; it is written with the next batch (not waited for).
  virtual void AppendAudit(AuditRecord record) = 0;
  // Newest first.
  virtual Result<Page<AuditRecord>> ListAudit(std::string_view tenant_id,
                                              const PageRequest& page) = 0;
  // Blocks until every queued write (audit included) is on disk.
  virtual Status Flush() = 0;

  // ---- health ----
  virtual Status Ping() = 0;
};

}  // namespace herald

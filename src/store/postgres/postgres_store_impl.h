// PostgresStore: the Store behind OpenPostgresStore (see postgres_store.h for the design). Its
// methods are defined by responsibility in postgres_store.cc (opening, tenants, keys, provider
// settings, audit, consent, health), user_store.cc (users, devices, groups) and
// delivery_store.cc (notifications, fan-out, deliveries, receipts).
//
// Every method follows one shape: resolve the tenant (row key + cipher, cached), seal PII on the
// calling thread, then run SQL on a pooled connection, in one transaction when it writes.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "crypto/erasure_keys.h"
#include "store/no_throw.h"
#include "store/postgres/partitions.h"
#include "store/postgres/pg.h"
#include "store/postgres/pool.h"
#include "store/postgres/postgres_store.h"
#include "store/store.h"
#include "store/tenant_keys.h"

namespace herald::pg {

// When a fan-out is split into parts (PostgresStoreOptions::fanout_part_users).
struct FanoutSplit {
  int64_t part_users = 10'000;
  int max_parts = 16;
};

class PostgresStore final : public Store {
 public:
  // writers: one or more (up to 6), each with its own connection; the first also writes the
  // audit.
  PostgresStore(const crypto::Key& master, std::unique_ptr<Pool> pool,
                std::unique_ptr<Pool> keys_pool, std::vector<std::unique_ptr<Writer>> writers,
                std::function<UnixMillis()> clock, FanoutSplit split);
  ~PostgresStore() override;

  Result<Tenant> CreateTenant(Tenant tenant) override;
  Result<Tenant> GetTenant(std::string_view tenant_id) override;
  Result<Page<Tenant>> ListTenants(const PageRequest& page) override;
  Result<Tenant> UpdateTenant(const Tenant& tenant) override;

  Status CreateApiKey(const ApiKey& key, const std::vector<uint8_t>& hash) override;
  Result<ApiKeyRecord> GetApiKey(std::string_view key_id) override;
  Result<std::vector<ApiKey>> ListApiKeys(std::string_view tenant_id) override;
  Status RevokeApiKey(std::string_view tenant_id, std::string_view key_id) override;

  Status PutProviderSettings(const ProviderSettings& settings) override;
  Result<ProviderSettings> GetProviderSettings(std::string_view tenant_id,
                                               Channel channel) override;

  Result<PutUserOutcome> PutUser(const User& user,
                                 std::optional<int64_t> expected_version) override;
  Result<std::vector<ImportLineResult>> PutUsers(std::string_view tenant_id,
                                                 std::vector<User> users) override;
  Result<User> GetUser(std::string_view tenant_id, std::string_view external_id) override;
  Status DeleteUser(std::string_view tenant_id, std::string_view external_id) override;
  Result<Device> AddDevice(std::string_view tenant_id, std::string_view external_id,
                           Device device) override;
  Status RemoveDevice(std::string_view tenant_id, std::string_view external_id,
                      std::string_view device_id) override;

  Result<Group> PutGroup(const Group& group) override;
  Result<Group> GetGroup(std::string_view tenant_id, std::string_view key) override;
  Status DeleteGroup(std::string_view tenant_id, std::string_view key) override;
  Status AddMember(std::string_view tenant_id, std::string_view group_key,
                   std::string_view external_id) override;
  Status RemoveMember(std::string_view tenant_id, std::string_view group_key,
                      std::string_view external_id) override;
  Result<std::vector<std::string>> AddMembers(std::string_view tenant_id,
                                              std::string_view group_key,
                                              const std::vector<std::string>& ids) override;
  Result<std::vector<std::string>> MissingGroups(std::string_view tenant_id,
                                                 const std::vector<std::string>& keys) override;
  Result<Page<std::string>> ListMembers(std::string_view tenant_id, std::string_view group_key,
                                        const PageRequest& page) override;

  Result<std::optional<UnixMillis>> NextConsentExpiry() override;
  Result<int64_t> EraseExpiredUsers(UnixMillis now, int limit) override;
  Result<int64_t> ShredExpiredKeys(UnixMillis now) override;
  void SetConsentExpiryListener(std::function<void(UnixMillis)> listener) override;

  Result<CreatedNotification> CreateNotification(Notification notification) override;
  Result<Notification> GetNotification(std::string_view tenant_id,
                                       std::string_view notification_id) override;
  Result<std::vector<std::string>> ListUnfinishedFanouts() override;
  Result<FanoutPage> FanOutPage(std::string_view notification_id, int max_users) override;
  Result<FanoutPage> FanOutNext(int max_users, const FanoutPublish& publish) override;
  Result<std::vector<DeliveryJob>> ListUnfinishedDeliveries(int64_t after_delivery,
                                                            int limit) override;
  Result<std::vector<DispatchTarget>> LoadDispatchTargets(
      const std::vector<DeliveryJob>& jobs) override;
  void RecordDeliveryUpdates(std::vector<DeliveryUpdate> updates,
                             std::function<void(bool committed)> durable) override;
  Result<int64_t> CancelNotification(std::string_view tenant_id,
                                     std::string_view notification_id) override;
  Result<Page<Delivery>> ListDeliveries(std::string_view tenant_id,
                                        std::string_view notification_id,
                                        std::optional<DeliveryStatus> status,
                                        const PageRequest& page) override;
  Result<std::vector<DeliveryEvent>> ListEventsSince(std::string_view tenant_id, int64_t after_seq,
                                                     int limit) override;
  Result<Page<DeliveryEvent>> ListUserEvents(std::string_view tenant_id,
                                             std::string_view external_id,
                                             const PageRequest& page) override;
  Result<ReceiptOutcome> RecordReceipt(std::string_view tenant_id, std::string_view provider,
                                       std::string_view provider_message_id, DeliveryStatus stage,
                                       std::string_view reason) override;

  void AppendAudit(AuditRecord record) override;
  Result<Page<AuditRecord>> ListAudit(std::string_view tenant_id, const PageRequest& page) override;
  Status Flush() override;

  Status Ping() override;
  Result<std::unique_ptr<DutyLease>> TryTakeDuty(std::string_view name) override;

 private:
  UnixMillis Now() const { return clock_(); }
  void NotifyConsentExpiry(UnixMillis earliest);
  Status Txn(const std::function<Status(Conn&)>& body) { return InTransaction(*pool_, body); }
  // The pipeline's own writes (fan-out pages, erasure): never held for a standby
  // (require_standby is about what the API answers; a page reported failed after its commit
  // would leave its deliveries unqueued).
  // One page of one part of a fan-out (delivery_store.cc): of notification `notification_id`,
  // or of any when it is empty.
  Result<FanoutPage> FanOutPart(std::string_view notification_id, int max_users,
                                const FanoutPublish& publish);
  Status PipelineTxn(const std::function<Status(Conn&)>& body) {
    return InTransaction(*pool_, body, /*wait_for_standby=*/false);
  }
  // Runs a read-only statement on a pooled connection (no transaction).
  Result<Rows> Read(std::string_view sql, const Params& params);
  // The partition of a tenant's rows (partitions.h), asked on a pooled connection the first time.
  Result<int> PartitionOf(int64_t tenant_pk);

  // Users' PII is sealed with the key of the minute their consent ends (erasure_store.cc,
  // crypto/erasure_keys.h); blind indexes stay under the tenant's cipher.
  Result<std::shared_ptr<const crypto::PiiCipher>> UserCipher(const TenantRef& tenant,
                                                              UnixMillis consent_until);
  // Opens a user's sealed name or address: with the cipher of its consent minute, or with the
  // tenant's (what was written before schema version 2). DecryptFailed() when neither opens it.
  Result<std::string> OpenUserPii(const TenantRef& tenant, UnixMillis consent_until,
                                  const crypto::Bytes& sealed, std::string_view context);
  Result<crypto::ErasureKeys> LoadErasureKeys(const TenantRef& tenant);
  // UserCipher(), or the tenant's cipher when the user's consent minute is gone (the consent
  // has ended, and SealUser refuses the user).
  Result<std::shared_ptr<const crypto::PiiCipher>> SealingCipher(const TenantRef& tenant,
                                                                 UnixMillis consent_until);

  // A notification's text, opened once for all of its deliveries (see the SQLite store).
  struct NotificationText {
    std::string id, title, body;
    UnixMillis accepted_at = 0;
  };
  Result<std::shared_ptr<const NotificationText>> Text(Conn& c, int64_t notification_pk,
                                                       const TenantRef& tenant);

  // A writer with the delivery updates that wait for it (see RecordDeliveryUpdates).
  struct UpdateBatch;
  struct UpdateLane {
    std::mutex mu;
    std::shared_ptr<UpdateBatch> open;  // posted to the writer, not yet begun
    std::unique_ptr<Writer> writer;     // last: destroyed first, it drains work that uses mu
  };

  std::unique_ptr<Pool> pool_;
  std::unique_ptr<Pool> keys_pool_;  // LoadErasureKeys only (see OpenPostgresStore)
  TenantKeys tenants_;
  TenantPartitions partitions_;
  std::vector<std::unique_ptr<UpdateLane>>
      lanes_;  // the writers: stopped first, drain their queues
  std::function<void(UnixMillis)> consent_listener_;
  const std::function<UnixMillis()> clock_;
  const FanoutSplit split_;
  struct ErasureEntry {
    crypto::ErasureKeys keys;
    UnixMillis loaded = 0;  // read again a minute later: keys destroyed since are dropped
    std::unordered_map<uint64_t, std::shared_ptr<const crypto::PiiCipher>> ciphers;
  };
  std::mutex erasure_mu_;
  std::unordered_map<int64_t, ErasureEntry> erasure_;  // by tenant row key
  std::mutex texts_mu_;
  std::unordered_map<int64_t, std::shared_ptr<const NotificationText>> texts_;
};

// Shared by the method files.
// The width of an erasure bucket: a user's PII becomes unreadable at most this long after the
// consent ends (plus the reaper's period), even in the row versions PostgreSQL still keeps.
inline constexpr UnixMillis kErasureBucketMillis = 60'000;
inline uint64_t ErasureBucket(UnixMillis at) {
  return at <= 0 ? 0 : static_cast<uint64_t>(at / kErasureBucketMillis);
}
inline constexpr std::string_view kErasureKeysContext = "erasure-keys";
// A new tenant's erasure keys (from the minute `now` is in), sealed for its erasure_keys row.
crypto::Bytes SealNewErasureKeys(const crypto::PiiCipher& tenant_cipher, UnixMillis now);
Error UserNotFound();
Error GroupNotFound();
Error NotificationNotFound();
// One statement that deletes the users `victims` selects (a SELECT of tenant_pk, pk) with their
// devices and memberships (the tables have no cascading foreign keys); its row count is the
// number of users deleted.
std::string DeleteUsersSql(std::string_view victims);
// Unwraps a Result<Rows> into `rows` or returns its error from the enclosing function.
// NOLINTBEGIN(bugprone-macro-parentheses): `rows` names the variable it declares
#define PG_TRY(rows, expr)                                    \
  auto rows##_result = (expr);                                \
  if (!rows##_result.ok()) return rows##_result.take_error(); \
  Rows& rows = *rows##_result
// NOLINTEND(bugprone-macro-parentheses)

}  // namespace herald::pg

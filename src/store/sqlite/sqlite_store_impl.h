// SqliteStore: the Store behind OpenSqliteStore (see sqlite_store.h for the design). Its methods
// are defined by responsibility in sqlite_store.cc (tenants, keys, provider settings, audit,
// health), user_store.cc (users and devices), group_store.cc (groups and memberships) and
// consent_store.cc (consent expiry).
//
// Every method follows one shape: resolve the tenant (row key + cipher, cached), seal PII on the
// calling thread, then either run SQL on a leased read connection inside a ReadTxn or hand a
// closure that only does SQL to the Writer and wait for it. No exception leaves a method.
#pragma once

#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/no_throw.h"
#include "store/sqlite/checkpointer.h"
#include "store/sqlite/delivery_rows.h"
#include "store/sqlite/read_pool.h"
#include "store/sqlite/sqlite_store.h"
#include "store/sqlite/writer.h"
#include "store/store.h"
#include "store/tenant_keys.h"

namespace herald::sqlite {

class SqliteStore final : public Store {
 public:
  SqliteStore(const crypto::Key& master, std::unique_ptr<Checkpointer> checkpointer,
              std::unique_ptr<ReadPool> readers, std::unique_ptr<Writer> writer,
              std::function<UnixMillis()> clock);
  ~SqliteStore() override;

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
  // The store's time: every timestamp it writes and every consent check it makes.
  UnixMillis Now() const { return clock_(); }
  // Counts live members of a group (a read; 0 when it fails).
  int64_t CountMembers(int64_t group_pk, UnixMillis now);
  void NotifyConsentExpiry(UnixMillis earliest);
  Result<FanoutPage> FanOutPageOf(std::string_view notification_id, int max_users,
                                  const FanoutPublish& publish);

  std::unique_ptr<Checkpointer> checkpointer_;  // outlives the writer's connection
  std::unique_ptr<ReadPool> readers_;
  TenantKeys tenants_;
  std::unique_ptr<Writer> writer_;  // destroyed first: drains queued writes
  std::function<void(UnixMillis)> consent_listener_;
  const std::function<UnixMillis()> clock_;
  EventSeq event_seq_;                   // writer thread only
  std::atomic<int64_t> fanout_turn_{0};  // the notification FanOutNext paged last

  // A notification's text, opened once for all of its deliveries (it never changes):
  // LoadDispatchTargets is called for a few jobs at a time, and opening title and body for each
  // call was a tenth of the dispatcher's time during a broadcast. Keyed by row key, which is
  // sound because notification rows are never deleted (a purge would have to clear it).
  struct NotificationText {
    std::string id, title, body;
    UnixMillis accepted_at = 0;
  };
  std::shared_ptr<const NotificationText> CachedText(int64_t notification_pk);
  void CacheText(int64_t notification_pk, std::shared_ptr<const NotificationText> text);
  std::mutex texts_mu_;
  std::unordered_map<int64_t, std::shared_ptr<const NotificationText>> texts_;
};

}  // namespace herald::sqlite

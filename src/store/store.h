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
#include "model/notification.h"

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

struct CreatedNotification {
  Notification notification;  // as stored (id, accepted_at, deadline)
  bool created = false;       // false: the idempotency key was used before; this is the first
};

// One page of a notification's fan-out: the deliveries it created, as queue jobs.
struct FanoutPage {
  std::string notification_id;
  std::vector<DeliveryJob> jobs;
  int64_t users = 0;  // users this page covered
  bool done = false;  // the audience is exhausted: the fan-out is over
};

// Called with a fan-out page's jobs inside the page's transaction, before it commits: an error
// rolls the page back (nothing of it is stored, and the next call makes it again).
using FanoutPublish = std::function<Status(const std::vector<DeliveryJob>& jobs)>;

// Everything the dispatcher needs to send one delivery, read at the moment of sending.
struct DispatchTarget {
  int64_t delivery = 0;
  std::string tenant_id;
  std::string notification_id;
  std::string external_id;
  std::string device_id;
  Channel channel = Channel::kEmail;
  DeliveryStatus status = DeliveryStatus::kQueued;  // as stored now (cancelled: do not send)
  // Why it must not be sent (DESIGN §4.2), or "" when it may: "user_gone", "opted_out",
  // "consent_not_started", "consent_ended", "device_gone", "device_disabled".
  std::string suppress_reason;
  std::string address;  // plaintext, when it may be sent
  std::string title;
  std::string body;
  UnixMillis accepted_at = 0;  // the notification's
};

// A delivery state change: the delivery's row moves to `stage` and an event is appended.
struct DeliveryUpdate {
  int64_t delivery = 0;
  DeliveryStatus stage = DeliveryStatus::kDispatched;
  UnixMillis at = 0;
  std::string provider;
  int attempt = 0;
  std::string reason;
  std::string provider_message_id;  // with kSent
  bool disable_device = false;      // invalid_address: the device is disabled too
  // When set, the attempt's `dispatched` event (at this time) is written with this change: the
  // dispatcher records an attempt's start and its outcome in one write.
  UnixMillis dispatched_at = 0;
  // The delivery's tenant (its row key), when the caller knows it: a store with tables
  // partitioned by tenant then finds the row in one partition. 0: the store looks for it.
  int64_t tenant = 0;
};

// What a delivery receipt did (Store::RecordReceipt).
enum class ReceiptOutcome {
  kApplied,    // the sent delivery moved to the receipt's stage
  kDuplicate,  // the delivery is already at that stage (a replay, or the provider's retry)
  kStale,      // the delivery is past `sent` at another stage; a receipt never moves it back
};

struct ApiKeyRecord {
  ApiKey key;
  std::vector<uint8_t> hash;
};

// A duty held (Store::TryTakeDuty); released when destroyed.
class DutyLease {
 public:
  virtual ~DutyLease() = default;
  // Whether the duty is still this process's (asks the store: a lost session has lost it).
  virtual bool Held() = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // ---- tenants ----
  // Creates the tenant and its data key. Assigns tenant.id when empty.
  virtual Result<Tenant> CreateTenant(Tenant tenant) = 0;
  virtual Result<Tenant> GetTenant(std::string_view tenant_id) = 0;
  virtual Result<Page<Tenant>> ListTenants(const PageRequest& page) = 0;
  // Replaces name, delivery_deadline_minutes, default_consent_days and rate_limits.
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
  // The keys among `keys` that name no group of the tenant (a cheap check: no member counts).
  virtual Result<std::vector<std::string>> MissingGroups(std::string_view tenant_id,
                                                         const std::vector<std::string>& keys) = 0;
  // External ids of the members, in external id order.
  virtual Result<Page<std::string>> ListMembers(std::string_view tenant_id,
                                                std::string_view group_key,
                                                const PageRequest& page) = 0;

  // ---- consent expiry ----
  // The earliest consent_until of any user (any tenant), or nullopt when there are no users.
  virtual Result<std::optional<UnixMillis>> NextConsentExpiry() = 0;
  // Erases up to `limit` users whose consent_until <= now; returns how many were erased.
  virtual Result<int64_t> EraseExpiredUsers(UnixMillis now, int limit) = 0;
  // Destroys what would still open the leftover bytes of erased users: on PostgreSQL, which
  // keeps deleted row versions until vacuum, the erasure keys of the consent minutes that ended
  // (crypto/erasure_keys.h). The consent reaper calls it after each round; returns how many
  // tenants' keys changed. A backend that overwrites deleted rows in place (SQLite with
  // secure_delete) has nothing to do.
  virtual Result<int64_t> ShredExpiredKeys(UnixMillis /*now*/) { return int64_t{0}; }
  // Called (from any thread) after a write that may have moved the earliest consent expiry
  // earlier, with the new candidate. Set once, before concurrent use.
  virtual void SetConsentExpiryListener(std::function<void(UnixMillis)> listener) = 0;

  // ---- notifications and deliveries ----
  // Stores a new notification (nothing fanned out yet) and returns it with its id. When the
  // tenant used notification.idempotency_key before, stores nothing and returns the first
  // notification with created = false (the caller compares request_hash).
  virtual Result<CreatedNotification> CreateNotification(Notification notification) = 0;
  // With counts per status, fan-out progress and the derived status.
  virtual Result<Notification> GetNotification(std::string_view tenant_id,
                                               std::string_view notification_id) = 0;
  // Ids of the notifications (any tenant) whose fan-out has not finished, oldest first: a
  // restart resumes them.
  virtual Result<std::vector<std::string>> ListUnfinishedFanouts() = 0;
  // Creates the deliveries (status queued, with their queued event) for the next page of the
  // notification's audience — the devices of the users in its groups and users, each device
  // once, at most about `max_users` users — and records the progress in the same transaction,
  // so a fan-out interrupted by a crash resumes where it stopped. Users past their consent
  // window and disabled devices are left out; the dispatcher checks consent again at sending.
  // A cancelled notification's fan-out is done at once.
  virtual Result<FanoutPage> FanOutPage(std::string_view notification_id, int max_users) = 0;
  // One page, as FanOutPage, of whichever unfinished fan-out (any tenant) is next in turn:
  // fan-outs take turns page by page, and a large audience is split into parts of the user key
  // space that several processes fan out at once (a part is worked on by one caller at a time;
  // a caller that dies mid-page leaves the part to the next). `publish` (may be empty) runs
  // before the page commits: a remote queue's push goes there, so that no committed delivery
  // misses the queue. kNotFound "no_fanout_work" when nothing is left to fan out right now.
  virtual Result<FanoutPage> FanOutNext(int max_users, const FanoutPublish& publish) = 0;
  // Deliveries (any tenant) not yet terminal, after `after_delivery` in row-key order: the
  // queue is rebuilt from them after a restart.
  virtual Result<std::vector<DeliveryJob>> ListUnfinishedDeliveries(int64_t after_delivery,
                                                                    int limit) = 0;
  // Reads, for each job, what sending it needs and whether it may be sent now. Deliveries that
  // no longer exist are left out.
  virtual Result<std::vector<DispatchTarget>> LoadDispatchTargets(
      const std::vector<DeliveryJob>& jobs) = 0;
  // Queues the state changes for the next write batch (not waited for; Flush waits).
  // `durable` (may be empty) is called once they are committed (true) or the store gave up on
  // them (false: the database was gone longer than the writer waits), from a store thread:
  // quick, and not calling the store. The dispatcher acknowledges queue jobs from it.
  virtual void RecordDeliveryUpdates(std::vector<DeliveryUpdate> updates,
                                     std::function<void(bool committed)> durable = {}) = 0;
  // Cancels every delivery of the notification that is queued or waiting to retry, and stops
  // its fan-out. Returns how many deliveries were cancelled. kNotFound for unknown ids.
  virtual Result<int64_t> CancelNotification(std::string_view tenant_id,
                                             std::string_view notification_id) = 0;
  // The notification's deliveries in creation order, optionally only those in `status`.
  virtual Result<Page<Delivery>> ListDeliveries(std::string_view tenant_id,
                                                std::string_view notification_id,
                                                std::optional<DeliveryStatus> status,
                                                const PageRequest& page) = 0;
  // The user's delivery events, newest first (also of deliveries to devices since removed).
  virtual Result<Page<DeliveryEvent>> ListUserEvents(std::string_view tenant_id,
                                                     std::string_view external_id,
                                                     const PageRequest& page) = 0;
  // The tenant's delivery events after `after_seq`, in seq order, at most `limit` (clamped to
  // 1-1000), for readers that follow the events as they are stored (the live stream, webhooks).
  // Within a tenant, seq grows in commit order, whichever process wrote the event: once an event
  // is listed, no event of that tenant with a smaller seq can appear later, so a reader that
  // asks again after the last seq it saw misses nothing and sees nothing twice. (Numbers may
  // skip.)
  // kNotFound "tenant_not_found".
  virtual Result<std::vector<DeliveryEvent>> ListEventsSince(std::string_view tenant_id,
                                                             int64_t after_seq, int limit) = 0;
  // A provider's delivery receipt: moves the tenant's sent delivery whose provider message id
  // this is to `stage` (kDelivered or kFailed). kNotFound when the tenant has no such delivery.
  // Receipts move a delivery only out of `sent`, so a replayed or late receipt never moves one
  // backwards (failed back to delivered, or delivered to failed): a delivery already at `stage`
  // is kDuplicate, one at any other status kStale, and neither is changed.
  virtual Result<ReceiptOutcome> RecordReceipt(std::string_view tenant_id,
                                               std::string_view provider,
                                               std::string_view provider_message_id,
                                               DeliveryStatus stage, std::string_view reason) = 0;

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

  // ---- duties one process at a time performs (the consent reaper) ----
  // Takes the duty `name` for this process, or returns nullptr when another process holds it.
  // On PostgreSQL the duty is a session advisory lock on a connection of its own: it ends when
  // the holder's session does (the process died, or lost the server), and then the next
  // TryTakeDuty anywhere gets it. One process's SQLite store is always its own holder.
  virtual Result<std::unique_ptr<DutyLease>> TryTakeDuty(std::string_view name) = 0;
};

}  // namespace herald

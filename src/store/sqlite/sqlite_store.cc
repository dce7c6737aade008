// OpenSqliteStore, and the SqliteStore methods for audit, flushing and health.
#include "store/sqlite/sqlite_store.h"

#include <limits>
#include <utility>

#include "store/cursor.h"
#include "store/sqlite/schema.h"
#include "store/sqlite/sqlite_store_impl.h"

namespace herald {
namespace {

// WAL pages (4 KiB) after which the checkpointer copies the WAL into the database: 32 MiB.
// A broadcast rewrites the same few pages (index and event frontiers) in commit after commit;
// a checkpoint copies each page once however often it was rewritten, so checkpointing every
// 32 MiB instead of SQLite's 4 MiB default cut the checkpointer's CPU by 40%.
constexpr int kCheckpointPages = 8192;

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(SqliteStoreOptions options) {
  using namespace sqlite;  // NOLINT(google-build-using-namespace)
  return NoThrow([&]() -> Result<std::unique_ptr<Store>> {
    if (!crypto::InitCrypto()) {
      return MakeError(ErrorKind::kInternal, "crypto_unavailable", "libsodium failed to start.");
    }
    Result<std::unique_ptr<Connection>> conn =
        Connection::Open(options.path, Connection::Mode::kReadWrite);
    if (!conn.ok()) return conn.take_error();
    Status s = Migrate(**conn);
    if (s.ok()) s = CheckMasterKey(**conn, options.master_key);
    if (!s.ok()) return s.take_error();
    Result<std::unique_ptr<ReadPool>> readers =
        ReadPool::Open(options.path, options.read_connections);
    if (!readers.ok()) return readers.take_error();
    Result<std::unique_ptr<Checkpointer>> checkpointer =
        Checkpointer::Start(options.path, kCheckpointPages);
    if (!checkpointer.ok()) return checkpointer.take_error();
    (*checkpointer)->Attach(**conn);
    auto writer = std::make_unique<Writer>(std::move(*conn),
                                           static_cast<size_t>(std::max(1, options.max_batch)),
                                           std::move(options.on_batch));
    return std::unique_ptr<Store>(new SqliteStore(
        options.master_key, std::move(*checkpointer), std::move(*readers), std::move(writer),
        options.clock ? std::move(options.clock) : std::function<UnixMillis()>(NowMillis)));
  });
}

namespace sqlite {
namespace {

constexpr char kAuditCursor = 'a';

}  // namespace

SqliteStore::SqliteStore(const crypto::Key& master, std::unique_ptr<Checkpointer> checkpointer,
                         std::unique_ptr<ReadPool> readers, std::unique_ptr<Writer> writer,
                         std::function<UnixMillis()> clock)
    : checkpointer_(std::move(checkpointer)),
      readers_(std::move(readers)),
      tenants_(master,
               [readers = readers_.get()](std::string_view id) -> Result<WrappedTenantKey> {
                 ReadPool::Lease conn = readers->Acquire();
                 Stmt q = conn->Prepare("SELECT pk, wrapped_key FROM tenants WHERE id = ?1");
                 q.Bind(1, id);
                 Result<bool> row = q.Next();
                 if (!row.ok()) return row.take_error();
                 if (!*row) return TenantNotFound();
                 return WrappedTenantKey{q.Int(0), q.Blob(1)};
               }),
      writer_(std::move(writer)),
      clock_(std::move(clock)) {}

SqliteStore::~SqliteStore() {
  writer_.reset();        // writes what is queued
  readers_.reset();       // so that the final checkpoint can empty the WAL
  checkpointer_.reset();  // last connection: the data ends up in the database file
}

// ---- audit ----

void SqliteStore::AppendAudit(AuditRecord record) {
  try {
    if (record.at == 0) record.at = Now();
    writer_->Post([r = std::move(record)](Connection& c) -> Status {
      Stmt w = c.Prepare(
          "INSERT INTO audit (tenant_id, at, actor, method, route, status, request_id, "
          "latency_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
      return w.Bind(1, r.tenant_id)
          .Bind(2, r.at)
          .Bind(3, r.actor)
          .Bind(4, r.method)
          .Bind(5, r.route)
          .Bind(6, r.status)
          .Bind(7, r.request_id)
          .Bind(8, r.latency_us)
          .Run();
    });
  } catch (...) {  // out of memory: the record is lost, the caller is not
  }
}

Result<Page<AuditRecord>> SqliteStore::ListAudit(std::string_view tenant_id,
                                                 const PageRequest& page) {
  return NoThrow([&]() -> Result<Page<AuditRecord>> {
    Result<int64_t> before = DecodeIdCursor(kAuditCursor, page.cursor);
    if (!before.ok()) return before.take_error();
    int limit = ClampLimit(page.limit);
    ReadPool::Lease conn = readers_->Acquire();
    Stmt q = conn->Prepare(
        "SELECT id, at, tenant_id, actor, method, route, status, request_id, latency_us "
        "FROM audit WHERE tenant_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3");
    q.Bind(1, tenant_id)
        .Bind(2, *before != 0 ? *before : std::numeric_limits<int64_t>::max())
        .Bind(3, limit + 1);
    Page<AuditRecord> out;
    for (;;) {
      Result<bool> row = q.Next();
      if (!row.ok()) return row.take_error();
      if (!*row) break;
      if (static_cast<int>(out.items.size()) == limit) {
        out.next_cursor = EncodeIdCursor(kAuditCursor, out.items.back().id);
        break;
      }
      out.items.push_back(AuditRecord{q.Int(0), q.Int(1), q.Text(2), q.Text(3), q.Text(4),
                                      q.Text(5), static_cast<int>(q.Int(6)), q.Text(7), q.Int(8)});
    }
    return out;
  });
}

Status SqliteStore::Flush() {
  return NoThrow([&]() -> Status { return writer_->Flush(); });
}

// ---- health ----

Status SqliteStore::Ping() {
  return NoThrow([&]() -> Status {
    ReadPool::Lease conn = readers_->Acquire();
    return conn->Prepare("SELECT 1").Run();
  });
}

namespace {
// The one process that opens the file holds every duty.
class OwnDuty final : public DutyLease {
 public:
  bool Held() override { return true; }
};
}  // namespace

Result<std::unique_ptr<DutyLease>> SqliteStore::TryTakeDuty(std::string_view /*name*/) {
  return std::unique_ptr<DutyLease>(std::make_unique<OwnDuty>());
}

}  // namespace sqlite
}  // namespace herald

#include "store/postgres/partitions.h"

#include "store/postgres/schema.h"

namespace herald::pg {

std::optional<int> TenantPartitions::Known(int64_t tenant_pk) {
  std::lock_guard lock(mu_);
  auto it = known_.find(tenant_pk);
  if (it == known_.end()) return std::nullopt;
  return it->second;
}

Result<int> TenantPartitions::Of(Conn& c, int64_t tenant_pk) {
  if (std::optional<int> known = Known(tenant_pk)) return *known;
  Params q;
  q.Int(tenant_pk).Int(kPartitions);
  Result<Rows> rows = c.Exec(
      "SELECT r FROM generate_series(0, $2::integer - 1) AS r "
      "WHERE satisfies_hash_partition('deliveries'::regclass, $2::integer, r, $1::bigint)",
      q);
  if (!rows.ok()) return rows.take_error();
  if (rows->size() != 1) {
    return MakeError(ErrorKind::kInternal, "partition_unknown",
                     "The database did not name exactly one partition for a tenant; is the "
                     "schema of this Herald version in place?");
  }
  const int partition = static_cast<int>(rows->Int(0, 0));
  std::lock_guard lock(mu_);
  known_[tenant_pk] = partition;
  return partition;
}

std::string PartitionTable(std::string_view table, int partition) {
  std::string out(table);
  if (partition >= 0) out += "_p" + std::to_string(partition);
  return out;
}

}  // namespace herald::pg

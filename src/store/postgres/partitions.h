// Which hash partition of the big tables holds a tenant's rows. Every partitioned table has the
// same key (tenant_pk, bigint) and modulus (kPartitions), so one number names a tenant's
// partition of each. Statements that touch one tenant's rows name that partition itself
// (deliveries_p3): the server then plans one table instead of kPartitions, which was a third of
// the delivery writer's time on the server.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.h"
#include "store/postgres/pg.h"

namespace herald::pg {

class TenantPartitions {
 public:
  // The partition (0 .. kPartitions-1) of the tenant with row key `tenant_pk`: asked of the
  // server on `c` the first time (its hash function decides), remembered after.
  Result<int> Of(Conn& c, int64_t tenant_pk);
  // The partition when Of has been asked before.
  std::optional<int> Known(int64_t tenant_pk);

 private:
  std::mutex mu_;
  std::unordered_map<int64_t, int> known_;
};

// `table`'s partition `partition` ("deliveries_p3"), or `table` itself when partition < 0.
std::string PartitionTable(std::string_view table, int partition);

}  // namespace herald::pg

// Fault injection: per provider, what PUT /sim/faults/<provider> asked for, and the per-request
// dice. Semantics (the routes and the SMTP server carry them out):
//   outage                    every request of that provider fails at connection level
//                             (HTTP: 503 in the provider's error shape, then close; SMTP: 421)
//   error_rate  (0..1)        that fraction is answered with `status` (default: the provider's
//                             500-class error); 401/403 (SMTP: 535) come in the provider's
//                             refused-credentials shape, so clients see an auth error
//   throttle_rate (0..1)      that fraction is answered 429 (the provider's throttle shape) with
//                             Retry-After: 1
//   latency_ms                every answer waits this long (a timer)
//   timeout_after_accept_rate that fraction is recorded as accepted and never answered
//   invalid_addresses         these addresses get the provider's invalid-address answer
//
// Thread-safety: FaultTable may be read and written from any thread; readers get an immutable
// snapshot. With no faults set for a provider, Get() takes no lock.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>

#include "common/result.h"
#include "sim/record.h"

namespace herald::sim {

struct FaultConfig {
  bool outage = false;
  double error_rate = 0;
  int status = 0;  // 0 = the provider's default error status
  int latency_ms = 0;
  double timeout_after_accept_rate = 0;
  double throttle_rate = 0;
  std::unordered_set<std::string> invalid_addresses;  // normalized (see NormalizeAddress)

  bool IsInvalid(Provider p, std::string_view address) const;
};

// Parses the JSON object of PUT /sim/faults/<provider>. Keys left out keep their defaults (a PUT
// replaces the provider's whole fault set). Unknown keys, wrong types and out-of-range values
// (rates outside 0..1, status outside 100..599, latency outside 0..600000) are errors.
Result<FaultConfig> ParseFaultConfig(Provider p, std::string_view json_text);
std::string FaultConfigJson(const FaultConfig& config);

// The outcome the dice chose for one request: throttle is rolled first, then error.
enum class FaultRoll { kNone, kThrottle, kError };
FaultRoll RollFaults(const FaultConfig& config);
bool RollTimeoutAfterAccept(const FaultConfig& config);
// Uniform in [0, 1) from a thread-local generator.
double Uniform01();

class FaultTable {
 public:
  FaultTable();
  // Never null; the snapshot stays valid however the table changes afterwards.
  std::shared_ptr<const FaultConfig> Get(Provider p) const;
  void Set(Provider p, FaultConfig config);
  void ClearAll();

 private:
  std::shared_ptr<const FaultConfig> none_;
  mutable std::mutex mu_;
  std::array<std::shared_ptr<const FaultConfig>, kProviderCount> table_;
  std::array<std::atomic<bool>, kProviderCount> active_{};
};

}  // namespace herald::sim

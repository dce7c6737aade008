#include "sim/faults.h"

#include <nlohmann/json.hpp>
#include <random>
#include <utility>

namespace herald::sim {
namespace {

using nlohmann::json;

Error Bad(std::string message, std::string field) {
  return MakeError(ErrorKind::kMalformed, "invalid_fault", std::move(message), std::move(field));
}

Result<double> Rate(const json& v, const std::string& field) {
  if (!v.is_number()) return Bad(field + " must be a number between 0 and 1.", field);
  double d = v.get<double>();
  if (!(d >= 0.0 && d <= 1.0)) return Bad(field + " must be between 0 and 1.", field);
  return d;
}

Result<int> IntIn(const json& v, const std::string& field, int lo, int hi) {
  if (!v.is_number_integer()) return Bad(field + " must be an integer.", field);
  int64_t i = v.get<int64_t>();
  if (i < lo || i > hi) {
    return Bad(
        field + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ".",
        field);
  }
  return static_cast<int>(i);
}

}  // namespace

bool FaultConfig::IsInvalid(Provider p, std::string_view address) const {
  return !invalid_addresses.empty() && invalid_addresses.count(NormalizeAddress(p, address)) > 0;
}

Result<FaultConfig> ParseFaultConfig(Provider p, std::string_view json_text) {
  json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Bad("The body must be a JSON object of fault settings.", "");
  }
  FaultConfig c;
  for (const auto& [key, v] : doc.items()) {
    if (key == "outage") {
      if (!v.is_boolean()) return Bad("outage must be true or false.", key);
      c.outage = v.get<bool>();
    } else if (key == "error_rate" || key == "throttle_rate" ||
               key == "timeout_after_accept_rate") {
      auto r = Rate(v, key);
      if (!r.ok()) return r.take_error();
      (key == "error_rate"      ? c.error_rate
       : key == "throttle_rate" ? c.throttle_rate
                                : c.timeout_after_accept_rate) = *r;
    } else if (key == "status") {
      auto r = IntIn(v, key, 100, 599);
      if (!r.ok()) return r.take_error();
      c.status = *r;
    } else if (key == "latency_ms") {
      auto r = IntIn(v, key, 0, 600'000);
      if (!r.ok()) return r.take_error();
      c.latency_ms = *r;
    } else if (key == "invalid_addresses") {
      if (!v.is_array()) return Bad("invalid_addresses must be an array of strings.", key);
      for (const auto& a : v) {
        if (!a.is_string() || a.get_ref<const std::string&>().empty()) {
          return Bad("invalid_addresses must hold non-empty strings.", key);
        }
        c.invalid_addresses.insert(NormalizeAddress(p, a.get_ref<const std::string&>()));
      }
    } else {
      return Bad("Unknown fault \"" + key +
                     "\"; use outage, error_rate, status, latency_ms, "
                     "timeout_after_accept_rate, throttle_rate or invalid_addresses.",
                 key);
    }
  }
  return c;
}

std::string FaultConfigJson(const FaultConfig& c) {
  json addresses = json::array();
  for (const auto& a : c.invalid_addresses) addresses.push_back(a);
  return json{{"outage", c.outage},
              {"error_rate", c.error_rate},
              {"status", c.status},
              {"latency_ms", c.latency_ms},
              {"timeout_after_accept_rate", c.timeout_after_accept_rate},
              {"throttle_rate", c.throttle_rate},
              {"invalid_addresses", std::move(addresses)}}
      .dump();
}

double Uniform01() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

FaultRoll RollFaults(const FaultConfig& c) {
  if (c.throttle_rate > 0 && Uniform01() < c.throttle_rate) return FaultRoll::kThrottle;
  if (c.error_rate > 0 && Uniform01() < c.error_rate) return FaultRoll::kError;
  return FaultRoll::kNone;
}

bool RollTimeoutAfterAccept(const FaultConfig& c) {
  return c.timeout_after_accept_rate > 0 && Uniform01() < c.timeout_after_accept_rate;
}

FaultTable::FaultTable() : none_(std::make_shared<const FaultConfig>()) { table_.fill(none_); }

std::shared_ptr<const FaultConfig> FaultTable::Get(Provider p) const {
  const auto i = static_cast<size_t>(p);
  if (!active_[i].load(std::memory_order_acquire)) return none_;
  std::lock_guard lock(mu_);
  return table_[i];
}

void FaultTable::Set(Provider p, FaultConfig config) {
  const auto i = static_cast<size_t>(p);
  auto snapshot = std::make_shared<const FaultConfig>(std::move(config));
  std::lock_guard lock(mu_);
  table_[i] = std::move(snapshot);
  active_[i].store(true, std::memory_order_release);
}

void FaultTable::ClearAll() {
  std::lock_guard lock(mu_);
  table_.fill(none_);
  for (auto& a : active_) a.store(false, std::memory_order_release);
}

}  // namespace herald::sim

#include "observe/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <variant>

namespace herald::observe {
namespace {

constexpr double kSumScale = 1e6;

// Prometheus number syntax: shortest round-trip form, and NaN / +Inf / -Inf spelled its way.
void AppendNumber(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    // Shortest round-trip digits; plain decimals ("0.0001", not "1e-04") where they stay short.
    char buf[64];
    const double magnitude = std::fabs(v);
    const bool plain = magnitude == 0 || (magnitude >= 1e-6 && magnitude < 1e15);
    const auto res = plain ? std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed)
                           : std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, res.ptr);
  }
}

// Label values escape backslash, double quote and newline; HELP text escapes backslash and
// newline (text format 0.0.4).
void AppendEscaped(std::string& out, std::string_view s, bool quote_too) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote_too) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// {k="v",...,extra_key="extra_value"}; nothing when there are no labels at all.
void AppendLabels(std::string& out, const Labels& labels, std::string_view extra_key = {},
                  std::string_view extra_value = {}) {
  if (labels.empty() && extra_key.empty()) return;
  out += '{';
  bool first = true;
  const auto add = [&](std::string_view k, std::string_view v) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    AppendEscaped(out, v, true);
    out += '"';
  };
  for (const auto& [k, v] : labels) add(k, v);
  if (!extra_key.empty()) add(extra_key, extra_value);
  out += '}';
}

}  // namespace

// ---- Histogram -------------------------------------------------------------------------------

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  // +Inf is implicit; NaN cannot order buckets.
  std::erase_if(bounds_, [](double b) { return std::isnan(b) || std::isinf(b); });
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
  buckets_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  // A bucket counts observations <= its bound: the first bound not less than v.
  const size_t i =
      static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  // Two's complement wrap-around makes unsigned addition of negative amounts exact.
  constexpr double kLimit = 9e18;  // inside int64, so llround stays defined
  const int64_t scaled =
      std::isfinite(v) ? std::llround(std::clamp(v * kSumScale, -kLimit, kLimit)) : 0;
  sum_micro_.fetch_add(static_cast<uint64_t>(scaled), std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    out[i] = running;
  }
  return out;
}

double Histogram::Sum() const {
  return static_cast<double>(static_cast<int64_t>(sum_micro_.load(std::memory_order_relaxed))) /
         kSumScale;
}

uint64_t Histogram::Count() const { return count_.load(std::memory_order_relaxed); }

// ---- Registry --------------------------------------------------------------------------------

struct Registry::Family {
  using Child =
      std::variant<std::unique_ptr<Counter>, std::unique_ptr<Gauge>, std::unique_ptr<Histogram>>;
  std::string help;
  std::string_view type;  // "counter", "gauge" or "histogram"
  std::map<Labels, Child> children;
};

namespace {

// Finds or creates the family `name` of `type`; a name registered with another type is a
// programming error, reported by throwing at registration time (never on a hot path).
template <typename Families, typename FamilyT>
FamilyT& FamilyFor(Families& families, const std::string& name, const std::string& help,
                   std::string_view type) {
  auto it = families.find(name);
  if (it == families.end()) {
    auto family = std::make_unique<FamilyT>();
    family->help = help;
    family->type = type;
    it = families.emplace(name, std::move(family)).first;
  } else if (it->second->type != type) {
    throw std::logic_error("metric " + name + " is already registered as a " +
                           std::string(it->second->type));
  }
  return *it->second;
}

// The child of `family` with these labels, created from `args` on first use.
template <typename T, typename FamilyT, typename... Args>
T& ChildOf(FamilyT& family, const Labels& labels, const Args&... args) {
  auto [it, inserted] = family.children.try_emplace(labels, std::unique_ptr<T>());
  if (inserted) it->second = std::make_unique<T>(args...);
  return *std::get<std::unique_ptr<T>>(it->second);
}

}  // namespace

Registry::Registry() = default;
Registry::~Registry() = default;

Counter& Registry::GetCounter(const std::string& name, const std::string& help,
                              const Labels& labels) {
  std::lock_guard lock(mu_);
  Family& family = FamilyFor<decltype(families_), Family>(families_, name, help, "counter");
  return ChildOf<Counter>(family, labels);
}

Gauge& Registry::GetGauge(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard lock(mu_);
  Family& family = FamilyFor<decltype(families_), Family>(families_, name, help, "gauge");
  return ChildOf<Gauge>(family, labels);
}

Histogram& Registry::GetHistogram(const std::string& name, const std::string& help,
                                  const std::vector<double>& bounds, const Labels& labels) {
  std::lock_guard lock(mu_);
  Family& family = FamilyFor<decltype(families_), Family>(families_, name, help, "histogram");
  return ChildOf<Histogram>(family, labels, bounds);
}

std::string Registry::Render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, family] : families_) {
    out += "# HELP ";
    out += name;
    out += ' ';
    AppendEscaped(out, family->help, false);
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += family->type;
    out += '\n';
    for (const auto& [labels, child] : family->children) {
      if (const auto* c = std::get_if<std::unique_ptr<Counter>>(&child)) {
        out += name;
        AppendLabels(out, labels);
        out += ' ' + std::to_string((*c)->Value()) + '\n';
      } else if (const auto* g = std::get_if<std::unique_ptr<Gauge>>(&child)) {
        out += name;
        AppendLabels(out, labels);
        out += ' ' + std::to_string((*g)->Value()) + '\n';
      } else {
        const Histogram& h = *std::get<std::unique_ptr<Histogram>>(child);
        const std::vector<uint64_t> cumulative = h.CumulativeCounts();
        for (size_t i = 0; i < cumulative.size(); ++i) {
          std::string le;
          if (i < h.bounds().size()) {
            AppendNumber(le, h.bounds()[i]);
          } else {
            le = "+Inf";
          }
          out += name + "_bucket";
          AppendLabels(out, labels, "le", le);
          out += ' ' + std::to_string(cumulative[i]) + '\n';
        }
        out += name + "_sum";
        AppendLabels(out, labels);
        out += ' ';
        AppendNumber(out, h.Sum());
        out += '\n';
        // The +Inf bucket, not Count(): both read from one snapshot so they always agree.
        out += name + "_count";
        AppendLabels(out, labels);
        out += ' ' + std::to_string(cumulative.back()) + '\n';
      }
    }
  }
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

}  // namespace herald::observe

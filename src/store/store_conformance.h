// The Store conformance suite's fixture, shared by its files (store_conformance*_test.cc). The
// suite is written only against the Store interface (store.h); every backend must pass it. A
// backend joins by adding a BackendFactory to the list in store_conformance_test.cc.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "store/store.h"
#include "store/store_test_support.h"

namespace herald::store_test {

inline constexpr UnixMillis kDay = 24LL * 3600 * 1000;

struct BackendOptions {
  std::function<void(size_t)> on_batch;  // called per committed write batch, where there are any
  std::function<UnixMillis()> clock;     // the store's clock (the fixture's: see Advance)
};

// A fresh, empty store, and whatever must be cleaned up after it.
class TestBackend {
 public:
  virtual ~TestBackend() = default;
  virtual Store& store() = 0;
};

struct BackendFactory {
  std::string name;
  bool batches_writes = false;  // whether BackendOptions::on_batch reports batches
  std::function<std::unique_ptr<TestBackend>(BackendOptions)> open;
};
inline void PrintTo(const BackendFactory& f, std::ostream* os) { *os << f.name; }

class StoreConformanceTest : public ::testing::TestWithParam<BackendFactory> {
 protected:
  void SetUp() override {
    BackendOptions options;
    options.on_batch = [this](size_t n) {
      batches_.fetch_add(1);
      size_t seen = max_batch_.load();
      while (n > seen && !max_batch_.compare_exchange_weak(seen, n)) {
      }
    };
    options.clock = [this] { return Now(); };
    backend_ = GetParam().open(std::move(options));
  }
  void TearDown() override { backend_.reset(); }

  // The store's time: the real clock, moved forward by Advance (no test sleeps for the store).
  UnixMillis Now() const { return NowMillis() + offset_.load(); }
  void Advance(UnixMillis ms) { offset_.fetch_add(ms); }

  Store& store() { return backend_->store(); }
  std::atomic<UnixMillis> offset_{0};

  Tenant NewTenant(const std::string& name = "Acme") {
    Tenant t;
    t.name = name;
    t.delivery_deadline_minutes = 20;
    t.default_consent_days = 30;
    Result<Tenant> created = store().CreateTenant(t);
    EXPECT_TRUE(created.ok()) << ErrorText(created);
    return created.ok() ? *created : Tenant{};
  }

  static User MakeUser(const std::string& tenant_id, const std::string& external_id,
                       std::vector<Device> devices = {}, std::vector<std::string> groups = {}) {
    User u;
    u.tenant_id = tenant_id;
    u.external_id = external_id;
    u.name = "Name of " + external_id;
    u.opt_in = true;
    u.consent_from = NowMillis() - kDay;
    u.consent_until = NowMillis() + 30 * kDay;
    u.devices = std::move(devices);
    u.groups = std::move(groups);
    return u;
  }

  PutUserOutcome Put(const User& u, std::optional<int64_t> expected = {}) {
    Result<PutUserOutcome> r = store().PutUser(u, expected);
    EXPECT_TRUE(r.ok()) << ErrorText(r);
    return r.ok() ? *r : PutUserOutcome{};
  }

  std::unique_ptr<TestBackend> backend_;
  std::atomic<size_t> batches_{0};
  std::atomic<size_t> max_batch_{0};
};

#define EXPECT_ERROR(expr, kind_, code_)                            \
  do {                                                              \
    auto&& result_ = (expr);                                        \
    ASSERT_FALSE(result_.ok()) << "expected " << (code_);           \
    EXPECT_EQ(result_.error().kind, (kind_)) << ErrorText(result_); \
    EXPECT_EQ(result_.error().code, (code_)) << ErrorText(result_); \
  } while (0)

#define ASSERT_OK(expr)                              \
  do {                                               \
    auto&& result_ = (expr);                         \
    ASSERT_TRUE(result_.ok()) << ErrorText(result_); \
  } while (0)

}  // namespace herald::store_test

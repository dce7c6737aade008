// Row-level behaviour of bulk writes that the Store interface cannot provoke: a line failing
// inside the writer (here a device list that slipped past SealUser's duplicate check) makes the
// optimistic pass roll back, and the savepoint pass then keeps every other line.
#include "store/sqlite/user_rows.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "store/sqlite/schema.h"
#include "store/store_test_support.h"

namespace herald::sqlite {
namespace {

class UserRowsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(crypto::InitCrypto());
    Result<std::unique_ptr<Connection>> conn =
        Connection::Open(dir_.path() + "/rows.db", Connection::Mode::kReadWrite);
    ASSERT_TRUE(conn.ok());
    conn_ = std::move(*conn);
    ASSERT_TRUE(Migrate(*conn_).ok());
    ASSERT_TRUE(conn_
                    ->Exec("INSERT INTO tenants (pk, id, name, delivery_deadline_minutes, "
                           "default_consent_days, wrapped_key, created_at, updated_at) "
                           "VALUES (1, 'ten_a', 'A', 15, 30, x'00', 0, 0)")
                    .ok());
  }

  SealedUser Line(const std::string& id, std::vector<Device> devices,
                  std::vector<std::string> groups = {}) {
    User u;
    u.external_id = id;
    u.name = id;
    u.consent_from = NowMillis() - 1000;
    u.consent_until = NowMillis() + 3600 * 1000;
    u.devices = std::move(devices);
    u.groups = std::move(groups);
    DeviceIds ids(u.devices.size());
    Result<SealedUser> s = SealUser(u, cipher_, NowMillis(), ids);
    EXPECT_TRUE(s.ok());
    return s.ok() ? *s : SealedUser{};
  }

  int64_t Count(const char* table) {
    std::string sql = std::string("SELECT COUNT(*) FROM ") + table;
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(conn_->raw(), sql.c_str(), -1, &st, nullptr);
    sqlite3_step(st);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
  }

  store_test::TempDir dir_;
  std::unique_ptr<Connection> conn_;
  crypto::PiiCipher cipher_{crypto::RandomKey()};
};

TEST_F(UserRowsTest, LineFailingInTheWriterIsRolledBackAloneAndTheOthersKept) {
  std::vector<std::optional<SealedUser>> lines;
  lines.emplace_back(Line("a", {store_test::Dev(Channel::kEmail, "a@example.com")}, {"g1"}));
  SealedUser bad = Line("bad", {store_test::Dev(Channel::kEmail, "b@example.com")}, {"g2"});
  bad.devices.emplace_back(bad.devices[0]);  // the same device twice: a primary key violation
  lines.emplace_back(bad);
  lines.emplace_back(std::nullopt);  // refused before the writer
  lines.emplace_back(Line("c", {store_test::Dev(Channel::kSms, "+14155550100")}, {"g1"}));
  std::vector<ImportLineResult> results(lines.size());
  results[2].error = MakeError(ErrorKind::kInvalid, "too_many_devices", "refused earlier");

  ASSERT_TRUE(conn_->Exec("BEGIN").ok());
  Result<bool> fast = WriteUserLines(*conn_, 1, lines, NowMillis(), results, false);
  ASSERT_TRUE(fast.ok());
  EXPECT_FALSE(*fast);           // the optimistic pass gave up ...
  EXPECT_EQ(Count("users"), 0);  // ... and left nothing behind
  EXPECT_EQ(Count("tenant_groups"), 0);
  Result<bool> safe = WriteUserLines(*conn_, 1, lines, NowMillis(), results, true);
  ASSERT_TRUE(safe.ok());
  EXPECT_TRUE(*safe);
  ASSERT_TRUE(conn_->Exec("COMMIT").ok());

  EXPECT_TRUE(results[0].ok && results[0].created);
  EXPECT_FALSE(results[1].ok);
  EXPECT_EQ(results[1].error.kind, ErrorKind::kConflict);
  EXPECT_FALSE(results[2].ok);
  EXPECT_EQ(results[2].error.code, "too_many_devices");
  EXPECT_TRUE(results[3].ok && results[3].created);
  EXPECT_EQ(Count("users"), 2);
  EXPECT_EQ(Count("devices"), 2);
  EXPECT_EQ(Count("memberships"), 2);
  EXPECT_EQ(Count("tenant_groups"), 1);  // g2 was created only by the failed line
}

TEST_F(UserRowsTest, OptimisticPassWritesEverythingWhenNothingFails) {
  std::vector<std::optional<SealedUser>> lines;
  lines.reserve(11);
  for (int i = 0; i < 10; ++i) {
    lines.emplace_back(Line("u" + std::to_string(i),
                            {store_test::Dev(Channel::kIos, store_test::IosToken(i))}, {"g"}));
  }
  lines.emplace_back(Line("u3", {}, {}));  // the same user again: replaced
  std::vector<ImportLineResult> results(lines.size());
  ASSERT_TRUE(conn_->Exec("BEGIN").ok());
  Result<bool> fast = WriteUserLines(*conn_, 1, lines, NowMillis(), results, false);
  ASSERT_TRUE(conn_->Exec("COMMIT").ok());
  ASSERT_TRUE(fast.ok());
  EXPECT_TRUE(*fast);
  for (const ImportLineResult& r : results) EXPECT_TRUE(r.ok);
  EXPECT_FALSE(results.back().created);
  EXPECT_EQ(Count("users"), 10);
  EXPECT_EQ(Count("devices"), 9);
  EXPECT_EQ(Count("memberships"), 9);
}

TEST(DeviceIdsTest, IdsAreWellFormedAndDistinct) {
  ASSERT_TRUE(crypto::InitCrypto());
  DeviceIds ids(100);
  std::set<std::string> seen;
  for (int i = 0; i < 150; ++i) {  // past the block: falls back to one CSPRNG call per id
    std::string id = ids.Next();
    ASSERT_EQ(id.size(), 24u);
    EXPECT_EQ(id.rfind("dev_", 0), 0u);
    for (char c : id.substr(4)) EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'));
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 150u);
}

}  // namespace
}  // namespace herald::sqlite

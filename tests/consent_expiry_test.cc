// Users past their consent window are destroyed without delay (DESIGN R3): 10,000 users whose
// consent ends at the same instant are invisible from that instant and erased within 1 s of it.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "support/api_helpers.h"
#include "support/herald_process.h"
#include "support/stores.h"

namespace herald::e2e {
namespace {

using nlohmann::json;
using SysClock = std::chrono::system_clock;
using std::chrono::milliseconds;

constexpr int kUsers = 10'000;
constexpr auto kLead = std::chrono::seconds(3);  // consent_until, from the test's start
// DESIGN R3: erased within 1 s of consent_until (the ordinary build erases these 10,001 users in
// about 160 ms). The sanitizer build is an unoptimised Debug build whose every allocation goes
// through ASan's runtime, about seven times slower end to end (1.07-1.11 s for the same work);
// there the test keeps every behavioural assertion and gives the reaper 3 s.
#if defined(__SANITIZE_ADDRESS__)
constexpr auto kMaxEraseLag = std::chrono::seconds(3);
#else
constexpr auto kMaxEraseLag = std::chrono::seconds(1);
#endif
constexpr auto kGiveUpAfter = kMaxEraseLag + std::chrono::seconds(3);
constexpr auto kPollPeriod = milliseconds(50);

std::string ExpiringId(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "exp-%05d", i);
  return buf;
}

double MsBetween(SysClock::time_point from, SysClock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// Rows left in the store file (read directly, after the server stopped).
int64_t CountRows(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  int64_t n = -1;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      n = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return n;
}

struct Poll {
  SysClock::time_point sent;
  SysClock::time_point received;  // of the lone user's answer
  int solo_status = 0;
  int64_t member_count = -1;
  double erased = -1;
};

class ConsentExpiryTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ConsentExpiryTest, TenThousandUsersVanishAtConsentUntilAndAreErasedWithinOneSecond) {
  HeraldOptions options;
  ASSERT_TRUE(UseStore(options, GetParam()));
  HeraldProcess server(options);
  ASSERT_TRUE(server.Start()) << server.last_error();
  HttpClient admin = server.AdminClient();
  const TenantKey tenant = CreateTenantWithKey(admin, "Expiry Tenant");
  ASSERT_FALSE(tenant.key.empty());
  HttpClient c = server.Client();
  c.set_bearer(tenant.key);
  HttpClient ops = server.Client();

  // One instant for everyone, whole milliseconds.
  const SysClock::time_point until =
      std::chrono::time_point_cast<milliseconds>(SysClock::now() + kLead);
  const std::string until_text = Rfc3339(until);

  // A user who stays, in the same group.
  ASSERT_EQ(c.Put("/v1/users/keeper", UserBody("Keeper", json::array(), {"all"})).status, 201);

  std::string ndjson;
  ndjson.reserve(kUsers * 120);
  for (int i = 0; i < kUsers; ++i) {
    ndjson += R"({"external_id":")" + ExpiringId(i) + R"(","opt_in":true,"consent_until":")" +
              until_text + R"(","groups":["all"]})" + "\n";
  }
  const auto import_start = SysClock::now();
  auto r = c.Import(ndjson);
  const auto import_end = SysClock::now();
  ASSERT_EQ(r.status, 200) << r.Describe();
  ASSERT_EQ(r.Json()["created"], kUsers) << r.Describe().substr(0, 500);
  ASSERT_EQ(r.Json()["refused"], 0) << r.Describe().substr(0, 500);
  std::cout << "[ info ] imported " << kUsers << " users in " << MsBetween(import_start, import_end)
            << " ms\n";

  // Written last, so that it is among the last the reaper reaches.
  r = c.Put("/v1/users/solo",
            json{{"name", "Solo"}, {"opt_in", true}, {"consent_until", until_text}});
  ASSERT_EQ(r.status, 201) << r.Describe();

  ASSERT_LT(SysClock::now(), until - milliseconds(500))
      << "setup took too long: consent_until is already (nearly) over";
  r = c.Get("/v1/groups/all");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.Json()["member_count"], kUsers + 1);
  for (int i : {0, 1234, kUsers - 1}) {
    EXPECT_EQ(c.Get("/v1/users/" + ExpiringId(i)).status, 200) << ExpiringId(i);
  }
  EXPECT_EQ(c.Get("/v1/users/solo").status, 200);
  const double erased_before =
      MetricValue(ops.Get("/metrics").body, "herald_consent_erased_users_total").value_or(-1);
  ASSERT_EQ(erased_before, 0);

  // From 300 ms before the instant: the lone user every 5 ms; from the instant on, the group and
  // the erasure counter every 50 ms, until everyone is erased (or far too late).
  std::this_thread::sleep_until(until - milliseconds(300));
  std::vector<Poll> polls;
  SysClock::time_point erased_seen{};
  SysClock::time_point last_full{};
  while (SysClock::now() < until + kGiveUpAfter) {
    Poll p;
    p.sent = SysClock::now();
    p.solo_status = c.Get("/v1/users/solo").status;
    p.received = SysClock::now();
    if (p.sent >= until && p.sent - last_full >= kPollPeriod) {
      last_full = p.sent;
      p.member_count = c.Get("/v1/groups/all").Json().value("member_count", int64_t{-1});
      p.erased =
          MetricValue(ops.Get("/metrics").body, "herald_consent_erased_users_total").value_or(-1);
      if (p.erased >= kUsers + 1) {
        erased_seen = SysClock::now();
        polls.push_back(p);
        break;
      }
    }
    polls.push_back(p);
    std::this_thread::sleep_until(p.sent + milliseconds(5));
  }

  // Invisible from the instant on, whatever the reaper has done so far.
  int before_ok = 0;
  for (const auto& p : polls) {
    if (p.sent >= until) {
      EXPECT_EQ(p.solo_status, 404) << "solo answered " << p.solo_status << " "
                                    << MsBetween(until, p.sent) << " ms after consent_until";
      if (p.member_count >= 0) {
        EXPECT_EQ(p.member_count, 1) << MsBetween(until, p.sent) << " ms after consent_until";
      }
    } else if (p.received < until) {  // answered before the instant: still there
      EXPECT_EQ(p.solo_status, 200) << MsBetween(p.received, until) << " ms before consent_until";
      ++before_ok;
    }
  }
  EXPECT_GT(before_ok, 0);

  ASSERT_NE(erased_seen, SysClock::time_point{})
      << "the reaper had not erased every user "
      << std::chrono::duration_cast<std::chrono::seconds>(kGiveUpAfter).count()
      << " s after consent_until";
  const double lag_ms = MsBetween(until, erased_seen);
  const std::string metrics = ops.Get("/metrics").body;
  const double server_lag_sum =
      MetricValue(metrics, "herald_consent_erase_lag_seconds_sum").value_or(-1);
  const double server_lag_count =
      MetricValue(metrics, "herald_consent_erase_lag_seconds_count").value_or(-1);
  // The smallest histogram bound that holds every batch: the server's own worst lag, rounded up.
  std::string server_lag_max = "?";
  for (const char* le : {"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
                         "1", "2.5", "5", "10"}) {
    const std::string sample =
        "herald_consent_erase_lag_seconds_bucket{le=\"" + std::string(le) + "\"} ";
    const size_t at = metrics.find(sample);
    if (at != std::string::npos &&
        std::strtod(metrics.c_str() + at + sample.size(), nullptr) == server_lag_count) {
      server_lag_max = std::string("<= ") + le + " s";
      break;
    }
  }
  std::cout << "[ info ] all " << kUsers + 1 << " users erased; observed " << lag_ms
            << " ms after consent_until (poll period 50 ms); server's erase-lag histogram: "
            << server_lag_count << " batches, sum " << server_lag_sum << " s, max "
            << server_lag_max << "\n";
  RecordProperty("erase_lag_ms", std::to_string(lag_ms));
  EXPECT_LE(lag_ms, (std::chrono::duration<double, std::milli>(kMaxEraseLag).count()));

  // A sample answers 404 and the group holds the keeper only.
  for (int i = 0; i < kUsers; i += 997) {
    EXPECT_TRUE(IsError(c.Get("/v1/users/" + ExpiringId(i)), 404, "user_not_found"))
        << ExpiringId(i);
  }
  r = c.Get("/v1/groups/all/members?limit=1000");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.Json()["users"], json({"keeper"}));
  EXPECT_EQ(c.Get("/v1/users/keeper").status, 200);

  // Erased means gone from the store: rows and memberships (the schemas of src/store/sqlite and
  // src/store/postgres have the same table names).
  ASSERT_EQ(server.Stop(), 0) << server.Stderr();
  for (const char* table : {"users", "memberships"}) {
    const std::string sql = std::string("SELECT COUNT(*) FROM ") + table;
    const int64_t left = GetParam() == "Postgres"
                             ? PgScalar(options.args.back(), sql)
                             : CountRows((server.data_dir() / "herald.db").string(), sql);
    EXPECT_EQ(left, 1) << table;
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, ConsentExpiryTest, ::testing::ValuesIn(Stores()), StoreName);

}  // namespace
}  // namespace herald::e2e

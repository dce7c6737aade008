// The stores an end-to-end suite runs on: "Sqlite" (the default, herald.db in the data
// directory) and "Postgres" (a fresh schema of the process's throwaway PostgreSQL server,
// testing/pg_test_server.h). Suites that matter for the store are parameterised over Stores().
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "support/herald_process.h"

namespace herald::e2e {

inline std::vector<std::string> Stores() { return {"Sqlite", "Postgres"}; }

// Adds `--store URI` for "Postgres" (nothing for "Sqlite"); false (with a test failure) when the
// PostgreSQL test server cannot start.
bool UseStore(HeraldOptions& options, const std::string& store);

// The first column of the first row of `sql` run on the PostgreSQL database `uri`; -1 on error.
int64_t PgScalar(const std::string& uri, const std::string& sql);

inline std::string StoreName(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

}  // namespace herald::e2e

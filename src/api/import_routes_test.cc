#include "api/api_test_fixture.h"

namespace herald::api {
namespace {

class ImportRoutes : public ApiSession {
 protected:
  void SetUp() override {
    ApiSession::SetUp();
    tenant_ = NewTenant();
    key_ = NewKey(tenant_);
  }
  std::string tenant_, key_;
};

TEST_F(ImportRoutes, ImportsGoodLinesAndReportsRefusedOnesByNumber) {
  std::string body;
  for (int i = 0; i < 150; ++i) {
    body += Json{{"external_id", "u" + std::to_string(i)},
                 {"name", "User " + std::to_string(i)},
                 {"opt_in", true},
                 {"devices",
                  {{{"channel", "email"}, {"address", "u" + std::to_string(i) + "@x.io"}},
                   {{"channel", "sms"}, {"address", "+82 10-2222-" + std::to_string(1000 + i)}}}},
                 {"groups", {"imported"}}}
                .dump() +
            "\n";
    if (i == 10) body += "{not json\n";  // line 12
    if (i == 20)
      body += R"({"external_id":"x","opt_in":1})"
              "\r\n";           // line 23
    if (i == 30) body += "\n";  // line 34: blank
  }
  body += R"({"external_id":"u0","opt_in":false})";  // last line, no newline: replaces u0
  auto r = Call("POST", "/v1/users:import", body, key_);
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = Body(r);
  EXPECT_EQ(j["lines"], 153);
  EXPECT_EQ(j["created"], 150);
  EXPECT_EQ(j["replaced"], 1);
  EXPECT_EQ(j["refused"], 2);
  ASSERT_EQ(j["errors"].size(), 2u);
  EXPECT_EQ(j["errors"][0]["line"], 12);
  EXPECT_EQ(j["errors"][0]["code"], "malformed_json");
  EXPECT_EQ(j["errors"][1]["line"], 23);
  EXPECT_EQ(j["errors"][1]["code"], "invalid_type");
  EXPECT_EQ(j["errors"][1]["field"], "opt_in");

  auto u = Body(Call("GET", "/v1/users/u149", {}, key_));
  EXPECT_EQ(u["devices"][1]["address"], "+821022221149");
  EXPECT_EQ(Body(Call("GET", "/v1/users/u0", {}, key_))["opt_in"], false);
  EXPECT_EQ(Body(Call("GET", "/v1/groups/imported", {}, key_))["member_count"], 149)
      << "u0 was replaced without groups";
  EXPECT_EQ(Call("GET", "/v1/users/x", {}, key_).status, 404);
}

TEST_F(ImportRoutes, LaterLinesWinAcrossBatchesAndErrorsComeInLineOrder) {
  // Batches of 64 are parsed and written concurrently; a batch that names users of one in
  // flight must still be written after it.
  std::string body;
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 200; ++i) {
      body += Json{{"external_id", "u" + std::to_string(i)},
                   {"name", round == 0 ? "first" : "second"},
                   {"opt_in", round == 0}}
                  .dump() +
              "\n";
      if (i % 50 == 7) body += "{bad\n";
    }
  }
  auto j = Body(Call("POST", "/v1/users:import", body, key_));
  EXPECT_EQ(j["created"], 200);
  EXPECT_EQ(j["replaced"], 200);
  ASSERT_EQ(j["errors"].size(), 8u);
  for (size_t i = 1; i < 8; ++i) EXPECT_LT(j["errors"][i - 1]["line"], j["errors"][i]["line"]);
  for (int i : {0, 63, 64, 199}) {
    auto u = Body(Call("GET", "/v1/users/u" + std::to_string(i), {}, key_));
    EXPECT_EQ(u["name"], "second") << i;
    EXPECT_EQ(u["opt_in"], false) << i;
    EXPECT_EQ(u["version"], 2) << i;
  }
}

TEST_F(ImportRoutes, ImportNeedsTheWriteScope) {
  const std::string reader = NewKey(tenant_, {"users:read"});
  auto r = Call("POST", "/v1/users:import", R"({"external_id":"a","opt_in":true})", reader);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Call("GET", "/v1/users/a", {}, key_).status, 404);
}

TEST_F(ImportRoutes, OverlongLineIsRefusedAndTheRestGoesOn) {
  std::string body = R"({"external_id":"a","opt_in":true,"name":")" + std::string(70000, 'x') +
                     "\"}\n" + R"({"external_id":"b","opt_in":true})" + "\n";
  auto j = Body(Call("POST", "/v1/users:import", body, key_));
  EXPECT_EQ(j["refused"], 1);
  EXPECT_EQ(j["errors"][0]["line"], 1);
  EXPECT_EQ(j["errors"][0]["code"], "line_too_long");
  EXPECT_EQ(j["created"], 1);
}

}  // namespace
}  // namespace herald::api

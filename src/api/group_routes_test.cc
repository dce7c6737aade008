#include "api/api_test_fixture.h"

namespace herald::api {
namespace {

class GroupRoutes : public ApiSession {
 protected:
  void SetUp() override {
    ApiSession::SetUp();
    tenant_ = NewTenant();
    key_ = NewKey(tenant_);
    for (const char* id : {"a", "b", "c"}) {
      EXPECT_EQ(Call("PUT", std::string("/v1/users/") + id, R"({"opt_in":true})", key_).status,
                201);
    }
  }
  std::string tenant_, key_;
};

TEST_F(GroupRoutes, GroupLifecycleAndMembers) {
  auto r = Call("PUT", "/v1/groups/news", R"({"name":"Newsletter"})", key_);
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(Call("PUT", "/v1/groups/news", R"({"name":"News"})", key_).status, 200);
  EXPECT_EQ(Call("PUT", "/v1/groups/news/members/a", {}, key_).status, 204);
  EXPECT_EQ(Call("PUT", "/v1/groups/news/members/a", {}, key_).status, 204) << "idempotent";
  r = Call("POST", "/v1/groups/news/members", R"({"users":["b","c","ghost"]})", key_);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r)["added"], 2);
  EXPECT_EQ(Body(r)["unknown_users"], Json::array({"ghost"}));
  r = Call("GET", "/v1/groups/news", {}, key_);
  EXPECT_EQ(Body(r)["member_count"], 3);
  EXPECT_EQ(Body(r)["name"], "News");

  r = Call("GET", "/v1/groups/news/members?limit=2", {}, key_);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Body(r)["users"], Json::array({"a", "b"}));
  r = Call("GET",
           "/v1/groups/news/members?limit=2&cursor=" + Body(r)["next_cursor"].get<std::string>(),
           {}, key_);
  EXPECT_EQ(Body(r)["users"], Json::array({"c"}));
  EXPECT_EQ(Body(r)["next_cursor"], "");

  EXPECT_EQ(Call("DELETE", "/v1/groups/news/members/b", {}, key_).status, 204);
  EXPECT_EQ(Body(Call("GET", "/v1/users/b", {}, key_))["groups"], Json::array());
  EXPECT_EQ(Body(Call("GET", "/v1/users/a", {}, key_))["groups"], Json::array({"news"}));
  EXPECT_EQ(Call("DELETE", "/v1/groups/news", {}, key_).status, 204);
  EXPECT_EQ(Call("GET", "/v1/groups/news", {}, key_).status, 404);
  EXPECT_EQ(Body(Call("GET", "/v1/users/a", {}, key_))["groups"], Json::array());
}

TEST_F(GroupRoutes, MembershipOfUnknownUsersOrGroupsIs404) {
  ASSERT_EQ(Call("PUT", "/v1/groups/g", {}, key_).status, 201);
  EXPECT_EQ(Call("PUT", "/v1/groups/g/members/ghost", {}, key_).status, 404);
  EXPECT_EQ(Call("PUT", "/v1/groups/nope/members/a", {}, key_).status, 404);
  EXPECT_EQ(Call("POST", "/v1/groups/nope/members", R"({"users":["a"]})", key_).status, 404);
}

TEST_F(GroupRoutes, BadBulkBodiesAreRefused) {
  ASSERT_EQ(Call("PUT", "/v1/groups/g", {}, key_).status, 201);
  EXPECT_EQ(Code(Call("POST", "/v1/groups/g/members", R"({"users":[]})", key_)), "invalid_users");
  auto r = Call("POST", "/v1/groups/g/members", R"({"users":["a",7]})", key_);
  EXPECT_EQ(Code(r), "invalid_type");
  EXPECT_EQ(Field(r), "users[1]");
  EXPECT_EQ(Body(Call("GET", "/v1/groups/g", {}, key_))["member_count"], 0) << "nothing written";
  EXPECT_EQ(Code(Call("PUT", "/v1/groups/bad%20key", {}, key_)), "invalid_group_key");
}

TEST_F(GroupRoutes, PagingLimitIsChecked) {
  ASSERT_EQ(Call("PUT", "/v1/groups/g", {}, key_).status, 201);
  for (const char* bad : {"0", "1001", "x", "-1"}) {
    auto r = Call("GET", std::string("/v1/groups/g/members?limit=") + bad, {}, key_);
    EXPECT_EQ(r.status, 422) << bad;
    EXPECT_EQ(Code(r), "invalid_limit");
  }
  EXPECT_EQ(Code(Call("GET", "/v1/groups/g/members?cursor=%%%", {}, key_)), "invalid_cursor");
}

}  // namespace
}  // namespace herald::api

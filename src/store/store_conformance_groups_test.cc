// Store conformance: groups and memberships (fixture in store_conformance.h).
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "store/store_conformance.h"

namespace herald::store_test {
namespace {

// ---- groups ----

TEST_P(StoreConformanceTest, GroupsAreCreatedRenamedAndDeleted) {
  Tenant t = NewTenant();
  Tenant other = NewTenant("Other");
  Result<Group> g = store().PutGroup(Group{t.id, "news", "News", 0, 0});
  ASSERT_OK(g);
  EXPECT_EQ(g->name, "News");
  EXPECT_EQ(g->member_count, 0);
  EXPECT_GT(g->created_at, 0);
  Put(MakeUser(t.id, "u1", {}, {"news"}));
  Result<Group> renamed = store().PutGroup(Group{t.id, "news", "Daily news", 0, 0});
  ASSERT_OK(renamed);
  EXPECT_EQ(renamed->name, "Daily news");
  EXPECT_EQ(renamed->created_at, g->created_at);
  EXPECT_EQ(renamed->member_count, 1);

  EXPECT_ERROR(store().GetGroup(other.id, "news"), ErrorKind::kNotFound, "group_not_found");
  EXPECT_ERROR(store().DeleteGroup(other.id, "news"), ErrorKind::kNotFound, "group_not_found");
  EXPECT_ERROR(store().AddMember(other.id, "news", "u1"), ErrorKind::kNotFound, "group_not_found");
  EXPECT_ERROR(store().ListMembers(other.id, "news", {}), ErrorKind::kNotFound, "group_not_found");

  int64_t version = store().GetUser(t.id, "u1")->version;
  ASSERT_OK(store().DeleteGroup(t.id, "news"));
  EXPECT_ERROR(store().GetGroup(t.id, "news"), ErrorKind::kNotFound, "group_not_found");
  EXPECT_ERROR(store().DeleteGroup(t.id, "news"), ErrorKind::kNotFound, "group_not_found");
  Result<User> u = store().GetUser(t.id, "u1");
  ASSERT_OK(u);
  EXPECT_TRUE(u->groups.empty());
  EXPECT_GT(u->version, version);
}

TEST_P(StoreConformanceTest, MembershipsAddRemoveAndBulkAdd) {
  Tenant t = NewTenant();
  ASSERT_OK(store().PutGroup(Group{t.id, "g", "", 0, 0}));
  Put(MakeUser(t.id, "u1"));
  Put(MakeUser(t.id, "u2"));
  EXPECT_ERROR(store().AddMember(t.id, "nope", "u1"), ErrorKind::kNotFound, "group_not_found");
  EXPECT_ERROR(store().AddMember(t.id, "g", "nobody"), ErrorKind::kNotFound, "user_not_found");
  EXPECT_ERROR(store().RemoveMember(t.id, "nope", "u1"), ErrorKind::kNotFound, "group_not_found");
  EXPECT_ERROR(store().AddMembers(t.id, "nope", {"u1"}), ErrorKind::kNotFound, "group_not_found");

  ASSERT_OK(store().AddMember(t.id, "g", "u1"));
  ASSERT_OK(store().AddMember(t.id, "g", "u1"));  // already a member: fine
  Result<User> u1 = store().GetUser(t.id, "u1");
  ASSERT_OK(u1);
  EXPECT_EQ(u1->groups, std::vector<std::string>{"g"});
  EXPECT_EQ(u1->version, 2);  // bumped once

  Result<std::vector<std::string>> missing =
      store().AddMembers(t.id, "g", {"u1", "ghost", "u2", "phantom"});
  ASSERT_OK(missing);
  EXPECT_EQ(*missing, (std::vector<std::string>{"ghost", "phantom"}));
  EXPECT_EQ(store().GetGroup(t.id, "g")->member_count, 2);

  ASSERT_OK(store().RemoveMember(t.id, "g", "u1"));
  ASSERT_OK(store().RemoveMember(t.id, "g", "u1"));  // not a member: fine
  EXPECT_TRUE(store().GetUser(t.id, "u1")->groups.empty());
  EXPECT_EQ(store().GetGroup(t.id, "g")->member_count, 1);
}

TEST_P(StoreConformanceTest, ListMembersPagesInExternalIdOrder) {
  Tenant t = NewTenant();
  std::vector<std::string> ids;
  std::vector<User> users;
  for (int i = 0; i < 25; ++i) {
    std::string id = "m" + std::to_string(1000 - i * 7);
    ids.push_back(id);
    users.push_back(MakeUser(t.id, id, {}, {"g"}));
  }
  users.push_back(MakeUser(t.id, "not-a-member"));
  ASSERT_OK(store().PutUsers(t.id, users));
  std::sort(ids.begin(), ids.end());

  std::vector<std::string> seen;
  PageRequest page{"", 10};
  int pages = 0;
  do {
    Result<Page<std::string>> r = store().ListMembers(t.id, "g", page);
    ASSERT_OK(r);
    seen.insert(seen.end(), r->items.begin(), r->items.end());
    page.cursor = r->next_cursor;
    ++pages;
  } while (!page.cursor.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, ids);

  EXPECT_ERROR(store().ListMembers(t.id, "g", PageRequest{"garbage!", 10}), ErrorKind::kInvalid,
               "invalid_cursor");
  // A cursor of another listing is not a members cursor.
  NewTenant("Second");
  Result<Page<Tenant>> tenants = store().ListTenants(PageRequest{"", 1});
  ASSERT_OK(tenants);
  ASSERT_FALSE(tenants->next_cursor.empty());
  EXPECT_ERROR(store().ListMembers(t.id, "g", PageRequest{tenants->next_cursor, 10}),
               ErrorKind::kInvalid, "invalid_cursor");
}

}  // namespace
}  // namespace herald::store_test

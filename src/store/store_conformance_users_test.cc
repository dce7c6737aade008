// Store conformance: users, devices and bulk import (fixture in store_conformance.h).
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "store/store_conformance.h"

namespace herald::store_test {
namespace {

// ---- users ----

TEST_P(StoreConformanceTest, PutUserCreatesThenReplaces) {
  Tenant t = NewTenant();
  User u = MakeUser(t.id, "u1", {Dev(Channel::kEmail, "ada@example.com")}, {"b", "a", "a"});
  PutUserOutcome first = Put(u);
  EXPECT_TRUE(first.created);
  EXPECT_EQ(first.user.version, 1);
  EXPECT_EQ(first.user.groups, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(first.user.devices.size(), 1u);
  EXPECT_EQ(first.user.devices[0].id.rfind("dev_", 0), 0u);

  Result<User> got = store().GetUser(t.id, "u1");
  ASSERT_OK(got);
  EXPECT_EQ(got->name, u.name);
  EXPECT_EQ(got->opt_in, true);
  EXPECT_EQ(got->consent_from, u.consent_from);
  EXPECT_EQ(got->consent_until, u.consent_until);
  EXPECT_EQ(got->version, 1);
  EXPECT_EQ(got->groups, first.user.groups);
  ASSERT_EQ(got->devices.size(), 1u);
  EXPECT_EQ(got->devices[0].id, first.user.devices[0].id);
  EXPECT_EQ(got->devices[0].address, "ada@example.com");
  EXPECT_EQ(got->devices[0].channel, Channel::kEmail);

  u.name = "Renamed";
  u.opt_in = false;
  PutUserOutcome second = Put(u);
  EXPECT_FALSE(second.created);
  EXPECT_EQ(second.user.version, 2);
  EXPECT_EQ(second.user.created_at, first.user.created_at);
  got = store().GetUser(t.id, "u1");
  ASSERT_OK(got);
  EXPECT_EQ(got->name, "Renamed");
  EXPECT_FALSE(got->opt_in);
  EXPECT_EQ(got->version, 2);
}

TEST_P(StoreConformanceTest, PutUserResultMatchesGetUser) {
  Tenant t = NewTenant();
  User u = MakeUser(t.id, "u1",
                    {Dev(Channel::kIos, IosToken(1)), Dev(Channel::kSms, "+14155550100"),
                     Dev(Channel::kAndroid, "fcm:token-1")},
                    {"g1"});
  PutUserOutcome out = Put(u);
  u.devices = {Dev(Channel::kAndroid, "fcm:token-2"), Dev(Channel::kIos, IosToken(1))};
  out = Put(u);
  Result<User> got = store().GetUser(t.id, "u1");
  ASSERT_OK(got);
  ASSERT_EQ(got->devices.size(), out.user.devices.size());
  for (size_t i = 0; i < got->devices.size(); ++i) {
    EXPECT_EQ(got->devices[i].id, out.user.devices[i].id);
    EXPECT_EQ(got->devices[i].address, out.user.devices[i].address);
    EXPECT_EQ(got->devices[i].channel, out.user.devices[i].channel);
    EXPECT_EQ(got->devices[i].created_at, out.user.devices[i].created_at);
  }
  EXPECT_EQ(got->version, out.user.version);
  EXPECT_EQ(got->created_at, out.user.created_at);
  EXPECT_EQ(got->updated_at, out.user.updated_at);
}

TEST_P(StoreConformanceTest, DeviceKeepsItsIdWhenPutRepeatsItsAddress) {
  Tenant t = NewTenant();
  User u = MakeUser(t.id, "u1",
                    {Dev(Channel::kEmail, "a@example.com"), Dev(Channel::kIos, IosToken(2))});
  PutUserOutcome first = Put(u);
  ASSERT_EQ(first.user.devices.size(), 2u);
  std::string ios_id = first.user.devices[1].id;
  std::string email_id = first.user.devices[0].id;

  // Same token on another channel is another device; a dropped device is gone.
  u.devices = {Dev(Channel::kIos, IosToken(2)), Dev(Channel::kSms, "+14155550101")};
  Put(u);
  Result<User> got = store().GetUser(t.id, "u1");
  ASSERT_OK(got);
  ASSERT_EQ(got->devices.size(), 2u);
  std::set<std::string> ids;
  for (const Device& d : got->devices) {
    ids.insert(d.id);
    if (d.channel == Channel::kIos) {
      EXPECT_EQ(d.id, ios_id);
    } else {
      EXPECT_NE(d.id, ios_id);
    }
  }
  EXPECT_EQ(ids.count(email_id), 0u);
  EXPECT_EQ(ids.size(), 2u);

  // The same address for another user gets its own id.
  User other = MakeUser(t.id, "u2", {Dev(Channel::kIos, IosToken(2))});
  EXPECT_NE(Put(other).user.devices[0].id, ios_id);
}

TEST_P(StoreConformanceTest, PutUserReplacesGroupsAndCreatesMissingOnes) {
  Tenant t = NewTenant();
  Put(MakeUser(t.id, "u1", {}, {"news", "vip"}));
  Result<Group> news = store().GetGroup(t.id, "news");
  ASSERT_OK(news);
  EXPECT_EQ(news->member_count, 1);
  Put(MakeUser(t.id, "u1", {}, {"vip", "weekly"}));
  EXPECT_EQ(store().GetGroup(t.id, "news")->member_count, 0);
  EXPECT_EQ(store().GetGroup(t.id, "weekly")->member_count, 1);
  EXPECT_EQ(store().GetUser(t.id, "u1")->groups, (std::vector<std::string>{"vip", "weekly"}));
}

TEST_P(StoreConformanceTest, VersionConflictChangesNothing) {
  Tenant t = NewTenant();
  User u = MakeUser(t.id, "u1", {Dev(Channel::kEmail, "a@example.com")});
  EXPECT_ERROR(store().PutUser(u, 3), ErrorKind::kConflict, "version_conflict");
  EXPECT_ERROR(store().GetUser(t.id, "u1"), ErrorKind::kNotFound, "user_not_found");
  ASSERT_OK(store().PutUser(u, 0));  // 0 = must not exist
  EXPECT_ERROR(store().PutUser(u, 0), ErrorKind::kConflict, "version_conflict");

  User changed = u;
  changed.name = "Changed";
  changed.devices = {Dev(Channel::kSms, "+14155550102")};
  changed.groups = {"never-created"};
  EXPECT_ERROR(store().PutUser(changed, 7), ErrorKind::kConflict, "version_conflict");
  Result<User> got = store().GetUser(t.id, "u1");
  ASSERT_OK(got);
  EXPECT_EQ(got->name, u.name);
  EXPECT_EQ(got->version, 1);
  ASSERT_EQ(got->devices.size(), 1u);
  EXPECT_EQ(got->devices[0].address, "a@example.com");
  EXPECT_ERROR(store().GetGroup(t.id, "never-created"), ErrorKind::kNotFound, "group_not_found");

  Result<PutUserOutcome> ok = store().PutUser(changed, 1);
  ASSERT_OK(ok);
  EXPECT_EQ(ok->user.version, 2);
}

TEST_P(StoreConformanceTest, RefusedPutUserWritesNothing) {
  Tenant t = NewTenant();
  User u = MakeUser(t.id, "u1", {Dev(Channel::kEmail, "a@example.com")}, {"keep"});
  Put(u);

  User too_many = u;
  too_many.devices.clear();
  for (int i = 0; i < 17; ++i) too_many.devices.push_back(Dev(Channel::kIos, IosToken(100 + i)));
  too_many.groups = {"fresh"};
  EXPECT_ERROR(store().PutUser(too_many), ErrorKind::kInvalid, "too_many_devices");

  User duplicate = u;
  duplicate.devices = {Dev(Channel::kSms, "+14155550103"), Dev(Channel::kSms, "+14155550103")};
  EXPECT_ERROR(store().PutUser(duplicate), ErrorKind::kInvalid, "duplicate_device");

  User expired = u;
  expired.consent_until = NowMillis() - 1000;
  expired.consent_from = expired.consent_until - kDay;
  EXPECT_ERROR(store().PutUser(expired), ErrorKind::kInvalid, "consent_expired");

  Result<User> got = store().GetUser(t.id, "u1");
  ASSERT_OK(got);
  EXPECT_EQ(got->version, 1);
  EXPECT_EQ(got->devices.size(), 1u);
  EXPECT_EQ(got->groups, (std::vector<std::string>{"keep"}));
  EXPECT_ERROR(store().GetGroup(t.id, "fresh"), ErrorKind::kNotFound, "group_not_found");
}

TEST_P(StoreConformanceTest, UsersAreTenantScoped) {
  Tenant a = NewTenant("A");
  Tenant b = NewTenant("B");
  PutUserOutcome ua = Put(MakeUser(a.id, "same", {Dev(Channel::kEmail, "a@example.com")}, {"g"}));
  std::string device_id = ua.user.devices[0].id;
  ASSERT_OK(store().PutGroup(Group{b.id, "g", "", 0, 0}));

  EXPECT_ERROR(store().GetUser(b.id, "same"), ErrorKind::kNotFound, "user_not_found");
  EXPECT_ERROR(store().DeleteUser(b.id, "same"), ErrorKind::kNotFound, "user_not_found");
  EXPECT_ERROR(store().AddDevice(b.id, "same", Dev(Channel::kSms, "+14155550104")),
               ErrorKind::kNotFound, "user_not_found");
  EXPECT_ERROR(store().RemoveDevice(b.id, "same", device_id), ErrorKind::kNotFound,
               "user_not_found");
  EXPECT_ERROR(store().AddMember(b.id, "g", "same"), ErrorKind::kNotFound, "user_not_found");
  EXPECT_ERROR(store().RemoveMember(b.id, "g", "same"), ErrorKind::kNotFound, "user_not_found");
  Result<std::vector<std::string>> missing = store().AddMembers(b.id, "g", {"same"});
  ASSERT_OK(missing);
  EXPECT_EQ(*missing, std::vector<std::string>{"same"});

  // The same external id in tenant B is a different user.
  PutUserOutcome ub = Put(MakeUser(b.id, "same", {Dev(Channel::kEmail, "a@example.com")}));
  EXPECT_TRUE(ub.created);
  EXPECT_NE(ub.user.devices[0].id, device_id);
  EXPECT_ERROR(store().RemoveDevice(b.id, "same", device_id), ErrorKind::kNotFound,
               "device_not_found");
  ASSERT_OK(store().DeleteUser(b.id, "same"));

  Result<User> still = store().GetUser(a.id, "same");
  ASSERT_OK(still);
  EXPECT_EQ(still->version, 1);
  EXPECT_EQ(still->devices.size(), 1u);
  EXPECT_EQ(store().GetGroup(a.id, "g")->member_count, 1);
  EXPECT_EQ(store().GetGroup(b.id, "g")->member_count, 0);
}

TEST_P(StoreConformanceTest, DeleteUserErasesDevicesAndMemberships) {
  Tenant t = NewTenant();
  Put(MakeUser(t.id, "u1", {Dev(Channel::kEmail, "a@example.com")}, {"g"}));
  ASSERT_EQ(store().GetGroup(t.id, "g")->member_count, 1);
  ASSERT_OK(store().DeleteUser(t.id, "u1"));
  EXPECT_ERROR(store().GetUser(t.id, "u1"), ErrorKind::kNotFound, "user_not_found");
  EXPECT_ERROR(store().DeleteUser(t.id, "u1"), ErrorKind::kNotFound, "user_not_found");
  EXPECT_EQ(store().GetGroup(t.id, "g")->member_count, 0);
  // Recreated, the user starts over: new version, no memberships, new device ids.
  PutUserOutcome again = Put(MakeUser(t.id, "u1", {Dev(Channel::kEmail, "a@example.com")}));
  EXPECT_TRUE(again.created);
  EXPECT_EQ(again.user.version, 1);
  EXPECT_TRUE(store().GetUser(t.id, "u1")->groups.empty());
}

TEST_P(StoreConformanceTest, AddAndRemoveDevice) {
  Tenant t = NewTenant();
  Put(MakeUser(t.id, "u1", {Dev(Channel::kEmail, "a@example.com")}));
  Result<Device> added = store().AddDevice(t.id, "u1", Dev(Channel::kSms, "+14155550105"));
  ASSERT_OK(added);
  EXPECT_EQ(added->id.rfind("dev_", 0), 0u);
  EXPECT_EQ(added->address, "+14155550105");
  EXPECT_GT(added->created_at, 0);
  Result<User> got = store().GetUser(t.id, "u1");
  ASSERT_OK(got);
  EXPECT_EQ(got->version, 2);
  ASSERT_EQ(got->devices.size(), 2u);
  EXPECT_EQ(got->devices[1].id, added->id);

  EXPECT_ERROR(store().AddDevice(t.id, "u1", Dev(Channel::kSms, "+14155550105")),
               ErrorKind::kConflict, "duplicate_device");
  EXPECT_ERROR(store().AddDevice(t.id, "nobody", Dev(Channel::kSms, "+14155550105")),
               ErrorKind::kNotFound, "user_not_found");
  EXPECT_EQ(store().GetUser(t.id, "u1")->version, 2);

  ASSERT_OK(store().RemoveDevice(t.id, "u1", added->id));
  EXPECT_ERROR(store().RemoveDevice(t.id, "u1", added->id), ErrorKind::kNotFound,
               "device_not_found");
  got = store().GetUser(t.id, "u1");
  ASSERT_OK(got);
  EXPECT_EQ(got->devices.size(), 1u);
  EXPECT_EQ(got->version, 3);
}

TEST_P(StoreConformanceTest, AtMostSixteenDevices) {
  Tenant t = NewTenant();
  User u = MakeUser(t.id, "u1");
  for (int i = 0; i < 15; ++i) u.devices.push_back(Dev(Channel::kIos, IosToken(i)));
  Put(u);
  ASSERT_OK(store().AddDevice(t.id, "u1", Dev(Channel::kIos, IosToken(15))));
  EXPECT_ERROR(store().AddDevice(t.id, "u1", Dev(Channel::kIos, IosToken(16))), ErrorKind::kInvalid,
               "too_many_devices");
  EXPECT_EQ(store().GetUser(t.id, "u1")->devices.size(), 16u);
}

TEST_P(StoreConformanceTest, PutUsersCommitsGoodLinesAndReportsBadOnes) {
  Tenant t = NewTenant();
  Tenant other = NewTenant("Other");
  Put(MakeUser(t.id, "existing", {Dev(Channel::kEmail, "old@example.com")}));

  std::vector<User> users;
  users.push_back(MakeUser(t.id, "good1", {Dev(Channel::kEmail, "g1@example.com")}, {"imp"}));
  User too_many = MakeUser(t.id, "bad-many", {}, {"bad-group"});
  for (int i = 0; i < 17; ++i) too_many.devices.push_back(Dev(Channel::kIos, IosToken(i)));
  users.push_back(too_many);
  users.push_back(MakeUser(t.id, "good2", {Dev(Channel::kSms, "+14155550106")}, {"imp"}));
  User expired = MakeUser(t.id, "bad-expired");
  expired.consent_until = NowMillis() - 1;
  expired.consent_from = expired.consent_until - kDay;
  users.push_back(expired);
  users.push_back(
      MakeUser(t.id, "bad-dup",
               {Dev(Channel::kEmail, "d@example.com"), Dev(Channel::kEmail, "d@example.com")}));
  users.push_back(MakeUser(other.id, "bad-tenant"));
  users.push_back(MakeUser(t.id, "existing", {Dev(Channel::kEmail, "new@example.com")}));
  users.push_back(MakeUser("", "good3"));  // tenant taken from the call

  Result<std::vector<ImportLineResult>> r = store().PutUsers(t.id, users);
  ASSERT_OK(r);
  ASSERT_EQ(r->size(), users.size());
  const std::vector<bool> ok = {true, false, true, false, false, false, true, true};
  const std::vector<bool> created = {true, false, true, false, false, false, false, true};
  for (size_t i = 0; i < users.size(); ++i) {
    EXPECT_EQ((*r)[i].ok, ok[i]) << i << " " << (*r)[i].error.code;
    EXPECT_EQ((*r)[i].created, created[i]) << i;
  }
  EXPECT_EQ((*r)[1].error.code, "too_many_devices");
  EXPECT_EQ((*r)[3].error.code, "consent_expired");
  EXPECT_EQ((*r)[4].error.code, "duplicate_device");
  EXPECT_EQ((*r)[4].error.kind, ErrorKind::kInvalid);
  EXPECT_FALSE((*r)[5].error.code.empty());

  for (const char* id : {"good1", "good2", "good3", "existing"}) {
    EXPECT_TRUE(store().GetUser(t.id, id).ok()) << id;
  }
  for (const char* id : {"bad-many", "bad-expired", "bad-dup", "bad-tenant"}) {
    EXPECT_ERROR(store().GetUser(t.id, id), ErrorKind::kNotFound, "user_not_found");
  }
  EXPECT_ERROR(store().GetUser(other.id, "bad-tenant"), ErrorKind::kNotFound, "user_not_found");
  EXPECT_ERROR(store().GetGroup(t.id, "bad-group"), ErrorKind::kNotFound, "group_not_found");
  EXPECT_EQ(store().GetGroup(t.id, "imp")->member_count, 2);
  Result<User> existing = store().GetUser(t.id, "existing");
  ASSERT_OK(existing);
  EXPECT_EQ(existing->version, 2);
  ASSERT_EQ(existing->devices.size(), 1u);
  EXPECT_EQ(existing->devices[0].address, "new@example.com");
}

TEST_P(StoreConformanceTest, PutUsersAppliesRepeatedUsersInOrder) {
  Tenant t = NewTenant();
  std::vector<User> users = {MakeUser(t.id, "u", {Dev(Channel::kEmail, "first@example.com")}),
                             MakeUser(t.id, "u", {Dev(Channel::kEmail, "second@example.com")})};
  users[1].name = "Second";
  Result<std::vector<ImportLineResult>> r = store().PutUsers(t.id, users);
  ASSERT_OK(r);
  ASSERT_EQ(r->size(), 2u);
  EXPECT_TRUE((*r)[0].ok && (*r)[0].created);
  EXPECT_TRUE((*r)[1].ok && !(*r)[1].created);
  Result<User> got = store().GetUser(t.id, "u");
  ASSERT_OK(got);
  EXPECT_EQ(got->name, "Second");
  EXPECT_EQ(got->version, 2);
  ASSERT_EQ(got->devices.size(), 1u);
  EXPECT_EQ(got->devices[0].address, "second@example.com");
}

}  // namespace
}  // namespace herald::store_test

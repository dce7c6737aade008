// No plaintext PII at rest (DESIGN §4.5): names and device addresses registered through the API
// and through an NDJSON import read back fine, yet no byte sequence of them — in any letter
// case — is in any file of the data directory (while running and after a graceful stop), nor in
// the logs; the same holds for provider credentials and API keys (stored hashed). The keys
// persist across a restart, and the secret files are private (mode 0600).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/api_helpers.h"
#include "support/herald_process.h"

namespace herald::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Person {
  std::string id, name, email, phone_input, phone_e164, apns, fcm;
};

// Distinctive values, unlikely to occur by chance in any file.
const Person kViaPut{"pii-put",
                     "Zebulon Quixotewright",
                     "zebulon.quixotewright@pii-herald.example",
                     "+82 10-9876-5432",
                     "+821098765432",
                     "7A3F9C1DE5B7264810FACEB00CC0FFEE7A3F9C1DE5B7264810FACEB00CC0FFEE",
                     "fcmZebulonQuixotewright:APA91b_Xq7-PIIsecret.token"};
const Person kViaImport{"pii-import",
                        "Philippa Marchbanks-Oyelaran",
                        "philippa.marchbanks@oyelaran-pii.example",
                        "+82 10-4444-6868",
                        "+821044446868",
                        "B16B00B5DEADBEEF0123456789ABCDEFB16B00B5DEADBEEF0123456789ABCDEF",
                        "fcmPhilippaMarchbanks:APA91b_Zz9-ImportSecret.token"};

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string Base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(v >> s) & 63]);
  }
  return out;  // the full groups are enough to find an encoded copy
}

std::string Hex(std::string_view in) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : in) {
    out.push_back(kHex[uint8_t(c) >> 4]);
    out.push_back(kHex[uint8_t(c) & 15]);
  }
  return out;
}

// Every form in which a person's data could leak, case-folded (files are case-folded too).
std::vector<std::string> Needles(const Person& p) {
  std::vector<std::string> out;
  auto add = [&out](const std::string& s) { out.push_back(Lower(s)); };
  add(p.name);
  std::istringstream words(p.name);
  for (std::string w; words >> w;) add(w);  // each part of the name alone
  add(p.email);
  add(p.email.substr(0, p.email.find('@')));   // the local part alone
  add(p.email.substr(p.email.find('@') + 1));  // the domain alone
  add(p.phone_input);
  add(p.phone_e164);
  add(p.phone_e164.substr(1));  // without '+'
  add(p.phone_e164.substr(3));  // the national number
  add(p.apns);
  add(p.apns.substr(0, 32));
  add(p.apns.substr(32));
  add(p.fcm);
  add(p.fcm.substr(0, p.fcm.find(':')));
  add(p.fcm.substr(p.fcm.find(':') + 1));
  // Trivially encoded copies.
  add(Base64(p.name));
  add(Base64(p.email));
  add(Hex(p.name));
  add(Hex(p.email));
  return out;
}

json DevicesOf(const Person& p) {
  return json::array({{{"channel", "email"}, {"address", p.email}},
                      {{"channel", "sms"}, {"address", p.phone_input}},
                      {{"channel", "ios"}, {"address", p.apns}},
                      {{"channel", "android"}, {"address", p.fcm}}});
}

void ExpectStored(HttpClient& c, const Person& p) {
  const auto r = c.Get("/v1/users/" + p.id);
  ASSERT_EQ(r.status, 200) << r.Describe();
  const auto j = r.Json();
  EXPECT_EQ(j["name"], p.name);
  ASSERT_EQ(j["devices"].size(), 4u) << r.Describe();
  std::vector<std::string> addresses;
  for (const auto& d : j["devices"]) addresses.push_back(d["address"]);
  EXPECT_EQ(addresses, (std::vector<std::string>{p.email, p.phone_e164, Lower(p.apns), p.fcm}));
}

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Files under `dir` whose case-folded bytes contain a needle: "file: needle" lines.
std::vector<std::string> Leaks(const fs::path& dir, const std::vector<std::string>& needles,
                               size_t* files, size_t* bytes) {
  std::vector<std::string> leaks;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string content = Lower(ReadAll(entry.path()));
    ++*files;
    *bytes += content.size();
    for (const auto& n : needles) {
      if (content.find(n) != std::string::npos) leaks.push_back(entry.path().string() + ": " + n);
    }
  }
  return leaks;
}

// The simulator URL `herald serve --with-sim` printed ("provider simulator: http://...").
std::string SimUrl(const std::string& stderr_text) {
  const std::string marker = "provider simulator: ";
  const size_t at = stderr_text.find(marker);
  if (at == std::string::npos) return "";
  const size_t start = at + marker.size();
  return stderr_text.substr(start, stderr_text.find(' ', start) - start);
}

TEST(PiiAtRestTest, NoPersonalDataInAnyDataFileOrLogAndItSurvivesARestart) {
  HeraldOptions options;
  options.args = {"--with-sim", "--with-sim-listen", "127.0.0.1:0", "--with-sim-smtp-listen",
                  "127.0.0.1:0"};
  HeraldProcess server(options);
  ASSERT_TRUE(server.Start()) << server.last_error();
  HttpClient admin = server.AdminClient();
  const TenantKey tenant = CreateTenantWithKey(admin, "PII Tenant");
  ASSERT_FALSE(tenant.key.empty());
  HttpClient c = server.Client();
  c.set_bearer(tenant.key);

  auto r =
      c.Put("/v1/users/" + kViaPut.id, UserBody(kViaPut.name, DevicesOf(kViaPut), {"pii-group"}));
  ASSERT_EQ(r.status, 201) << r.Describe();
  // PATCH and add/remove a device too, so that older versions of the rows exist.
  r = c.Patch("/v1/users/" + kViaPut.id, {{"opt_in", false}});
  ASSERT_EQ(r.status, 200) << r.Describe();
  r = c.Post("/v1/users/" + kViaPut.id + "/devices",
             {{"channel", "email"}, {"address", "second." + kViaPut.email}});
  ASSERT_EQ(r.status, 201) << r.Describe();
  ASSERT_EQ(
      c.Delete("/v1/users/" + kViaPut.id + "/devices/" + r.Json()["id"].get<std::string>()).status,
      204);

  json line = UserBody(kViaImport.name, DevicesOf(kViaImport), {"pii-group"});
  line["external_id"] = kViaImport.id;
  r = c.Import(line.dump() + "\n");
  ASSERT_EQ(r.status, 200) << r.Describe();
  ASSERT_EQ(r.Json()["created"], 1) << r.Describe();

  ExpectStored(c, kViaPut);
  ExpectStored(c, kViaImport);

  // A send to both: its text is sealed like PII, and the provider's refusal of the e-mail
  // address — which echoes the address, as SMTP servers do — is recorded without it.
  const std::string sim = SimUrl(server.Stderr());
  ASSERT_FALSE(sim.empty()) << server.Stderr();
  HttpClient sim_client("127.0.0.1",
                        static_cast<uint16_t>(std::stoi(sim.substr(sim.rfind(':') + 1))));
  ASSERT_EQ(sim_client.Put("/sim/faults/smtp", {{"invalid_addresses", {kViaImport.email}}}).status,
            200);
  const std::string text = "Quixotewright-secret-offer-7c1e9";
  r = c.Post("/v1/notifications",
             {{"to", {{"groups", {"pii-group"}}}}, {"title", "Hello"}, {"body", text}});
  ASSERT_EQ(r.status, 202) << r.Describe();
  const std::string ntf = r.Json()["id"];
  json n;
  for (int i = 0; i < 200; ++i) {
    n = c.Get("/v1/notifications/" + ntf).Json();
    if (n.value("status", "") == "completed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_EQ(n.value("status", ""), "completed") << n.dump();
  EXPECT_EQ(n["counts"]["sent"], 3) << n.dump();        // kViaImport's sms, ios, android
  EXPECT_EQ(n["counts"]["failed"], 1) << n.dump();      // kViaImport's e-mail, refused
  EXPECT_EQ(n["counts"]["suppressed"], 4) << n.dump();  // kViaPut opted out

  // Provider credentials are stored encrypted too, and never shown again.
  const std::string provider_secret = "SG.ZebulonProviderSecret-4f9a2c81";
  r = admin.Put(
      "/v1/tenants/" + tenant.tenant_id + "/providers/email",
      {{"providers",
        {{{"name", "sendgrid"}, {"api_key", provider_secret}, {"from", "noreply@example.com"}}}}});
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.body.find(provider_secret), std::string::npos) << r.body;
  r = admin.Get("/v1/tenants/" + tenant.tenant_id + "/providers/email");
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.Json()["providers"][0]["name"], "sendgrid");
  EXPECT_EQ(r.body.find(provider_secret), std::string::npos) << r.body;

  std::vector<std::string> needles = Needles(kViaPut);
  for (auto& n : Needles(kViaImport)) needles.push_back(n);
  needles.push_back(Lower(provider_secret));
  needles.push_back(Lower(text));
  // API keys are stored hashed: neither the key nor its secret part is at rest.
  needles.push_back(Lower(tenant.key));
  needles.push_back(Lower(tenant.key.substr(tenant.key.size() - 43)));
  size_t files = 0;
  size_t bytes = 0;
  // While running (the write-ahead log holds the latest pages)...
  auto leaks = Leaks(server.data_dir(), needles, &files, &bytes);
  EXPECT_TRUE(leaks.empty()) << "plaintext PII at rest while running:\n"
                             << testing::PrintToString(leaks);
  std::cout << "[ info ] while running: scanned " << files << " files, " << bytes << " bytes\n";
  EXPECT_EQ(server.Stop(), 0) << server.Stderr();

  // ...and after a graceful stop.
  files = 0;
  bytes = 0;
  leaks = Leaks(server.data_dir(), needles, &files, &bytes);
  EXPECT_TRUE(leaks.empty()) << "plaintext PII at rest:\n" << testing::PrintToString(leaks);
  // Positive control: the scan does see what the store keeps in plaintext by design (external
  // ids, the tenant's own identifiers), so an empty result above means something.
  size_t control_files = 0;
  size_t control_bytes = 0;
  EXPECT_FALSE(
      Leaks(server.data_dir(), {kViaPut.id, kViaImport.id}, &control_files, &control_bytes).empty())
      << "the scan found not even the external ids: it reads nothing";
  EXPECT_GE(files, 3u);  // herald.db, admin_token, master_key at least
  EXPECT_GT(bytes, 4096u);
  std::cout << "[ info ] after stop: scanned " << files << " files, " << bytes << " bytes of "
            << server.data_dir() << " for " << needles.size() << " needles\n";
  // The logs carry ids, never personal data.
  const std::string log = Lower(server.AllStderr());
  EXPECT_FALSE(log.empty());
  for (const auto& n : needles) EXPECT_EQ(log.find(n), std::string::npos) << "log leaks " << n;
  EXPECT_EQ(log.find(Lower(server.AdminToken())), std::string::npos) << "log leaks the admin token";

  // The secret files are private.
  for (const char* name : {"admin_token", "master_key"}) {
    struct stat st {};
    ASSERT_EQ(::stat((server.data_dir() / name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_mode & 07777, 0600u)
        << name << " has mode " << std::oct << (st.st_mode & 07777);
  }

  // The keys persisted: after a restart the data decrypts again.
  ASSERT_TRUE(server.Start()) << server.last_error();
  HttpClient again = server.Client();
  again.set_bearer(tenant.key);
  ExpectStored(again, kViaPut);
  ExpectStored(again, kViaImport);
  EXPECT_EQ(again.Get("/v1/groups/pii-group").Json()["member_count"], 2);
  EXPECT_EQ(server.Stop(), 0) << server.Stderr();
}

}  // namespace
}  // namespace herald::e2e

#include "support/api_helpers.h"

#include <cstdio>
#include <ctime>
#include <sstream>

namespace herald::e2e {

TenantKey CreateTenantWithKey(HttpClient& admin, const std::string& name,
                              const std::vector<std::string>& scopes) {
  const HttpResponse t = admin.Post(
      "/v1/tenants",
      {{"name", name}, {"delivery_deadline_minutes", 15}, {"default_consent_days", 365}});
  if (t.status != 201) {
    ADD_FAILURE() << "creating tenant " << name << ": " << t.Describe();
    return {};
  }
  return CreateKey(admin, t.Json().value("id", ""), name + "-key", scopes);
}

TenantKey CreateKey(HttpClient& admin, const std::string& tenant_id, const std::string& name,
                    const std::vector<std::string>& scopes) {
  const HttpResponse k =
      admin.Post("/v1/tenants/" + tenant_id + "/keys", {{"name", name}, {"scopes", scopes}});
  if (k.status != 201) {
    ADD_FAILURE() << "creating a key for tenant " << tenant_id << ": " << k.Describe();
    return {tenant_id, "", ""};
  }
  const auto j = k.Json();
  return {tenant_id, j.value("id", ""), j.value("key", "")};
}

::testing::AssertionResult IsError(const HttpResponse& r, int status, const std::string& code,
                                   const std::optional<std::string>& field) {
  if (r.status != status) {
    return ::testing::AssertionFailure()
           << "expected status " << status << " (" << code << "), got " << r.Describe();
  }
  const auto j = r.Json();
  if (!j.is_object() || !j.contains("error") || !j["error"].is_object()) {
    return ::testing::AssertionFailure() << "not a JSON error body: " << r.Describe();
  }
  const auto& e = j["error"];
  if (e.value("code", "") != code) {
    return ::testing::AssertionFailure()
           << "expected error code " << code << ", got " << r.Describe();
  }
  if (!e.contains("message") || !e["message"].is_string() ||
      e["message"].get<std::string>().empty()) {
    return ::testing::AssertionFailure() << "error without a message: " << r.Describe();
  }
  if (field && e.value("field", "") != *field) {
    return ::testing::AssertionFailure()
           << "expected error field \"" << *field << "\", got " << r.Describe();
  }
  return ::testing::AssertionSuccess();
}

double MetricSum(const std::string& exposition, const std::string& name, const std::string& label) {
  double sum = 0;
  std::istringstream lines(exposition);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(name + "{", 0) != 0 && line.rfind(name + " ", 0) != 0) continue;
    const size_t end = line.rfind(' ');
    if (!label.empty() && line.substr(0, end).find(label) == std::string::npos) continue;
    sum += std::stod(line.substr(end + 1));
  }
  return sum;
}

std::string PathEscape(std::string_view segment) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : segment) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string Rfc3339(std::chrono::system_clock::time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

std::optional<double> MetricValue(const std::string& exposition, const std::string& name) {
  std::istringstream in(exposition);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name, 0) != 0) continue;
    const std::string rest = line.substr(name.size());
    if (rest.empty() || (rest[0] != ' ' && rest[0] != '{')) continue;  // a longer name
    if (rest[0] == '{' && rest.find("{}") != 0) continue;              // labelled sample
    const size_t space = rest.rfind(' ');
    return std::strtod(rest.c_str() + space + 1, nullptr);
  }
  return std::nullopt;
}

std::string PushAudience(int users, const std::string& prefix) {
  std::string out;
  for (int i = 0; i < users; ++i) {
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016x", i);
    const std::string id = prefix + std::to_string(i);
    nlohmann::json line = {{"external_id", id},
                           {"opt_in", true},
                           {"groups", {"all"}},
                           {"devices",
                            {{{"channel", "ios"}, {"address", std::string(48, 'c') + hex}},
                             {{"channel", "android"}, {"address", "fcm-token-" + id}}}}};
    out += line.dump();
    out.push_back('\n');
  }
  return out;
}

nlohmann::json UserBody(const std::string& name, const nlohmann::json& devices,
                        const nlohmann::json& groups) {
  return {{"name", name}, {"opt_in", true}, {"devices", devices}, {"groups", groups}};
}

}  // namespace herald::e2e

// A client session against the API handler in-process (no sockets), over a real SQLite store in
// a temporary directory. Tests read like a conversation: Call("PUT", "/v1/users/u1", body, key).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "api/api.h"
#include "api/json_body.h"
#include "crypto/crypto.h"
#include "http/handler.h"
#include "observe/metrics.h"
#include "store/sqlite/sqlite_store.h"

namespace herald::api {

inline constexpr char kAdmin[] = "test-admin-token";

class ApiSession : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(crypto::InitCrypto());
    dir_ = std::filesystem::temp_directory_path() / ("herald-api-" + crypto::RandomId("", 12));
    std::filesystem::create_directories(dir_);
    SqliteStoreOptions options;
    options.path = (dir_ / "herald.db").string();
    options.master_key = crypto::RandomKey();
    auto store = OpenSqliteStore(std::move(options));
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
    ApiOptions api;
    api.admin_token = kAdmin;
    api.import_batch = 64;
    handler_ = MakeApiHandler(api, store_.get(), &metrics_);
  }

  void TearDown() override {
    handler_.reset();
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  static http::Request MakeRequest(std::string method, const std::string& target, std::string body,
                                   const std::string& token) {
    http::Request r;
    r.method = std::move(method);
    r.target = target;
    const size_t q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string::npos) {
      std::string rest = target.substr(q + 1);
      size_t pos = 0;
      while (pos <= rest.size()) {
        size_t amp = rest.find('&', pos);
        if (amp == std::string::npos) amp = rest.size();
        const std::string kv = rest.substr(pos, amp - pos);
        const size_t eq = kv.find('=');
        if (!kv.empty()) {
          r.query.emplace_back(kv.substr(0, eq), eq == std::string::npos ? "" : kv.substr(eq + 1));
        }
        pos = amp + 1;
      }
    }
    if (!token.empty()) r.headers.emplace_back("authorization", "Bearer " + token);
    r.body = std::move(body);
    r.request_id = "req-test";
    return r;
  }

  // One request through the handler, recorded like the server would.
  http::Response Call(std::string method, const std::string& target, std::string body = {},
                      const std::string& token = {}) {
    auto req = MakeRequest(std::move(method), target, std::move(body), token);
    const auto plan = handler_->PlanBody(req);
    http::Response resp;
    if (plan.stream) {
      const std::string body_copy = req.body;
      req.body.clear();
      auto opened = handler_->OpenStream(req);
      if (auto* refusal = std::get_if<http::Response>(&opened)) {
        resp = *refusal;
      } else {
        auto& sink = std::get<std::unique_ptr<http::BodySink>>(opened);
        // Feed in awkward pieces so line splitting across pieces is exercised.
        size_t pos = 0;
        bool go_on = true;
        while (go_on && pos < body_copy.size()) {
          const size_t n = std::min<size_t>(37, body_copy.size() - pos);
          go_on = sink->Write(std::string_view(body_copy).substr(pos, n));
          pos += n;
        }
        resp = sink->Finish(true);
      }
    } else {
      resp = handler_->Handle(req);
    }
    handler_->Record(req, resp, 100);
    return resp;
  }

  static Json Body(const http::Response& r) {
    return r.body.empty() ? Json() : Json::parse(r.body);
  }
  static std::string Code(const http::Response& r) {
    auto j = Body(r);
    return j.contains("error") ? j["error"]["code"].get<std::string>() : "";
  }
  static std::string Field(const http::Response& r) {
    auto j = Body(r);
    return j.contains("error") ? j["error"]["field"].get<std::string>() : "";
  }

  // Creates a tenant; returns its id.
  std::string NewTenant(int deadline = 15, int consent_days = 365) {
    auto r = Call("POST", "/v1/tenants",
                  Json{{"name", "Acme"},
                       {"delivery_deadline_minutes", deadline},
                       {"default_consent_days", consent_days}}
                      .dump(),
                  kAdmin);
    EXPECT_EQ(r.status, 201) << r.body;
    return Body(r)["id"];
  }
  // Mints a key for the tenant with the scopes; returns the secret.
  std::string NewKey(const std::string& tenant, std::vector<std::string> scopes = {
                                                    "users:read", "users:write", "audit:read"}) {
    auto r = Call("POST", "/v1/tenants/" + tenant + "/keys",
                  Json{{"name", "test"}, {"scopes", scopes}}.dump(), kAdmin);
    EXPECT_EQ(r.status, 201) << r.body;
    return Body(r)["key"];
  }

  std::filesystem::path dir_;
  observe::Registry metrics_;
  std::unique_ptr<Store> store_;
  std::shared_ptr<http::Handler> handler_;
};

}  // namespace herald::api

// A client session for the notification routes: a tenant with a key holding every scope, two
// users in the group "news", and a handler whose on_notification records what it was told and
// whose receipt secrets come from receipt_secrets_.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "api/api_test_fixture.h"

namespace herald::api {

class NotificationSession : public ApiSession {
 protected:
  void SetUp() override {
    ApiSession::SetUp();
    ApiOptions api;
    api.admin_token = kAdmin;
    api.on_notification = [this](const std::string& id) { started_.push_back(id); };
    api.public_url = "https://herald.example.com";
    api.receipt_secret = [this](const std::string& tenant,
                                std::string_view provider) -> Result<std::string> {
      auto it = receipt_secrets_.find(tenant + "/" + std::string(provider));
      if (it == receipt_secrets_.end()) {
        return MakeError(ErrorKind::kNotFound, "no_secret", "none configured");
      }
      return it->second;
    };
    handler_ = MakeApiHandler(api, store_.get(), &metrics_);
    tenant_ = NewTenant(20);
    key_ = NewKey(tenant_, {"users:read", "users:write", "notifications:send", "notifications:read",
                            "events:read"});
    PutUser("u1",
            {{{"channel", "email"}, {"address", "u1@example.com"}},
             {{"channel", "android"}, {"address", "fcm-token-u1"}}},
            {"news"});
    PutUser("u2", {{{"channel", "email"}, {"address", "u2@example.com"}}}, {"news"});
  }

  void PutUser(const std::string& id, Json devices, std::vector<std::string> groups) {
    auto r = Call("PUT", "/v1/users/" + id,
                  Json{{"opt_in", true}, {"devices", devices}, {"groups", groups}}.dump(), key_);
    ASSERT_EQ(r.status / 100, 2) << r.body;
  }

  // POST /v1/notifications with an optional Idempotency-Key.
  http::Response Send(const Json& body, const std::string& idempotency_key = {},
                      const std::string& token = {}) {
    return SendRaw(body.dump(), idempotency_key, token);
  }
  http::Response SendRaw(std::string body, const std::string& idempotency_key = {},
                         const std::string& token = {}) {
    auto req =
        MakeRequest("POST", "/v1/notifications", std::move(body), token.empty() ? key_ : token);
    if (!idempotency_key.empty()) req.headers.emplace_back("idempotency-key", idempotency_key);
    auto resp = handler_->Handle(req);
    handler_->Record(req, resp, 100);
    return resp;
  }

  // Sends {to:{groups:["news"]}, body} and returns the new notification's id.
  std::string SendToNews(const std::string& text = "Hello") {
    auto r = Send({{"to", {{"groups", {"news"}}}}, {"body", text}});
    EXPECT_EQ(r.status, 202) << r.body;
    return Body(r)["id"];
  }

  // Runs the fan-out to its end, as the pipeline would; returns the jobs it created.
  std::vector<DeliveryJob> FanOut(const std::string& id) {
    std::vector<DeliveryJob> jobs;
    for (int i = 0; i < 100; ++i) {
      auto page = store_->FanOutPage(id, 1);
      EXPECT_TRUE(page.ok()) << page.error().message;
      if (!page.ok()) break;
      jobs.insert(jobs.end(), page->jobs.begin(), page->jobs.end());
      if (page->done) break;
    }
    return jobs;
  }

  void Move(int64_t delivery, DeliveryStatus stage, const std::string& provider = {},
            const std::string& message_id = {}, const std::string& reason = {}) {
    DeliveryUpdate u;
    u.delivery = delivery;
    u.stage = stage;
    u.at = NowMillis();
    u.provider = provider;
    u.attempt = stage == DeliveryStatus::kQueued ? 0 : 1;
    u.provider_message_id = message_id;
    u.reason = reason;
    store_->RecordDeliveryUpdates({u});
    ASSERT_TRUE(store_->Flush().ok());
  }

  static std::string Header(const http::Response& r, std::string_view name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return {};
  }

  std::string tenant_, key_;
  std::vector<std::string> started_;                    // ids passed to on_notification
  std::map<std::string, std::string> receipt_secrets_;  // "tenant/provider" -> secret
};

}  // namespace herald::api

#include "providers/sim_defaults.h"

#include <nlohmann/json.hpp>

#include "sim/demo_credentials.h"

namespace herald::providers {
namespace {

using nlohmann::json;

std::string S(std::string_view v) { return std::string(v); }

// base_url and the transport flags every HTTP provider of the simulator shares.
json HttpProvider(std::string_view name, std::string base_url) {
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  const bool tls = base_url.rfind("https://", 0) == 0;
  json config = {{"name", name}, {"base_url", base_url}};
  if (tls) {
    config["verify_tls"] = false;  // the simulator's self-signed loopback certificate
  } else {
    config["h2c"] = true;
  }
  return config;
}

}  // namespace

std::vector<std::string> SimProviderConfigs(Channel channel, const std::string& sim_url,
                                            const std::string& sim_smtp_hostport) {
  std::vector<json> chain;
  switch (channel) {
    case Channel::kIos: {
      json apns = HttpProvider("apns", sim_url);
      apns["team_id"] = S(sim::kDemoApnsTeamId);
      apns["key_id"] = S(sim::kDemoApnsKeyId);
      apns["private_key"] = S(sim::kDemoApnsPrivateKeyPem);
      apns["topic"] = S(sim::kDemoApnsTopic);
      chain.push_back(std::move(apns));
      break;
    }
    case Channel::kAndroid: {
      json fcm = HttpProvider("fcm", sim_url);
      fcm["project_id"] = S(sim::kDemoFcmProjectId);
      fcm["client_email"] = S(sim::kDemoFcmClientEmail);
      fcm["private_key"] = S(sim::kDemoFcmPrivateKeyPem);
      fcm["token_url"] = fcm["base_url"].get<std::string>() + "/token";
      chain.push_back(std::move(fcm));
      break;
    }
    case Channel::kEmail: {
      if (!sim_smtp_hostport.empty()) {
        chain.push_back({{"name", "smtp"},
                         {"url", "smtp://" + sim_smtp_hostport},
                         {"username", S(sim::kDemoSmtpUsername)},
                         {"password", S(sim::kDemoSmtpPassword)},
                         {"from", "herald@demo.herald.dev"}});
      }
      json sendgrid = HttpProvider("sendgrid", sim_url);
      sendgrid["api_key"] = S(sim::kDemoSendgridApiKey);
      sendgrid["from"] = "herald@demo.herald.dev";
      chain.push_back(std::move(sendgrid));
      break;
    }
    case Channel::kSms: {
      json twilio = HttpProvider("twilio", sim_url);
      twilio["account_sid"] = S(sim::kDemoTwilioAccountSid);
      twilio["auth_token"] = S(sim::kDemoTwilioAuthToken);
      twilio["from"] = "+15005550006";
      chain.push_back(std::move(twilio));
      json vonage = HttpProvider("vonage", sim_url);
      vonage["api_key"] = S(sim::kDemoVonageApiKey);
      vonage["api_secret"] = S(sim::kDemoVonageApiSecret);
      vonage["from"] = "Herald";
      chain.push_back(std::move(vonage));
      break;
    }
  }
  std::vector<std::string> out;
  out.reserve(chain.size());
  for (const json& c : chain) out.push_back(c.dump());
  return out;
}

}  // namespace herald::providers

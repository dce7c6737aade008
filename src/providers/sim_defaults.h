// Provider settings that deliver to the provider simulator (`herald sim`, sim/simulator.h), for
// tenants without provider settings of their own (`herald serve --sim URL --sim-smtp HOST:PORT`).
// The credentials are the simulator's published demo credentials (sim/demo_credentials.h):
// public, simulator-only, accepted by `herald sim` out of the box.
#pragma once

#include <string>
#include <vector>

#include "model/model.h"

namespace herald::providers {

// The ordered provider configurations (JSON objects in the form MakeProvider accepts) for one
// channel: ios → apns; android → fcm; email → smtp, then sendgrid; sms → twilio, then vonage.
// `sim_url` is the simulator's HTTP port ("http://127.0.0.1:9090": HTTP/2 with prior knowledge;
// an https:// URL uses TLS without verifying the simulator's self-signed certificate).
// `sim_smtp_hostport` is its SMTP port ("127.0.0.1:2525"); when empty, email uses SendGrid only.
std::vector<std::string> SimProviderConfigs(Channel channel, const std::string& sim_url,
                                            const std::string& sim_smtp_hostport);

}  // namespace herald::providers

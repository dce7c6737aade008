// A request on its way through a client (internal to src/net): what the caller asked for, who to
// tell, and when it was submitted (its timeout counts from then). Completion is the caller's
// callback with its result, run once on the event-loop thread.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "net/http_client.h"

namespace herald::net::internal {

using SteadyTime = std::chrono::steady_clock::time_point;

struct HttpJob {
  HttpRequest request;
  std::function<void(HttpResponse)> done;
  SteadyTime submitted;
};

struct MailJob {
  SmtpMessage message;
  std::function<void(SmtpResult)> done;
  SteadyTime submitted;
};

// A finished request: the caller's callback and what it gets. Run() calls it at most once and
// never lets an exception out (a callback must not take down the event loop).
struct Completion {
  std::function<void(HttpResponse)> http_done;
  HttpResponse http;
  std::function<void(SmtpResult)> mail_done;
  SmtpResult mail;

  void Run();
};

// Completes a request that got no response (client shut down, expired while queued, no
// connection); `sent` says whether any of it may have reached the peer.
Completion FailedCompletion(HttpJob job, int curl_code, std::string error, bool timed_out,
                            bool sent = false);
Completion FailedCompletion(MailJob job, int curl_code, std::string error, bool timed_out);

// Milliseconds since `since`.
double MillisSince(SteadyTime since);

}  // namespace herald::net::internal

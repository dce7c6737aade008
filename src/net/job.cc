#include "net/job.h"

#include <utility>

namespace herald::net::internal {

void Completion::Run() {
  try {
    if (http_done) {
      auto done = std::move(http_done);
      done(std::move(http));
    } else if (mail_done) {
      auto done = std::move(mail_done);
      done(std::move(mail));
    }
  } catch (...) {
    // A callback's exception must not cross into the event loop; there is nobody to tell.
  }
}

double MillisSince(SteadyTime since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since)
      .count();
}

Completion FailedCompletion(HttpJob job, int curl_code, std::string error, bool timed_out,
                            bool sent) {
  Completion c;
  c.http_done = std::move(job.done);
  c.http.curl_code = curl_code;
  c.http.error = std::move(error);
  c.http.timed_out = timed_out;
  c.http.sent = sent;
  c.http.total_ms = MillisSince(job.submitted);
  return c;
}

Completion FailedCompletion(MailJob job, int curl_code, std::string error, bool timed_out) {
  Completion c;
  c.mail_done = std::move(job.done);
  c.mail.curl_code = curl_code;
  c.mail.error = std::move(error);
  c.mail.timed_out = timed_out;
  return c;
}

}  // namespace herald::net::internal

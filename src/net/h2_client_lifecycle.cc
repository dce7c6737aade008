// H2ClientImpl: how requests end — responses, retries of what the server did not process,
// failures, deadlines — and the shutdown that completes everything left.
#include <curl/curl.h>  // CURLE_* numbers, which HttpResponse::curl_code reuses

#include "net/h2_client_impl.h"

namespace herald::net::internal::h2 {

H2ClientImpl::~H2ClientImpl() {
  // After Shutdown nothing is left; without it (a failed start) drop what is.
  for (auto& [key, origin] : origins_) {
    for (auto& connection : origin->connections) connection->Abandon();
    for (H2Request* request : origin->queue) delete request;
  }
}

void H2ClientImpl::ProcessDone() {
  if (done_.empty()) return;
  std::vector<std::pair<H2Request*, StreamResult>> done;
  done.swap(done_);
  // Retries go back to the front of their queue in their original order.
  for (auto it = done.rbegin(); it != done.rend(); ++it) {
    auto& [request, result] = *it;
    if (result.kind != StreamResult::Kind::kRetry) continue;
    if (++request->retries > kMaxRetries) {
      Fail(request, CURLE_SEND_ERROR,
           "the server did not process the request after " + std::to_string(kMaxRetries) +
               " retries",
           false, false);
    } else {
      Enqueue(request, true);
      SchedulePump(*request->origin);
    }
  }
  for (auto& [request, result] : done) {
    switch (result.kind) {
      case StreamResult::Kind::kResponse: {
        HttpResponse response = std::move(request->response);
        response.http_version = 2;
        response.sent = true;
        Finish(request, std::move(response));
        break;
      }
      case StreamResult::Kind::kFailed:
        Fail(request, result.curl_code, std::move(result.error), false, true);
        break;
      case StreamResult::Kind::kRetry: break;
    }
  }
  if (!shut_down_) {
    std::vector<H2Origin*> origins;
    origins.swap(to_pump_);
    for (H2Origin* origin : origins) {
      origin->pump_pending = false;
      Pump(*origin);
    }
  }
}

void H2ClientImpl::FailQueued(H2Origin& origin, int curl_code, const std::string& error) {
  std::deque<H2Request*> queue;
  queue.swap(origin.queue);
  origin.queued = 0;
  for (H2Request* request : queue) {
    if (request->completed) {
      delete request;
      continue;
    }
    request->where = H2Request::Where::kLimbo;
    Fail(request, curl_code, error, curl_code == CURLE_OPERATION_TIMEDOUT, false);
  }
}

void H2ClientImpl::Finish(H2Request* request, HttpResponse response) {
  Completion completion;
  completion.http_done = std::move(request->job.done);
  response.total_ms = MillisSince(request->job.submitted);
  completion.http = std::move(response);
  if (request->has_deadline) {
    deadlines_.erase(request->deadline_pos);
    request->has_deadline = false;
  }
  if (request->where == H2Request::Where::kQueued) {
    request->completed = true;  // its queue drops it later
    request->job = HttpJob{};
    --request->origin->queued;
  } else {
    delete request;
  }
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  completion.Run();
}

void H2ClientImpl::Fail(H2Request* request, int curl_code, std::string error, bool timed_out,
                        bool sent) {
  HttpResponse response;
  response.curl_code = curl_code;
  response.error = std::move(error);
  response.timed_out = timed_out;
  response.sent = sent;
  response.destination_refused =
      curl_code == CURLE_COULDNT_CONNECT && response.error.starts_with(kDestinationRefused);
  Finish(request, std::move(response));
}

void H2ClientImpl::ArmDeadline(Clock::time_point at) {
  if (at >= armed_) return;
  armed_ = at;
  deadline_timer_.expires_at(at);
  deadline_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // re-armed earlier, or shut down
    armed_ = Clock::time_point::max();
    OnDeadline();
  });
}

void H2ClientImpl::OnDeadline() {
  if (shut_down_) return;
  const Clock::time_point now = Clock::now();
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    H2Request* request = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    request->has_deadline = false;
    const std::string after = std::to_string(request->job.request.timeout_ms);
    switch (request->where) {
      case H2Request::Where::kQueued:
        Fail(request, CURLE_OPERATION_TIMEDOUT, kQueuedTooLong, true, false);
        break;
      case H2Request::Where::kOnStream: {
        const bool sent = request->headers_sent;
        request->connection->Cancel(request);
        Fail(request, CURLE_OPERATION_TIMEDOUT,
             "Operation timed out after " + after + " milliseconds", true, sent);
        break;
      }
      case H2Request::Where::kLimbo: break;  // being completed right now
    }
  }
  if (!deadlines_.empty()) ArmDeadline(deadlines_.begin()->first);
}

void H2ClientImpl::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  deadline_timer_.cancel();
  for (auto& [key, origin] : origins_) {
    std::vector<std::shared_ptr<H2Connection>> connections;
    connections.swap(origin->connections);
    for (auto& connection : connections) {
      for (H2Request* request : connection->Abandon()) {
        Fail(request, CURLE_ABORTED_BY_CALLBACK, kShutDown, false, request->headers_sent);
      }
    }
    FailQueued(*origin, CURLE_ABORTED_BY_CALLBACK, kShutDown);
  }
  // Completions may submit more; complete those too until nothing is left.
  for (;;) {
    std::vector<HttpJob> jobs;
    {
      std::lock_guard lock(mu_);
      if (submitted_.empty()) {
        accepting_ = false;  // from now on Submit completes at once
        break;
      }
      jobs.swap(submitted_);
    }
    for (HttpJob& job : jobs) {
      in_flight_.fetch_sub(1, std::memory_order_relaxed);
      FailedCompletion(std::move(job), CURLE_ABORTED_BY_CALLBACK, kShutDown, false).Run();
    }
  }
}

}  // namespace herald::net::internal::h2

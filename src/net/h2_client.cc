// H2ClientImpl: intake from any thread, origins (one per scheme, host, port and TLS settings)
// and their connection pools.
#include <curl/curl.h>  // CURLE_* numbers, which HttpResponse::curl_code reuses
#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "net/h2_client_impl.h"

namespace herald::net::internal {
namespace h2 {

void H2ClientImpl::Submit(HttpJob job) {
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  std::unique_lock lock(mu_);
  if (!accepting_) {
    lock.unlock();
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    FailedCompletion(std::move(job), CURLE_ABORTED_BY_CALLBACK, kShutDown, false).Run();
    return;
  }
  submitted_.push_back(std::move(job));
  if (drain_posted_) return;
  drain_posted_ = true;
  lock.unlock();
  asio::post(io_, [this] { Drain(); });
}

void H2ClientImpl::Drain() {
  {
    std::lock_guard lock(mu_);
    draining_.swap(submitted_);
    drain_posted_ = false;
  }
  if (shut_down_) return;
  const Clock::time_point now = Clock::now();
  for (HttpJob& job : draining_) Admit(std::move(job), now);
  draining_.clear();
  std::vector<H2Origin*> origins;
  origins.swap(to_pump_);
  for (H2Origin* origin : origins) {
    origin->pump_pending = false;
    Pump(*origin);
  }
}

void H2ClientImpl::Admit(HttpJob job, Clock::time_point now) {
  H2Origin* origin = OriginFor(job.request);
  if (origin == nullptr) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    FailedCompletion(std::move(job), CURLE_URL_MALFORMAT, "URL using bad/illegal format", false)
        .Run();
    return;
  }
  if (origin->http1) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    fallback_(std::move(job));
    return;
  }
  auto* request = new H2Request;
  request->job = std::move(job);
  request->authority = url_.authority;  // OriginFor parsed the URL into url_
  request->path = url_.path;
  request->origin = origin;
  if (request->job.request.timeout_ms > 0) {
    const Clock::time_point deadline =
        request->job.submitted + std::chrono::milliseconds(request->job.request.timeout_ms);
    if (deadline <= now) {
      Fail(request, CURLE_OPERATION_TIMEDOUT, kQueuedTooLong, true, false);
      return;
    }
    request->has_deadline = true;
    request->deadline_pos = deadlines_.emplace(deadline, request);
    ArmDeadline(deadline);
  }
  Enqueue(request, false);
  SchedulePump(*origin);
}

H2Origin* H2ClientImpl::OriginFor(const HttpRequest& request) {
  if (!ParseUrl(request.url, url_)) return nullptr;
  origin_key_.assign(url_.tls ? "https://" : "http://");
  origin_key_ += url_.host;
  origin_key_ += ':';
  origin_key_ += std::to_string(url_.port);
  if (url_.tls) {
    origin_key_ += request.verify_tls ? "|verify|" : "|noverify|";
    origin_key_ += request.ca_file;
  }
  auto it = origins_.find(origin_key_);
  if (it != origins_.end()) return it->second.get();
  auto origin = std::make_unique<H2Origin>();
  origin->url = url_;
  origin->verify_tls = request.verify_tls;
  if (url_.tls) origin->tls = TlsContext(request.verify_tls, request.ca_file);
  return origins_.emplace(origin_key_, std::move(origin)).first->second.get();
}

asio::ssl::context* H2ClientImpl::TlsContext(bool verify, const std::string& ca_file) {
  auto& slot = tls_contexts_[{verify, verify ? ca_file : std::string()}];
  if (slot) return slot.get();
  slot = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  boost::system::error_code ignored;  // a bad CA file shows as a verification failure
  if (verify) {
    slot->set_verify_mode(asio::ssl::verify_peer, ignored);
    if (ca_file.empty()) {
      slot->set_default_verify_paths(ignored);
    } else {
      slot->load_verify_file(ca_file, ignored);
    }
  } else {
    slot->set_verify_mode(asio::ssl::verify_none, ignored);
  }
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(slot->native_handle(), kAlpn, sizeof kAlpn);
  return slot.get();
}

void H2ClientImpl::Enqueue(H2Request* request, bool front) {
  request->where = H2Request::Where::kQueued;
  H2Origin& origin = *request->origin;
  if (front) {
    origin.queue.push_front(request);
  } else {
    origin.queue.push_back(request);
  }
  ++origin.queued;
}

void H2ClientImpl::SchedulePump(H2Origin& origin) {
  if (origin.pump_pending) return;
  origin.pump_pending = true;
  to_pump_.push_back(&origin);
}

void H2ClientImpl::Pump(H2Origin& origin) {
  auto drop_tombstones = [&origin] {
    while (!origin.queue.empty() && origin.queue.front()->completed) {
      delete origin.queue.front();
      origin.queue.pop_front();
    }
  };
  drop_tombstones();
  if (origin.http1) {  // hand the queue to the fallback
    while (!origin.queue.empty()) {
      H2Request* request = origin.queue.front();
      origin.queue.pop_front();
      if (!request->completed) {
        if (request->has_deadline) deadlines_.erase(request->deadline_pos);
        in_flight_.fetch_sub(1, std::memory_order_relaxed);
        fallback_(std::move(request->job));
      }
      delete request;
    }
    origin.queued = 0;
    return;
  }
  size_t next = 0;  // connections before this one are full
  while (origin.queued > 0 && next < origin.connections.size()) {
    H2Connection& connection = *origin.connections[next];
    if (!connection.accepting() || connection.free_slots() == 0) {
      ++next;
      continue;
    }
    H2Request* request = origin.queue.front();
    origin.queue.pop_front();
    --origin.queued;
    request->where = H2Request::Where::kLimbo;
    if (!connection.Submit(request)) {
      if (connection.accepting()) {
        Fail(request, CURLE_SEND_ERROR, "the HTTP/2 session refused the request", false, false);
      } else {
        Enqueue(request, true);  // stream ids ran out: another connection takes it
      }
    }
    drop_tombstones();
  }
  // New connections for what the connecting ones will not take.
  size_t coming = 0;
  size_t usable = 0;
  for (const auto& connection : origin.connections) {
    if (connection->draining()) continue;
    ++usable;
    if (connection->connecting()) coming += planned_streams_;
  }
  const auto max_connections = static_cast<size_t>(std::max(1, options_.max_connections_per_host));
  while (origin.queued > coming && usable < max_connections) {
    H2Connection::Target target;
    target.host = origin.url.host;
    target.port = origin.url.port;
    target.tls = origin.tls;
    target.verify_tls = origin.verify_tls;
    target.connect_timeout_ms = options_.connect_timeout_ms;
    target.max_concurrent_streams = options_.max_concurrent_streams;
    target.destinations = options_.destinations.get();
    auto connection = std::make_shared<H2Connection>(io_, *this, &origin, std::move(target));
    origin.connections.push_back(connection);
    connection->Start();
    coming += planned_streams_;
    ++usable;
  }
}

void H2ClientImpl::AfterEvent(H2Connection& connection) {
  ProcessDone();
  Pump(*connection.origin());
}

void H2ClientImpl::OnClosed(H2Connection& connection, int curl_code, const std::string& error,
                            bool not_h2) {
  H2Origin& origin = *connection.origin();
  std::shared_ptr<H2Connection> keep;  // the caller is inside it
  auto& list = origin.connections;
  for (auto it = list.begin(); it != list.end(); ++it) {
    if (it->get() == &connection) {
      keep = std::move(*it);
      list.erase(it);
      break;
    }
  }
  ProcessDone();
  if (shut_down_) return;
  if (not_h2) {
    origin.http1 = true;
  } else if (!connection.was_ready() && curl_code != 0) {
    const bool others = std::any_of(list.begin(), list.end(),
                                    [](const auto& c) { return c->ready() || c->connecting(); });
    // Unreachable: the queued requests would fail the same way, one after another.
    if (!others) FailQueued(origin, curl_code, error);
  }
  Pump(origin);
}

}  // namespace h2

std::unique_ptr<H2Client> H2Client::Make(const HttpClientOptions& options,
                                         boost::asio::io_context& io, Fallback fallback) {
  return std::make_unique<h2::H2ClientImpl>(options, io, std::move(fallback));
}

}  // namespace herald::net::internal

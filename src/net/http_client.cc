#include "net/http_client.h"

namespace herald::net {

std::string_view HttpResponse::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return {};
}

std::future<HttpResponse> HttpClient::Send(HttpRequest request) {
  auto promise = std::make_shared<std::promise<HttpResponse>>();
  auto future = promise->get_future();
  Send(std::move(request), [promise](HttpResponse r) { promise->set_value(std::move(r)); });
  return future;
}

std::future<SmtpResult> HttpClient::SendMail(SmtpMessage message) {
  auto promise = std::make_shared<std::promise<SmtpResult>>();
  auto future = promise->get_future();
  SendMail(std::move(message), [promise](SmtpResult r) { promise->set_value(std::move(r)); });
  return future;
}

}  // namespace herald::net

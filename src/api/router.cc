#include <string>

#include "api/routing.h"
#include "common/percent.h"

namespace herald::api {
namespace {

std::vector<std::string_view> Split(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 1;  // paths start with '/'
  while (start <= path.size()) {
    const size_t end = path.find('/', start);
    if (end == std::string_view::npos) {
      out.push_back(path.substr(start));
      break;
    }
    out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

std::string_view Call::Param(std::string_view name) const {
  for (const auto& [k, v] : params) {
    if (k == name) return v;
  }
  return {};
}

void Router::Add(Route route) {
  for (auto seg : Split(route.pattern)) route.segments.emplace_back(seg);
  if (route.auth == Auth::kTenant && !route.rate_class) {
    if (route.stream) {
      route.rate_class = RateClass::kImports;
    } else if (route.method == "GET" || route.method == "HEAD") {
      route.rate_class = RateClass::kReads;
    } else if (route.pattern.starts_with("/v1/notifications")) {
      route.rate_class = RateClass::kSends;
    } else {
      route.rate_class = RateClass::kUserWrites;
    }
  }
  routes_.push_back(std::move(route));
}

Match Router::Find(std::string_view method, std::string_view raw_path) const {
  Match match;
  if (raw_path.empty() || raw_path[0] != '/') return match;
  const auto segments = Split(raw_path);
  for (const Route& route : routes_) {
    if (route.segments.size() != segments.size()) continue;
    std::vector<std::pair<std::string, std::string>> params;
    bool ok = true;
    for (size_t i = 0; i < segments.size() && ok; ++i) {
      const std::string& want = route.segments[i];
      if (want.size() > 2 && want.front() == '{' && want.back() == '}') {
        std::string value = PercentDecode(segments[i], /*plus_is_space=*/false);
        if (value.empty()) ok = false;
        params.emplace_back(want.substr(1, want.size() - 2), std::move(value));
      } else {
        ok = want == segments[i];
      }
    }
    if (!ok) continue;
    if (route.method != method) {
      match.allowed_methods.push_back(route.method);
      continue;
    }
    match.route = &route;
    match.params = std::move(params);
    return match;
  }
  return match;
}

http::Response JsonResponse(int status, const Json& body) {
  http::Response r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  return r;
}

Json ErrorJson(const Error& error) {
  return Json{
      {"error", {{"code", error.code}, {"message", error.message}, {"field", error.field}}}};
}

http::Response ErrorResponse(const Error& error) {
  auto r = JsonResponse(HttpStatus(error.kind), ErrorJson(error));
  if (error.kind == ErrorKind::kRateLimited || error.kind == ErrorKind::kUnavailable) {
    r.headers.emplace_back("Retry-After", "1");
  }
  return r;
}

http::Response NoContent() {
  http::Response r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

Result<PageRequest> ReadPage(const http::Request& request) {
  PageRequest page;
  if (const std::string* limit = request.Query("limit")) {
    int value = 0;
    bool ok = !limit->empty() && limit->size() <= 4;
    for (char c : *limit) {
      ok = ok && c >= '0' && c <= '9';
      if (ok) value = value * 10 + (c - '0');
    }
    if (!ok || value < 1 || value > 1000) {
      return MakeError(ErrorKind::kInvalid, "invalid_limit",
                       "limit must be a whole number from 1 to 1000.", "limit");
    }
    page.limit = value;
  }
  if (const std::string* cursor = request.Query("cursor")) page.cursor = *cursor;
  return page;
}

}  // namespace herald::api

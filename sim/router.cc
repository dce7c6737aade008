// Picks the route for a request by method and path. Unknown paths answer in the shape of the
// provider whose prefix they share (APNs: {"reason":"BadPath"}), else a plain JSON 404.
#include <exception>

#include "sim/routes.h"

namespace herald::sim {
namespace {

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

SimResponse NotFound() { return JsonResponse(404, R"({"error":"no such simulator route"})"); }

SimResponse MethodNotAllowed(std::string allow) {
  SimResponse r = JsonResponse(405, R"({"error":"method not allowed"})");
  r.headers.emplace_back("allow", std::move(allow));
  return r;
}

SimResponse Route(SimState& state, const SimRequest& req) {
  std::string_view path = req.Path();
  const bool post = req.method == "POST";

  if (StartsWith(path, "/3/device/")) {
    std::string_view token = path.substr(10);
    if (!post) {
      state.record.Refuse(Provider::kApns);
      return JsonResponse(405, R"({"reason":"MethodNotAllowed"})");
    }
    return HandleApnsPush(state, req, token);
  }
  if (StartsWith(path, "/3/")) {
    state.record.Refuse(Provider::kApns);
    return JsonResponse(404, R"({"reason":"BadPath"})");
  }
  if (path == "/token") return post ? HandleFcmToken(state, req) : MethodNotAllowed("POST");
  if (StartsWith(path, "/v1/projects/") && EndsWith(path, "/messages:send")) {
    std::string_view project = path.substr(13, path.size() - 13 - 14);
    if (project.empty() || project.find('/') != std::string_view::npos) return NotFound();
    return post ? HandleFcmSend(state, req, project) : MethodNotAllowed("POST");
  }
  if (path == "/v3/mail/send")
    return post ? HandleSendgridSend(state, req) : MethodNotAllowed("POST");
  if (StartsWith(path, "/2010-04-01/Accounts/") && EndsWith(path, "/Messages.json")) {
    std::string_view sid = path.substr(21, path.size() - 21 - 14);
    if (sid.empty() || sid.find('/') != std::string_view::npos) return NotFound();
    return post ? HandleTwilioSend(state, req, sid) : MethodNotAllowed("POST");
  }
  if (path == "/sms/json") return post ? HandleVonageSend(state, req) : MethodNotAllowed("POST");
  if (StartsWith(path, "/sim/")) return HandleControl(state, req);
  if (path == "/healthz") return JsonResponse(200, R"({"status":"ok"})");
  return NotFound();
}

}  // namespace

SimResponse RouteRequest(SimState& state, const SimRequest& request) {
  if (request.body_too_large) {
    SimResponse r = JsonResponse(413, R"({"error":"request body too large"})");
    r.close = true;
    return r;
  }
  try {
    return Route(state, request);
  } catch (const std::exception& e) {  // a route bug must not take the connection down
    return JsonResponse(500, "{\"error\":" + JsonQuote(e.what()) + "}");
  }
}

}  // namespace herald::sim

#include "http/wire.h"

#include <cstdint>
#include <random>

namespace herald::http {
namespace {

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// RFC 9110 §7.2: Host = uri-host [ ":" port ], uri-host = IP-literal / IPv4address / reg-name.
// Percent-encoded reg-names are not accepted: no client of an API sends them.
bool IsValidHostHeader(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  std::string_view port;
  if (host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (char c : host.substr(1, close - 1)) {
      const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                      c == ':' || c == '.';
      if (!ok) return false;
    }
    const std::string_view rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
  } else {
    const size_t colon = host.find(':');
    const std::string_view name = host.substr(0, colon);
    if (name.empty()) return false;
    for (char c : name) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_';
      if (!ok) return false;
    }
    if (colon != std::string_view::npos) {
      port = host.substr(colon + 1);
      if (port.empty()) return false;
    }
  }
  if (port.size() > 5) return false;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

DecodedTarget DecodeTarget(std::string_view target) {
  DecodedTarget out;
  if (const size_t hash = target.find('#'); hash != std::string_view::npos) {
    target = target.substr(0, hash);
  }
  // Absolute-form: drop "scheme://authority".
  if (const size_t scheme = target.find("://");
      scheme != std::string_view::npos &&
      target.substr(0, scheme).find('/') == std::string_view::npos) {
    const size_t path_start = target.find_first_of("/?", scheme + 3);
    target =
        path_start == std::string_view::npos ? std::string_view("/") : target.substr(path_start);
  }
  std::string_view query;
  if (const size_t q = target.find('?'); q != std::string_view::npos) {
    query = target.substr(q + 1);
    target = target.substr(0, q);
  }
  out.path = PercentDecode(target, /*plus_is_space=*/false);
  if (out.path.empty()) out.path = "/";
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos) {
      out.query.emplace_back(PercentDecode(pair, true), std::string());
    } else {
      out.query.emplace_back(PercentDecode(pair.substr(0, eq), true),
                             PercentDecode(pair.substr(eq + 1), true));
    }
  }
  return out;
}

bool IsSaneRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string MintRequestId() {
  static constexpr char kHex[] = "0123456789abcdef";
  thread_local std::mt19937_64 generator = [] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device()};
    return std::mt19937_64(seed);
  }();
  uint64_t bits = generator();
  std::string id(16, '0');
  for (char& c : id) {
    c = kHex[bits & 0xf];
    bits >>= 4;
  }
  return id;
}

std::string ErrorBody(std::string_view code, std::string_view message, std::string_view field) {
  std::string out = "{\"error\":{\"code\":";
  AppendJsonString(out, code);
  out += ",\"message\":";
  AppendJsonString(out, message);
  out += ",\"field\":";
  AppendJsonString(out, field);
  out += "}}";
  return out;
}

Response ErrorResponse(int status, std::string_view code, std::string_view message,
                       std::string_view field) {
  Response response;
  response.status = status;
  response.content_type = "application/json";
  response.body = ErrorBody(code, message, field);
  response.route = "";
  response.actor = "anonymous";
  response.refusal = std::string(code);
  return response;
}

std::optional<Response> CheckFraming(
    unsigned version, const std::vector<std::pair<std::string, std::string>>& headers) {
  std::vector<std::string> codings;
  bool has_encoding = false;
  int hosts = 0;
  std::string_view host;
  for (const auto& [name, value] : headers) {
    if (name == "host") {
      ++hosts;
      host = value;
    } else if (name == "transfer-encoding") {
      has_encoding = true;
      std::string_view list = value;
      while (true) {  // every element, empty ones included (refused below)
        const size_t comma = list.find(',');
        codings.push_back(AsciiLower(TrimSpace(list.substr(0, comma))));
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
      }
    }
  }
  if (has_encoding) {
    auto faulty = [](const std::string& why) {
      return ErrorResponse(400, "invalid_transfer_encoding",
                           "The request's Transfer-Encoding " + why +
                               ", so its body's length cannot be known; send a Content-Length "
                               "or 'Transfer-Encoding: chunked' alone.",
                           "Transfer-Encoding");
    };
    if (version < 11) return faulty("is not allowed in HTTP/1.0");
    if (codings.back() != "chunked") return faulty("does not end in chunked");
    for (size_t i = 0; i + 1 < codings.size(); ++i) {
      if (codings[i].empty() || codings[i] == "chunked") {
        return faulty("lists chunked more than once or has an empty element");
      }
    }
    if (codings.size() > 1) {
      return ErrorResponse(501, "unsupported_transfer_encoding",
                           "Herald reads request bodies sent with 'Transfer-Encoding: chunked' "
                           "alone; the coding '" +
                               codings.front() + "' is not supported.",
                           "Transfer-Encoding");
    }
  }
  if (hosts > 1) {
    return ErrorResponse(400, "invalid_host", "The request has more than one Host header.", "Host");
  }
  if (hosts == 0 && version >= 11) {
    return ErrorResponse(400, "invalid_host",
                         "An HTTP/1.1 request needs a Host header naming the server.", "Host");
  }
  if (hosts == 1 && !IsValidHostHeader(host)) {
    return ErrorResponse(400, "invalid_host",
                         "The Host header must be a host name or IP literal with an optional "
                         "port, e.g. 'api.example.com' or '127.0.0.1:8080'.",
                         "Host");
  }
  return std::nullopt;
}

}  // namespace herald::http

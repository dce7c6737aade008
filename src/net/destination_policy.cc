#include "net/destination_policy.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace herald::net {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool ParsePort(std::string_view text, uint16_t* port) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value == 0 ||
      value > 65535) {
    return false;
  }
  *port = static_cast<uint16_t>(value);
  return true;
}

// True when the first `bits` bits of a and b agree.
bool PrefixEquals(const uint8_t* a, const uint8_t* b, int bits) {
  const int whole = bits / 8;
  if (std::memcmp(a, b, static_cast<size_t>(whole)) != 0) return false;
  const int rest = bits % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xFF << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

struct Range {
  uint8_t bytes[16];
  int bits;
  std::string_view kind;
};

// Not globally routable, IANA special-purpose registries (RFC 6890 and successors).
constexpr Range kV4Ranges[] = {
    {{0}, 8, "unspecified/this-network"},
    {{10}, 8, "private"},
    {{100, 64}, 10, "carrier-grade NAT"},
    {{127}, 8, "loopback"},
    {{169, 254}, 16, "link-local (cloud metadata)"},
    {{172, 16}, 12, "private"},
    {{192, 0, 0}, 24, "IETF protocol assignment"},
    {{192, 0, 2}, 24, "documentation"},
    {{192, 88, 99}, 24, "deprecated relay"},
    {{192, 168}, 16, "private"},
    {{198, 18}, 15, "benchmarking"},
    {{198, 51, 100}, 24, "documentation"},
    {{203, 0, 113}, 24, "documentation"},
    {{224}, 4, "multicast"},
    {{240}, 4, "reserved/broadcast"},
};
constexpr Range kV6Ranges[] = {
    {{0}, 127, "unspecified/loopback"},  // :: and ::1
    {{0x01, 0x00}, 64, "discard-only"},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "documentation"},
    {{0x20, 0x01, 0x00, 0x00}, 23, "IETF protocol assignment"},
    {{0xfc}, 7, "unique-local (private)"},
    {{0xfe, 0x80}, 10, "link-local"},
    {{0xfe, 0xc0}, 10, "site-local"},
    {{0xff}, 8, "multicast"},
};

// The IPv4 address carried inside an IPv6 one (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d,
// NAT64 64:ff9b::a.b.c.d), which a connection may reach; false when there is none.
bool EmbeddedV4(const IpEndpoint& a, IpEndpoint* v4) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static constexpr uint8_t kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  static constexpr uint8_t kCompatible[12] = {};
  const uint8_t* b = a.bytes.data();
  if (std::memcmp(b, kMapped, 12) != 0 && std::memcmp(b, kNat64, 12) != 0 &&
      (std::memcmp(b, kCompatible, 12) != 0 || (b[12] == 0 && b[13] == 0 && b[14] == 0))) {
    return false;
  }
  v4->family = AF_INET;
  v4->bytes = {};
  std::memcpy(v4->bytes.data(), b + 12, 4);
  v4->port = a.port;
  return true;
}

bool IsUnspecified(const IpEndpoint& e) {
  const size_t n = e.family == AF_INET ? 4 : 16;
  return std::all_of(e.bytes.begin(), e.bytes.begin() + static_cast<long>(n),
                     [](uint8_t b) { return b == 0; });
}

bool IsLoopback(const IpEndpoint& e) {
  static constexpr uint8_t kV6Loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return e.family == AF_INET ? e.bytes[0] == 127
                             : std::memcmp(e.bytes.data(), kV6Loopback, 16) == 0;
}

bool SameAddress(const IpEndpoint& a, const IpEndpoint& b) {
  return a.family == b.family && a.bytes == b.bytes;
}

// Every address of this host's interfaces, and loopback.
std::vector<IpEndpoint> LocalAddresses() {
  std::vector<IpEndpoint> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) == 0) {
    for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
      IpEndpoint e;
      if (i->ifa_addr != nullptr && IpEndpoint::FromSockaddr(i->ifa_addr, &e)) out.push_back(e);
    }
    ::freeifaddrs(list);
  }
  IpEndpoint loopback;
  IpEndpoint::FromLiteral("127.0.0.1", 0, &loopback);
  out.push_back(loopback);
  IpEndpoint::FromLiteral("::1", 0, &loopback);
  out.push_back(loopback);
  return out;
}

Error NotAllowed(std::string_view field, std::string message) {
  return MakeError(ErrorKind::kInvalid, "provider_url_not_allowed", std::move(message),
                   std::string(field));
}

}  // namespace

bool IpEndpoint::FromSockaddr(const sockaddr* address, IpEndpoint* out) {
  if (address->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    *out = IpEndpoint{};
    out->family = AF_INET;
    std::memcpy(out->bytes.data(), &in->sin_addr, 4);
    out->port = ntohs(in->sin_port);
    return true;
  }
  if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    *out = IpEndpoint{};
    out->family = AF_INET6;
    std::memcpy(out->bytes.data(), &in6->sin6_addr, 16);
    out->port = ntohs(in6->sin6_port);
    return true;
  }
  return false;
}

bool IpEndpoint::FromLiteral(std::string_view host, uint16_t port, IpEndpoint* out) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host.size() > 63) return false;
  const std::string text(host);
  IpEndpoint e;
  e.port = port;
  if (::inet_pton(AF_INET, text.c_str(), e.bytes.data()) == 1) {
    e.family = AF_INET;
  } else if (::inet_pton(AF_INET6, text.c_str(), e.bytes.data()) == 1) {
    e.family = AF_INET6;
  } else {
    return false;
  }
  *out = e;
  return true;
}

std::string IpEndpoint::ToString() const {
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family, bytes.data(), text, sizeof(text));
  return family == AF_INET6 ? "[" + std::string(text) + "]:" + std::to_string(port)
                            : std::string(text) + ":" + std::to_string(port);
}

std::string_view NonPublicKind(const IpEndpoint& address) {
  if (address.family == AF_INET) {
    for (const Range& r : kV4Ranges) {
      if (PrefixEquals(address.bytes.data(), r.bytes, r.bits)) return r.kind;
    }
    return {};
  }
  IpEndpoint v4;
  if (EmbeddedV4(address, &v4)) {
    const std::string_view kind = NonPublicKind(v4);
    return kind.empty() ? std::string_view() : kind;
  }
  for (const Range& r : kV6Ranges) {
    if (PrefixEquals(address.bytes.data(), r.bytes, r.bits)) return r.kind;
  }
  return {};
}

Result<UrlParts> ParseUrl(std::string_view url, std::string_view field) {
  auto invalid = [&](const std::string& why) {
    return MakeError(ErrorKind::kInvalid, "invalid_url",
                     std::string(field) + " must be an absolute URL such as " +
                         "https://api.example.com; " + why + ".",
                     std::string(field));
  };
  const size_t colon = url.find("://");
  if (colon == std::string_view::npos || colon == 0) return invalid("it has no scheme://");
  UrlParts parts;
  parts.scheme = Lower(url.substr(0, colon));
  for (char c : parts.scheme) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')) {
      return invalid("its scheme is not valid");
    }
  }
  std::string_view rest = url.substr(colon + 3);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.find('@') != std::string_view::npos) {
    return invalid("it must not carry user information (user@host)");
  }
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F || c == '\\') {
      return invalid("it contains spaces, control characters or backslashes");
    }
  }
  std::string_view host = authority;
  std::string_view port_text;
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string_view::npos) return invalid("its IPv6 literal is not closed");
    port_text = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!port_text.empty()) {
      if (port_text.front() != ':') return invalid("text follows its IPv6 literal");
      port_text.remove_prefix(1);
      if (port_text.empty()) return invalid("its port is empty");
    }
  } else if (const size_t c = host.rfind(':'); c != std::string_view::npos) {
    port_text = host.substr(c + 1);
    host = host.substr(0, c);
    if (port_text.empty()) return invalid("its port is empty");
  }
  if (host.empty()) return invalid("it names no host");
  parts.host = Lower(host);
  if (!port_text.empty()) {
    if (!ParsePort(port_text, &parts.port)) return invalid("its port is not 1-65535");
  } else if (parts.scheme == "https") {
    parts.port = 443;
  } else if (parts.scheme == "http") {
    parts.port = 80;
  } else if (parts.scheme == "smtps") {
    parts.port = 465;
  } else if (parts.scheme == "smtp") {
    parts.port = 25;
  }
  return parts;
}

DestinationPolicy::DestinationPolicy(const DestinationPolicy& other) {
  std::lock_guard lock(other.mu_);
  rules_ = other.rules_;
  own_ = other.own_;
}

DestinationPolicy& DestinationPolicy::operator=(const DestinationPolicy& other) {
  if (this == &other) return *this;
  std::scoped_lock lock(mu_, other.mu_);
  rules_ = other.rules_;
  own_ = other.own_;
  return *this;
}

Result<DestinationPolicy::Rule> DestinationPolicy::ParseRule(std::string_view entry) {
  auto invalid = [&entry]() {
    return MakeError(ErrorKind::kInvalid, "invalid_allow_rule",
                     "The allowed provider host \"" + std::string(entry) +
                         "\" is not a host name, IP address or CIDR network with an optional "
                         ":port (e.g. 127.0.0.1:9090, 10.0.0.0/8, sim.internal).",
                     "allow_provider_hosts");
  };
  Rule rule;
  std::string_view host = entry;
  // A port: after "]" for IPv6, else after the only ':' (several ':' and no brackets is an
  // IPv6 address or network without a port).
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string_view::npos) return invalid();
    std::string_view after = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!after.empty()) {
      if (after.front() != ':' || !ParsePort(after.substr(1), &rule.port)) return invalid();
    }
  } else if (std::count(host.begin(), host.end(), ':') == 1) {
    const size_t colon = host.find(':');
    if (!ParsePort(host.substr(colon + 1), &rule.port)) return invalid();
    host = host.substr(0, colon);
  }
  if (host.empty()) return invalid();
  std::string_view address = host;
  int prefix = -1;
  if (const size_t slash = host.find('/'); slash != std::string_view::npos) {
    address = host.substr(0, slash);
    const std::string_view bits = host.substr(slash + 1);
    const auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
    if (bits.empty() || ec != std::errc() || end != bits.data() + bits.size()) return invalid();
  }
  if (IpEndpoint::FromLiteral(address, 0, &rule.network)) {
    const int max_bits = rule.network.family == AF_INET ? 32 : 128;
    if (prefix < 0) prefix = max_bits;
    if (prefix > max_bits) return invalid();
    rule.prefix = prefix;
    return rule;
  }
  if (prefix >= 0) return invalid();
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
    if (!ok) return invalid();
  }
  rule.name = Lower(host);
  return rule;
}

Result<DestinationPolicy> DestinationPolicy::Parse(std::string_view allow_list) {
  DestinationPolicy policy;
  if (Status s = policy.Allow(allow_list); !s.ok()) return s.take_error();
  return policy;
}

Status DestinationPolicy::Allow(std::string_view allow_list) {
  std::vector<Rule> parsed;
  while (!allow_list.empty()) {
    const size_t comma = allow_list.find(',');
    const std::string_view entry = Trim(allow_list.substr(0, comma));
    allow_list =
        comma == std::string_view::npos ? std::string_view() : allow_list.substr(comma + 1);
    if (entry.empty()) continue;
    Result<Rule> rule = ParseRule(entry);
    if (!rule.ok()) return rule.take_error();
    parsed.push_back(std::move(*rule));
  }
  std::lock_guard lock(mu_);
  rules_.insert(rules_.end(), parsed.begin(), parsed.end());
  return Status::Ok();
}

void DestinationPolicy::DenyOwnEndpoint(const IpEndpoint& endpoint) {
  std::vector<IpEndpoint> add;
  if (IsUnspecified(endpoint)) {
    for (IpEndpoint local : LocalAddresses()) {
      local.port = endpoint.port;
      add.push_back(local);
    }
  } else {
    add.push_back(endpoint);
  }
  std::lock_guard lock(mu_);
  own_.insert(own_.end(), add.begin(), add.end());
}

bool DestinationPolicy::IsOwn(const IpEndpoint& destination) const {
  IpEndpoint v4;
  const bool embedded = destination.family == AF_INET6 && EmbeddedV4(destination, &v4);
  for (const IpEndpoint& own : own_) {
    if (own.port != destination.port) continue;
    if (SameAddress(own, destination) || (embedded && SameAddress(own, v4))) return true;
    // Anything reaching the listener's host over loopback reaches the listener.
    if (IsLoopback(own) && IsLoopback(embedded ? v4 : destination)) return true;
  }
  return false;
}

bool DestinationPolicy::Matches(const Rule& rule, const IpEndpoint& destination,
                                std::string_view host) const {
  if (rule.port != 0 && rule.port != destination.port) return false;
  if (!rule.name.empty()) return Lower(host) == rule.name;
  IpEndpoint v4;
  const IpEndpoint& address = destination.family == AF_INET6 && rule.network.family == AF_INET &&
                                      EmbeddedV4(destination, &v4)
                                  ? v4
                                  : destination;
  return address.family == rule.network.family &&
         PrefixEquals(address.bytes.data(), rule.network.bytes.data(), rule.prefix);
}

bool DestinationPolicy::Allows(const IpEndpoint& destination, std::string_view host,
                               std::string* why) const {
  std::lock_guard lock(mu_);
  if (IsOwn(destination)) {
    if (why != nullptr) *why = destination.ToString() + " is Herald's own API";
    return false;
  }
  for (const Rule& rule : rules_) {
    if (Matches(rule, destination, host)) return true;
  }
  const std::string_view kind = NonPublicKind(destination);
  if (kind.empty()) return true;
  if (why != nullptr) {
    *why = destination.ToString() + " is a " + std::string(kind) +
           " address and not an allowed provider host (--allow-provider-hosts)";
  }
  return false;
}

bool DestinationPolicy::IsAllowedHost(std::string_view host, uint16_t port) const {
  IpEndpoint literal;
  const bool is_literal = IpEndpoint::FromLiteral(host, port, &literal);
  std::lock_guard lock(mu_);
  for (const Rule& rule : rules_) {
    if (rule.port != 0 && rule.port != port) continue;
    if (!rule.name.empty() ? Lower(host) == rule.name
                           : is_literal && Matches(rule, literal, host)) {
      return true;
    }
  }
  return false;
}

Status DestinationPolicy::CheckUrl(std::string_view url, std::string_view field,
                                   std::initializer_list<std::string_view> schemes,
                                   std::string_view plain_scheme, bool plain_for_any_host) const {
  Result<UrlParts> parts = ParseUrl(url, field);
  if (!parts.ok()) return parts.take_error();
  const bool allowed_host = IsAllowedHost(parts->host, parts->port);
  const bool secure = std::find(schemes.begin(), schemes.end(), parts->scheme) != schemes.end();
  std::string accepted;
  for (std::string_view s : schemes) accepted += (accepted.empty() ? "" : " or ") + std::string(s);
  if (!secure && parts->scheme != plain_scheme) {
    return NotAllowed(field, std::string(field) + " must use " + accepted + "://; " +
                                 parts->scheme + ":// is not allowed.");
  }
  if (!secure && !plain_for_any_host && !allowed_host) {
    return NotAllowed(field, std::string(field) + " uses " + std::string(plain_scheme) +
                                 "://, which is allowed only for hosts the operator allows "
                                 "(--allow-provider-hosts); use " +
                                 accepted + "://.");
  }
  IpEndpoint destination;
  std::string host = parts->host;
  if (host == "localhost" || (host.size() > 10 && host.ends_with(".localhost"))) {
    host = "127.0.0.1";  // RFC 6761: always loopback
  }
  if (IpEndpoint::FromLiteral(host, parts->port, &destination)) {
    std::string why;
    if (!Allows(destination, parts->host, &why)) {
      return NotAllowed(field, std::string(field) + " points at " + why + ".");
    }
  }
  return Status::Ok();
}

}  // namespace herald::net

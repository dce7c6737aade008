// Where Herald's outbound client may connect: the guard against server-side request forgery
// through provider settings (a tenant's base_url pointing at a loopback service, the cloud
// metadata address, another host on the private network, or Herald's own API).
//
// A destination is refused when it is one of Herald's own listen addresses, or when its address
// is not globally routable (loopback, private, link-local, carrier-grade NAT, multicast,
// reserved, documentation, IPv4 inside IPv6 of any of these) and no allow rule names it. Allow
// rules are the operator's (`--allow-provider-hosts`): a host name, an IP address or a CIDR
// network, each with an optional port, e.g. "127.0.0.1:9090,10.2.0.0/16,sim.internal:443".
//
// The check is applied twice: to a URL when provider settings are stored (CheckUrl: scheme,
// literal address, and plain http only for allowed hosts), and to the address actually
// connected to, after name resolution (Allows), so a name that resolves to a refused address
// is refused too.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace herald::net {

// How a refused connection's error text starts (HttpResponse::error, SmtpResult::error), in
// both the HTTP/2 client and libcurl's.
inline constexpr std::string_view kDestinationRefused =
    "Connection refused by Herald's provider destination policy: ";

// An IP address and port in network terms (family AF_INET or AF_INET6; IPv4 in bytes[0..3]).
struct IpEndpoint {
  int family = AF_INET;
  std::array<uint8_t, 16> bytes{};
  uint16_t port = 0;

  static bool FromSockaddr(const sockaddr* address, IpEndpoint* out);
  // An IP literal (IPv6 with or without brackets); false for anything else.
  static bool FromLiteral(std::string_view host, uint16_t port, IpEndpoint* out);
  std::string ToString() const;  // "127.0.0.1:8080", "[::1]:8080"
};

// The parts of a URL the policy looks at.
struct UrlParts {
  std::string scheme;  // lower-cased
  std::string host;    // without brackets
  uint16_t port = 0;   // the scheme's default when none is given
};
// kInvalid "invalid_url" for anything that is not scheme://host[:port][/...] without user info.
Result<UrlParts> ParseUrl(std::string_view url, std::string_view field);

class DestinationPolicy {
 public:
  // kInvalid "invalid_allow_rule" naming the entry that cannot be read.
  static Result<DestinationPolicy> Parse(std::string_view allow_list);

  DestinationPolicy() = default;
  DestinationPolicy(const DestinationPolicy& other);
  DestinationPolicy& operator=(const DestinationPolicy& other);

  // Adds allow rules (the same syntax as Parse), e.g. the simulator's address.
  Status Allow(std::string_view allow_list);
  // Herald's own listen address: refused always. An unspecified address (0.0.0.0, ::) stands
  // for every local address on that port (loopback and each interface's).
  void DenyOwnEndpoint(const IpEndpoint& endpoint);

  // The connect-time check; `host` is the URL's host as written (name rules match it).
  // On refusal, *why says why ("127.0.0.1:8080 is a loopback address").
  bool Allows(const IpEndpoint& destination, std::string_view host, std::string* why) const;
  // The store-time check of a provider URL. `schemes` lists the secure schemes the field may
  // use (e.g. {"https"}); `plain_scheme` ("http", "smtp") is accepted only for allowed hosts,
  // or for any host when `plain_for_any_host` (SMTP with STARTTLS). kInvalid
  // "provider_url_not_allowed" naming `field`.
  Status CheckUrl(std::string_view url, std::string_view field,
                  std::initializer_list<std::string_view> schemes, std::string_view plain_scheme,
                  bool plain_for_any_host = false) const;
  // True when an allow rule names this host (by name or literal address) on this port.
  bool IsAllowedHost(std::string_view host, uint16_t port) const;

 private:
  struct Rule {
    std::string name;  // lower-cased host name, or "" for an address rule
    IpEndpoint network;
    int prefix = 0;     // bits of `network` that must match
    uint16_t port = 0;  // 0 = any port
  };
  static Result<Rule> ParseRule(std::string_view entry);
  bool Matches(const Rule& rule, const IpEndpoint& destination, std::string_view host) const;
  bool IsOwn(const IpEndpoint& destination) const;

  mutable std::mutex mu_;  // guards own_ (set after the listener is bound)
  std::vector<Rule> rules_;
  std::vector<IpEndpoint> own_;
};

// Why an address is not globally routable ("loopback", "private", "link-local", ...), or ""
// when it is.
std::string_view NonPublicKind(const IpEndpoint& address);

}  // namespace herald::net

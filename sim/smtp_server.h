// SMTP submission as the simulator speaks it (RFC 5321 subset): EHLO/HELO (advertising SIZE,
// 8BITMIME, PIPELINING, ENHANCEDSTATUSCODES, AUTH PLAIN LOGIN and, when TLS is configured,
// STARTTLS), STARTTLS, AUTH PLAIN/LOGIN (any credentials are accepted; AUTH is optional),
// MAIL FROM, RCPT TO (550 5.1.1 for the fault config's invalid addresses), DATA up to
// <CRLF>.<CRLF> with dot-unstuffing, RSET, NOOP, VRFY, HELP, QUIT.
//
// One message is recorded per accepted recipient: title = Subject, body = the text body,
// id = the queue id answered ("250 2.0.0 Ok queued as <id>"), delivery id = the
// X-Herald-Delivery-Id header, else the Message-ID; duplicates count per (delivery id,
// recipient). Faults act on the final DATA reply: outage → 421 and close (also at connect),
// throttle → 451 4.7.1, error → `status` when it is 400..599, else 451 4.3.0; latency delays
// the final reply; timeout_after_accept records the message and never replies.
//
// The entry point is ServeSmtpConnection in transport.h; this header only names the limits.
#pragma once

#include <cstddef>

namespace herald::sim {

inline constexpr size_t kSmtpMaxMessageBytes = 10 * 1024 * 1024;  // advertised as SIZE
inline constexpr size_t kSmtpMaxRecipients = 1000;

}  // namespace herald::sim

// clang-format off
#include <utility>  // before Boost 1.74's Asio headers (GCC 12)
// clang-format on

#include "sim/smtp_server.h"

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "sim/mail_parse.h"
#include "sim/transport.h"

namespace herald::sim {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;

constexpr size_t kMaxLine = 64 * 1024;
constexpr std::string_view kGreeting = "220 herald-sim ESMTP Herald provider simulator";
constexpr std::string_view kOutage =
    "421 4.3.2 Service not available, closing transmission channel";

enum class Outcome { kClosed, kStartTls };

struct Session {
  SimState& state;
  asio::ssl::context* tls;
  bool tls_active = false;
  bool greeted = false;
  bool mail = false;
  std::vector<std::string> rcpts;
  void Reset() {
    mail = false;
    rcpts.clear();
  }
};

std::string Upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "FROM:<a@b> SIZE=10" with prefix "FROM:" → the address between the brackets (brackets are
// optional); nullopt on bad syntax. `params` gets what follows.
std::optional<std::string> PathArgument(std::string_view arg, std::string_view prefix,
                                        std::string_view& params) {
  if (Upper(arg.substr(0, prefix.size())) != prefix) return std::nullopt;
  arg = Trim(arg.substr(prefix.size()));
  std::string_view address;
  if (!arg.empty() && arg.front() == '<') {
    size_t close = arg.find('>');
    if (close == std::string_view::npos) return std::nullopt;
    address = arg.substr(1, close - 1);
    params = Trim(arg.substr(close + 1));
  } else {
    size_t space = arg.find(' ');
    address = arg.substr(0, space);
    params = space == std::string_view::npos ? std::string_view() : Trim(arg.substr(space));
  }
  if (address.find_first_of(" \t<>") != std::string_view::npos) return std::nullopt;
  return std::string(address);
}

template <class Stream>
awaitable<bool> Reply(Stream& stream, std::string text) {
  text += "\r\n";
  error_code ec;
  co_await asio::async_write(stream, asio::buffer(text), asio::redirect_error(use_awaitable, ec));
  co_return !ec;
}

// The next line without its CRLF (or bare LF); nullopt when the peer went or the line is longer
// than `max`.
template <class Stream>
awaitable<std::optional<std::string>> ReadLine(Stream& stream, std::string& in) {
  error_code ec;
  size_t n = co_await asio::async_read_until(stream, asio::dynamic_buffer(in, kMaxLine), '\n',
                                             asio::redirect_error(use_awaitable, ec));
  if (ec) co_return std::nullopt;
  std::string line = in.substr(0, n - 1);
  in.erase(0, n);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  co_return line;
}

template <class Stream>
awaitable<void> DrainUntilClosed(Stream& stream) {
  std::array<char, 512> sink;
  for (;;) {
    error_code ec;
    co_await stream.async_read_some(asio::buffer(sink), asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
  }
}

std::string EhloReply(const Session& s, std::string_view client) {
  std::string r = "250-herald-sim greets " + std::string(client) + "\r\n";
  r += "250-PIPELINING\r\n250-SIZE " + std::to_string(kSmtpMaxMessageBytes) + "\r\n";
  r += "250-8BITMIME\r\n";
  if (s.tls != nullptr && !s.tls_active) r += "250-STARTTLS\r\n";
  r += "250-AUTH PLAIN LOGIN\r\n250 ENHANCEDSTATUSCODES";
  return r;
}

// AUTH PLAIN / LOGIN: reads the exchange and accepts any well-formed credentials.
template <class Stream>
awaitable<std::optional<std::string>> Authenticate(Stream& stream, std::string& in,
                                                   std::string_view arg) {
  std::string mechanism = Upper(arg.substr(0, arg.find(' ')));
  std::string_view initial = arg.find(' ') == std::string_view::npos
                                 ? std::string_view()
                                 : Trim(arg.substr(arg.find(' ')));
  std::vector<std::string> answers;
  if (!initial.empty()) answers.emplace_back(initial);
  size_t needed = mechanism == "PLAIN" ? 1 : mechanism == "LOGIN" ? 2 : 0;
  if (needed == 0) co_return "504 5.5.4 Unrecognized authentication type";
  while (answers.size() < needed) {
    std::string prompt = mechanism == "PLAIN" ? "334 "
                         : answers.empty()    ? "334 VXNlcm5hbWU6"  // "Username:"
                                              : "334 UGFzc3dvcmQ6";    // "Password:"
    if (!co_await Reply(stream, prompt)) co_return std::nullopt;
    auto line = co_await ReadLine(stream, in);
    if (!line) co_return std::nullopt;
    if (*line == "*") co_return "501 5.7.0 Authentication aborted";
    answers.push_back(std::move(*line));
  }
  std::string decoded;
  for (const std::string& a : answers) {
    if (a != "=" && !Base64Decode(a, decoded)) co_return "501 5.5.2 Cannot decode response";
  }
  co_return "235 2.7.0 Authentication successful";
}

// After DATA's 354: reads to <CRLF>.<CRLF>, applies the faults and records. Returns false when
// the connection must end.
template <class Stream>
awaitable<bool> ReceiveData(Stream& stream, std::string& in, Session& s) {
  std::string message;
  bool too_big = false;
  for (;;) {
    auto line = co_await ReadLine(stream, in);
    if (!line) co_return false;
    if (*line == ".") break;
    std::string_view text = *line;
    if (!text.empty() && text.front() == '.') text.remove_prefix(1);  // dot-unstuffing
    if (message.size() + text.size() + 2 > kSmtpMaxMessageBytes) {
      too_big = true;
      continue;
    }
    message.append(text);
    message += "\r\n";
  }
  const auto n = static_cast<uint64_t>(s.rcpts.size());
  auto faults = s.state.faults.Get(Provider::kSmtp);
  std::string reply;
  bool close = false;
  if (too_big) {
    reply = "552 5.3.4 Message size exceeds fixed maximum message size";
    s.state.record.Refuse(Provider::kSmtp, n);
  } else if (faults->outage) {
    reply = std::string(kOutage);
    close = true;
    s.state.record.Refuse(Provider::kSmtp, n);
  } else {
    switch (RollFaults(*faults)) {
      case FaultRoll::kThrottle:
        reply = "451 4.7.1 Rate limit exceeded, try again later";
        s.state.record.Refuse(Provider::kSmtp, n);
        break;
      case FaultRoll::kError: {
        int code = faults->status >= 400 && faults->status <= 599 ? faults->status : 451;
        reply = std::to_string(code) + (code == 535 ? " 5.7.8 Authentication credentials invalid"
                                        : code >= 500
                                            ? " 5.3.0 Internal error, message not accepted"
                                            : " 4.3.0 Temporary internal error, try again later");
        s.state.record.Refuse(Provider::kSmtp, n);
        break;
      }
      case FaultRoll::kNone: {
        ParsedMail mail = ParseMail(message);
        std::string queue_id = Upper(RandomHex(12));
        const std::string& delivery_id =
            mail.delivery_id.empty() ? mail.message_id : mail.delivery_id;
        const UnixMillis now = NowMillis();
        for (const std::string& rcpt : s.rcpts) {
          std::string key = delivery_id.empty()
                                ? ""
                                : delivery_id + "|" + NormalizeAddress(Provider::kSmtp, rcpt);
          s.state.record.Accept(RecordedMessage{Provider::kSmtp, rcpt, queue_id, delivery_id,
                                                mail.subject, mail.body, now},
                                key);
        }
        if (RollTimeoutAfterAccept(*faults)) {
          co_await DrainUntilClosed(stream);
          co_return false;
        }
        reply = "250 2.0.0 Ok queued as " + queue_id;
        break;
      }
    }
  }
  if (faults->latency_ms > 0) {
    asio::steady_timer timer(co_await asio::this_coro::executor,
                             std::chrono::milliseconds(faults->latency_ms));
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  s.Reset();
  co_return co_await Reply(stream, std::move(reply)) && !close;
}

template <class Stream>
awaitable<Outcome> Dialog(Stream& stream, std::string& in, Session& s) {
  for (;;) {
    auto line = co_await ReadLine(stream, in);
    if (!line) co_return Outcome::kClosed;
    std::string_view text = *line;
    size_t space = text.find(' ');
    const std::string verb = Upper(text.substr(0, space));
    const std::string_view arg =
        space == std::string_view::npos ? std::string_view() : Trim(text.substr(space + 1));
    std::string reply;
    if (verb == "EHLO" || verb == "HELO") {
      if (arg.empty()) {
        reply = "501 5.5.4 Syntax: " + verb + " hostname";
      } else {
        s.greeted = true;
        s.Reset();
        reply = verb == "EHLO" ? EhloReply(s, arg) : "250 herald-sim";
      }
    } else if (verb == "STARTTLS") {
      if (s.tls == nullptr) {
        reply = "502 5.5.1 STARTTLS not available";
      } else if (s.tls_active) {
        reply = "503 5.5.1 TLS already active";
      } else {
        if (!co_await Reply(stream, "220 2.0.0 Ready to start TLS")) co_return Outcome::kClosed;
        co_return Outcome::kStartTls;
      }
    } else if (verb == "AUTH") {
      if (!s.greeted) {
        reply = "503 5.5.1 Error: send HELO/EHLO first";
      } else {
        auto r = co_await Authenticate(stream, in, arg);
        if (!r) co_return Outcome::kClosed;
        reply = std::move(*r);
      }
    } else if (verb == "MAIL") {
      std::string_view params;
      auto from = PathArgument(arg, "FROM:", params);
      if (!s.greeted) {
        reply = "503 5.5.1 Error: send HELO/EHLO first";
      } else if (s.mail) {
        reply = "503 5.5.1 Error: nested MAIL command";
      } else if (!from) {
        reply = "501 5.5.4 Syntax: MAIL FROM:<address>";
      } else if (size_t at = Upper(params).find("SIZE=");
                 at != std::string::npos &&
                 std::strtoull(params.data() + at + 5, nullptr, 10) > kSmtpMaxMessageBytes) {
        reply = "552 5.3.4 Message size exceeds fixed limit";
      } else {
        s.mail = true;
        reply = "250 2.1.0 Ok";
      }
    } else if (verb == "RCPT") {
      std::string_view params;
      auto to = PathArgument(arg, "TO:", params);
      if (!s.mail) {
        reply = "503 5.5.1 Error: need MAIL command";
      } else if (!to || to->empty()) {
        reply = "501 5.1.3 Bad recipient address syntax";
      } else if (s.rcpts.size() >= kSmtpMaxRecipients) {
        reply = "452 4.5.3 Error: too many recipients";
      } else if (s.state.faults.Get(Provider::kSmtp)->IsInvalid(Provider::kSmtp, *to)) {
        s.state.record.Refuse(Provider::kSmtp);
        reply = "550 5.1.1 <" + *to + ">: Recipient address rejected: User unknown";
      } else {
        s.rcpts.push_back(std::move(*to));
        reply = "250 2.1.5 Ok";
      }
    } else if (verb == "DATA") {
      if (!arg.empty()) {
        reply = "501 5.5.4 Syntax: DATA";
      } else if (!s.mail) {
        reply = "503 5.5.1 Error: need MAIL command";
      } else if (s.rcpts.empty()) {
        reply = "554 5.5.1 Error: no valid recipients";
      } else {
        if (!co_await Reply(stream, "354 End data with <CR><LF>.<CR><LF>"))
          co_return Outcome::kClosed;
        if (!co_await ReceiveData(stream, in, s)) co_return Outcome::kClosed;
        continue;
      }
    } else if (verb == "RSET") {
      s.Reset();
      reply = "250 2.0.0 Ok";
    } else if (verb == "NOOP") {
      reply = "250 2.0.0 Ok";
    } else if (verb == "VRFY") {
      reply = "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery";
    } else if (verb == "HELP") {
      reply = "214 2.0.0 Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP VRFY QUIT";
    } else if (verb == "QUIT") {
      co_await Reply(stream, "221 2.0.0 Bye");
      co_return Outcome::kClosed;
    } else {
      reply = "502 5.5.2 Error: command not recognized";
    }
    if (!co_await Reply(stream, std::move(reply))) co_return Outcome::kClosed;
  }
}

awaitable<void> Serve(std::unique_ptr<Tcp::socket> socket, asio::ssl::context* tls,
                      SimState& state) {
  Session session{state, tls};
  if (state.faults.Get(Provider::kSmtp)->outage) {
    state.record.Refuse(Provider::kSmtp);
    co_await Reply(*socket, std::string(kOutage));
  } else if (co_await Reply(*socket, std::string(kGreeting))) {
    std::string in;
    Outcome outcome = co_await Dialog(*socket, in, session);
    if (outcome == Outcome::kStartTls) {
      asio::ssl::stream<Tcp::socket&> secure(*socket, *tls);
      error_code ec;
      co_await secure.async_handshake(asio::ssl::stream_base::server,
                                      asio::redirect_error(use_awaitable, ec));
      if (!ec) {
        in.clear();  // RFC 3207: forget anything sent before the handshake
        session.tls_active = true;
        session.greeted = false;
        session.Reset();
        co_await Dialog(secure, in, session);
      }
    }
  }
  error_code ignored;
  socket->shutdown(Tcp::socket::shutdown_both, ignored);
  socket->close(ignored);
}

}  // namespace

void ServeSmtpConnection(Tcp::socket socket, asio::ssl::context* tls, SimState& state) {
  auto executor = socket.get_executor();
  asio::co_spawn(executor, Serve(std::make_unique<Tcp::socket>(std::move(socket)), tls, state),
                 asio::detached);
}

}  // namespace herald::sim

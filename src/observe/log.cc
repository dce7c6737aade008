#include "observe/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>

#include "common/clock.h"

namespace herald::observe {
namespace {

std::atomic<int> g_min_level{static_cast<int>(LogLevel::kInfo)};

// Only held when one write() did not take the whole line (a full pipe, a signal): the rest of
// the line must follow before another thread's line starts.
std::mutex g_write_mu;

std::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 when it is not one.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char c = p[i];
  size_t len;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size() || p[i + 1] < lo || p[i + 1] > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    if ((p[i + k] & 0xC0) != 0x80) return 0;
  }
  return len;
}

// Unquoted field values come from numbers and booleans; std::to_string(double) can still give
// "nan" or "inf", which JSON has no literal for.
bool IsJsonLiteral(std::string_view v) {
  if (v == "true" || v == "false" || v == "null") return true;
  if (v.empty()) return false;
  for (char c : v) {
    if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E')) {
      return false;
    }
  }
  return (v[0] >= '0' && v[0] <= '9') || (v[0] == '-' && v.size() > 1);
}

void WriteLine(const std::string& line) {
  const char* data = line.data();
  size_t left = line.size();
  // The common case: one write() of the whole line, which the kernel does not interleave.
  ssize_t n = ::write(STDERR_FILENO, data, left);
  if (n == static_cast<ssize_t>(left)) return;
  std::lock_guard lock(g_write_mu);
  for (;;) {
    if (n > 0) {
      data += n;
      left -= static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
      return;  // stderr is gone; nothing better to do with a log line
    }
    if (left == 0) return;
    n = ::write(STDERR_FILENO, data, left);
  }
}

}  // namespace

void SetLogLevel(LogLevel level) {
  g_min_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) {
  if (static_cast<int>(level) < g_min_level.load(std::memory_order_relaxed)) return;
  std::string line;
  line.reserve(96 + msg.size() + fields.size() * 32);
  line += "{\"ts\":\"";
  line += FormatRfc3339(NowMillis());
  line += "\",\"level\":\"";
  line += LevelName(level);
  line += "\",\"msg\":";
  line += JsonQuote(msg);
  for (const LogField& f : fields) {
    line += ',';
    line += JsonQuote(f.key);
    line += ':';
    line += f.quoted || !IsJsonLiteral(f.value) ? JsonQuote(f.value) : f.value;
  }
  line += "}\n";
  WriteLine(line);
}

std::string JsonQuote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if (const size_t len = Utf8SequenceLength(s, i); len > 0) {
        out.append(s.substr(i, len));
        i += len;
      } else {
        out += "\\ufffd";  // a byte that is not UTF-8 would make the whole line invalid JSON
        ++i;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
  return out;
}

}  // namespace herald::observe

#include "sim/mail_parse.h"

#include <algorithm>
#include <cctype>
#include <utility>
#include <vector>

#include "sim/routes.h"

namespace herald::sim {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Splits a message (or MIME part) into unfolded headers and the body.
void SplitMessage(std::string_view data, Headers& headers, std::string_view& body) {
  body = {};
  while (!data.empty()) {
    size_t eol = data.find('\n');
    std::string_view line = data.substr(0, eol);
    data = eol == std::string_view::npos ? std::string_view() : data.substr(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      body = data;
      return;
    }
    if ((line.front() == ' ' || line.front() == '\t') && !headers.empty()) {
      headers.back().second += " ";
      headers.back().second += Trim(line);
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    headers.emplace_back(Lower(Trim(line.substr(0, colon))),
                         std::string(Trim(line.substr(colon + 1))));
  }
}

std::string HeaderValue(const Headers& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return {};
}

// The value of a parameter such as boundary="abc" in a Content-Type.
std::string Parameter(std::string_view header, std::string_view name) {
  std::string lower = Lower(header);
  size_t at = lower.find(std::string(name) + "=");
  if (at == std::string::npos) return {};
  std::string_view rest = header.substr(at + name.size() + 1);
  if (!rest.empty() && rest.front() == '"') {
    rest.remove_prefix(1);
    return std::string(rest.substr(0, rest.find('"')));
  }
  return std::string(Trim(rest.substr(0, rest.find(';'))));
}

std::string DecodeBody(std::string_view body, std::string_view encoding) {
  std::string enc = Lower(Trim(encoding));
  if (enc == "quoted-printable") return DecodeQuotedPrintable(body);
  if (enc == "base64") {
    std::string out;
    if (Base64Decode(body, out)) return out;
  }
  return std::string(body);
}

std::string NormalizeText(std::string text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;
    out.push_back(text[i]);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// The text of a body with the given headers: single part, or the first text/plain part of a
// multipart (recursively), else the first part.
std::string TextOf(const Headers& headers, std::string_view body, int depth) {
  std::string type = Lower(HeaderValue(headers, "content-type"));
  if (depth < 4 && type.rfind("multipart/", 0) == 0) {
    std::string boundary = Parameter(HeaderValue(headers, "content-type"), "boundary");
    if (!boundary.empty()) {
      const std::string delimiter = "--" + boundary;
      std::vector<std::string_view> parts;
      size_t pos = body.find(delimiter);
      while (pos != std::string_view::npos) {
        size_t start = body.find('\n', pos);
        if (start == std::string_view::npos || body.substr(pos + delimiter.size(), 2) == "--")
          break;
        size_t next = body.find(delimiter, start);
        std::string_view part = body.substr(
            start + 1, next == std::string_view::npos ? std::string_view::npos : next - start - 1);
        parts.push_back(part);
        pos = next;
      }
      std::string first;
      for (std::string_view part : parts) {
        Headers part_headers;
        std::string_view part_body;
        SplitMessage(part, part_headers, part_body);
        std::string part_type = Lower(HeaderValue(part_headers, "content-type"));
        std::string text = TextOf(part_headers, part_body, depth + 1);
        if (part_type.empty() || part_type.rfind("text/plain", 0) == 0) return text;
        if (first.empty()) first = std::move(text);
      }
      return first;
    }
  }
  return NormalizeText(DecodeBody(body, HeaderValue(headers, "content-transfer-encoding")));
}

}  // namespace

std::string DecodeQuotedPrintable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '=') {
      out.push_back(c);
      continue;
    }
    if (i + 2 < text.size() && text[i + 1] == '\r' && text[i + 2] == '\n') {
      i += 2;  // soft line break
    } else if (i + 1 < text.size() && text[i + 1] == '\n') {
      i += 1;
    } else if (i + 2 < text.size() && Hex(text[i + 1]) >= 0 && Hex(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(Hex(text[i + 1]) * 16 + Hex(text[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string DecodeEncodedWords(std::string_view value) {
  std::string out;
  bool last_was_word = false;
  while (!value.empty()) {
    size_t start = value.find("=?");
    if (start == std::string_view::npos) break;
    // =?charset?X?text?=
    size_t q1 = value.find('?', start + 2);
    size_t q2 = q1 == std::string_view::npos ? q1 : value.find('?', q1 + 1);
    size_t end = q2 == std::string_view::npos ? q2 : value.find("?=", q2 + 1);
    if (end == std::string_view::npos || q2 != q1 + 2) {
      out += value.substr(0, start + 2);
      value.remove_prefix(start + 2);
      last_was_word = false;
      continue;
    }
    std::string_view between = value.substr(0, start);
    bool only_space = Trim(between).empty();
    if (!(last_was_word && only_space)) out += between;  // space between encoded words is dropped
    char mode = static_cast<char>(std::toupper(static_cast<unsigned char>(value[q1 + 1])));
    std::string_view payload = value.substr(q2 + 1, end - q2 - 1);
    std::string decoded;
    if (mode == 'B') {
      if (!Base64Decode(payload, decoded)) decoded = std::string(payload);
    } else {
      std::string q(payload);
      std::replace(q.begin(), q.end(), '_', ' ');
      decoded = DecodeQuotedPrintable(q);
    }
    out += decoded;
    last_was_word = true;
    value.remove_prefix(end + 2);
  }
  out += value;
  return out;
}

ParsedMail ParseMail(std::string_view data) {
  Headers headers;
  std::string_view body;
  SplitMessage(data, headers, body);
  ParsedMail mail;
  mail.subject = DecodeEncodedWords(HeaderValue(headers, "subject"));
  std::string id = HeaderValue(headers, "message-id");
  std::string_view trimmed = Trim(id);
  if (trimmed.size() >= 2 && trimmed.front() == '<' && trimmed.back() == '>') {
    trimmed = trimmed.substr(1, trimmed.size() - 2);
  }
  mail.message_id = std::string(trimmed);
  mail.delivery_id = std::string(Trim(HeaderValue(headers, "x-herald-delivery-id")));
  mail.body = TextOf(headers, body, 0);
  return mail;
}

}  // namespace herald::sim

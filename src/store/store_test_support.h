// Helpers shared by the store's test suites (header-only, tests only): a temporary directory,
// device builders and error formatting.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/result.h"
#include "model/model.h"

namespace herald::store_test {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/herald-store-XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline Device Dev(Channel channel, std::string address) {
  Device d;
  d.channel = channel;
  d.address = std::move(address);
  return d;
}

// A well-formed APNs token (64 lower-case hex characters) derived from n.
inline std::string IosToken(long n) {
  char buf[65];
  std::snprintf(buf, sizeof buf, "%064lx", static_cast<unsigned long>(n) * 2654435761UL + 1);
  return buf;
}

inline std::string ErrorText(const Status& s) {
  return s.ok() ? "ok" : s.error().code + ": " + s.error().message;
}
template <typename T>
std::string ErrorText(const Result<T>& r) {
  return r.ok() ? "ok" : r.error().code + ": " + r.error().message;
}

}  // namespace herald::store_test

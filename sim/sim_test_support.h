// Test support for the simulator's suites (header-only; included by sim/*_test.cc only): an
// in-process simulator per test, real third-party peers run as processes (curl, nghttp,
// h2load, swaks, python3), and ES256 JWTs signed with OpenSSL's C API.
#pragma once

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/crypto.h"
#include "sim/simulator.h"

namespace herald::sim::testing {

using nlohmann::json;

// A 64-hex-character APNs device token.
inline const std::string kDeviceToken(64, 'a');

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

inline std::string ShellQuote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

inline CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) result.output.append(buf.data(), n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

inline bool HaveTool(const std::string& name) {
  return RunCommand("command -v " + name + " >/dev/null").exit_code == 0;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A scratch directory, removed with everything in it at destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/herald-sim-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { RunCommand("rm -rf " + ShellQuote(path_)); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string Write(const std::string& name, std::string_view content) const {
    std::string file = path_ + "/" + name;
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CurlResult {
  int exit_code = -1;  // curl's exit code: 0 ok, 28 timed out, 52 empty reply, 56 recv error
  int status = 0;
  std::string http_version;  // "1.1" or "2"
  double seconds = 0;
  std::string headers;  // raw, as received
  std::string body;
  std::string errors;

  // The value of the last header of that (case-insensitive) name, or "".
  std::string Header(std::string_view name) const {
    std::string found;
    std::istringstream lines(headers);
    std::string line;
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      size_t colon = line.find(':');
      if (colon == std::string::npos || colon != name.size()) continue;
      bool same = true;
      for (size_t i = 0; i < colon; ++i) {
        same = same && std::tolower(static_cast<unsigned char>(line[i])) ==
                           std::tolower(static_cast<unsigned char>(name[i]));
      }
      if (same)
        found = line.substr(colon + 1 + (line.size() > colon + 1 && line[colon + 1] == ' '));
    }
    return found;
  }
  json Json() const { return json::parse(body, nullptr, false); }
};

// Runs curl with `args` (already shell-quoted where needed).
inline CurlResult Curl(const TempDir& dir, const std::string& args) {
  static std::atomic<int> counter{0};  // tests may run curl from several threads
  const std::string tag = std::to_string(++counter);
  const std::string body = dir.File("body" + tag), headers = dir.File("headers" + tag),
                    errors = dir.File("errors" + tag);
  CommandResult r =
      RunCommand("curl -sS -o " + body + " -D " + headers +
                 " -w '%{http_code} %{http_version} %{time_total}' " + args + " 2>" + errors);
  CurlResult out;
  out.exit_code = r.exit_code;
  std::istringstream(r.output) >> out.status >> out.http_version >> out.seconds;
  out.body = ReadFile(body);
  out.headers = ReadFile(headers);
  out.errors = ReadFile(errors);
  return out;
}

// ---- ES256 (APNs provider tokens) ----------------------------------------------------------

class Es256Key {
 public:
  Es256Key() : key_(EVP_EC_gen("P-256"), EVP_PKEY_free) {}
  std::string PublicPem() const {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    PEM_write_bio_PUBKEY(bio.get(), key_.get());
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(n));
  }
  EVP_PKEY* get() const { return key_.get(); }

  // Raw R||S (64 bytes) over `input`.
  std::string Sign(std::string_view input) const {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    size_t len = 0;
    EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get());
    const auto* data = reinterpret_cast<const unsigned char*>(input.data());
    EVP_DigestSign(ctx.get(), nullptr, &len, data, input.size());
    std::vector<unsigned char> der(len);
    EVP_DigestSign(ctx.get(), der.data(), &len, data, input.size());
    const unsigned char* p = der.data();
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len));
    const BIGNUM* r = nullptr;
    const BIGNUM* s = nullptr;
    ECDSA_SIG_get0(sig, &r, &s);
    std::string raw(64, '\0');
    BN_bn2binpad(r, reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(s, reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(sig);
    return raw;
  }

  // header.claims.signature, signed.
  std::string Jwt(const json& header, const json& claims) const {
    std::string input =
        crypto::Base64UrlEncode(header.dump()) + "." + crypto::Base64UrlEncode(claims.dump());
    return input + "." + crypto::Base64UrlEncode(Sign(input));
  }

  std::string ApnsJwt(const std::string& kid, int64_t iat,
                      const std::string& team = "TEAM123456") const {
    return Jwt({{"alg", "ES256"}, {"kid", kid}}, {{"iss", team}, {"iat", iat}});
  }

 private:
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key_;
};

inline int64_t Now() { return static_cast<int64_t>(time(nullptr)); }

// ---- the simulator under test -----------------------------------------------------------------

class SimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SimulatorOptions options;
    options.listen = "127.0.0.1:0";
    options.smtp_listen = "127.0.0.1:0";
    options.tls_listen = "127.0.0.1:0";
    options.threads = 2;
    sim_ = MakeSimulator(options);
    Status started = sim_->Start();
    ASSERT_TRUE(started.ok()) << started.error().message;
    base_ = "http://127.0.0.1:" + std::to_string(sim_->port());
    tls_base_ = "https://localhost:" + std::to_string(sim_->tls_port());
    ca_file_ = dir_.Write("ca.pem", sim_->tls_cert_pem());
  }
  void TearDown() override {
    if (sim_) sim_->Stop();
  }

  // curl against the plain port; `flags` e.g. "--http2-prior-knowledge -X POST".
  CurlResult Http(const std::string& flags, const std::string& path) {
    return Curl(dir_, flags + " " + ShellQuote(base_ + path));
  }
  CurlResult H2(const std::string& flags, const std::string& path) {
    return Http("--http2-prior-knowledge " + flags, path);
  }
  // A body as a file argument: --data-binary @file.
  std::string Data(std::string_view body) {
    static std::atomic<int> counter{0};
    return "--data-binary @" + dir_.Write("data" + std::to_string(++counter), body);
  }
  json Stats() { return Http("", "/sim/stats").Json()["providers"]; }
  json Messages(const std::string& query = "") {
    return Http("", "/sim/messages" + query).Json()["messages"];
  }
  void PutFaults(const std::string& provider, const json& faults) {
    CurlResult r = Http("-X PUT " + Data(faults.dump()), "/sim/faults/" + provider);
    ASSERT_EQ(r.status, 200) << r.body;
  }
  // Registers `key` for `kid` so the simulator verifies signatures.
  void RegisterApnsKey(const std::string& kid, const Es256Key& key) {
    CurlResult r = Http("-X PUT " + Data(json{{"public_key_pem", key.PublicPem()}}.dump()),
                        "/sim/apns/keys/" + kid);
    ASSERT_EQ(r.status, 200) << r.body;
  }
  // APNs push over h2c with the usual headers; `extra` adds curl flags.
  CurlResult ApnsPush(
      const std::string& jwt, const std::string& extra = "",
      const std::string& token = kDeviceToken,
      const std::string& payload = R"({"aps":{"alert":{"title":"Hello","body":"World"}}})") {
    std::string auth = jwt.empty() ? "" : "-H " + ShellQuote("authorization: bearer " + jwt) + " ";
    return H2(auth + "-H 'apns-topic: com.example.app' -H 'apns-push-type: alert' " + extra + " " +
                  Data(payload),
              "/3/device/" + token);
  }

  TempDir dir_;
  std::unique_ptr<Simulator> sim_;
  std::string base_;
  std::string tls_base_;
  std::string ca_file_;
};

}  // namespace herald::sim::testing

// TLS material for the simulator's listeners: a self-signed P-256 certificate made in memory
// (CN and SAN localhost, 127.0.0.1, ::1; CA:TRUE so clients can trust it directly as their
// ca_file) or PEM files from disk, and the OpenSSL server setup (TLS 1.2+, ALPN preferring "h2"
// over "http/1.1"). OpenSSL only, no Asio.
#pragma once

#include <openssl/ssl.h>

#include <string>

#include "common/result.h"

namespace herald::sim {

struct TlsMaterial {
  std::string cert_pem;  // the certificate chain, leaf first
  std::string key_pem;   // PKCS#8
};

Result<TlsMaterial> MakeSelfSignedCertificate();
Result<TlsMaterial> ReadTlsFiles(const std::string& cert_file, const std::string& key_file);

// Loads `material` into `ctx` and installs the ALPN selection callback.
Status ConfigureServerTls(SSL_CTX* ctx, const TlsMaterial& material);

}  // namespace herald::sim

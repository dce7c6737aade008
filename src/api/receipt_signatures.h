// Internal to src/api: how the delivery receipts of each provider are signed, and the form
// decoding they need. Pure functions (OpenSSL underneath); thread-safe. Every check compares in
// constant time and treats anything unparsable as a bad signature.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herald::api {

using FormFields = std::vector<std::pair<std::string, std::string>>;

// application/x-www-form-urlencoded (also a query string): '+' is a space, %XX escapes; a
// malformed escape is kept literally. Order is kept.
FormFields ParseForm(std::string_view text);
std::string_view FormValue(const FormFields& form, std::string_view name);  // "" when absent

std::string Base64Encode(std::string_view data);  // standard alphabet, padded

// Twilio: X-Twilio-Signature = Base64(HMAC-SHA1(auth token, full URL + every POST parameter's
// name and value, sorted by name)).
std::string TwilioSignature(std::string_view auth_token, std::string_view url,
                            const FormFields& params);
bool VerifyTwilio(std::string_view auth_token, std::string_view url, const FormFields& params,
                  std::string_view signature);

// Vonage (SMS API signed webhooks, "SHA-256 HMAC" method): sig = hex(HMAC-SHA256(signature
// secret, "&k1=v1&k2=v2..." over every parameter but sig, sorted by name, with '&' and '=' in
// values replaced by '_')). Compared without regard to case.
std::string VonageSignature(std::string_view secret, const FormFields& params);
bool VerifyVonage(std::string_view secret, const FormFields& params, std::string_view sig);

// SendGrid (signed Event Webhook): the X-Twilio-Email-Event-Webhook-Signature header is a
// base64 DER ECDSA (P-256, SHA-256) signature of timestamp header + raw body, checked with the
// webhook's public key as SendGrid shows it (base64 DER SubjectPublicKeyInfo, or PEM).
bool VerifySendGrid(std::string_view public_key, std::string_view timestamp, std::string_view body,
                    std::string_view signature);

}  // namespace herald::api

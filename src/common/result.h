// Errors as values across module borders (see STYLE.md): a Result<T> holds either a value or an
// Error whose kind maps to an HTTP status and whose code, message and field reach the client.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace herald {

enum class ErrorKind {
  kMalformed,        // 400: the request cannot be read
  kUnauthenticated,  // 401
  kForbidden,        // 403: authenticated, but a scope is missing
  kNotFound,         // 404 (also for another tenant's ids)
  kConflict,         // 409
  kTooLarge,         // 413
  kInvalid,          // 422: well-formed but breaks a rule
  kRateLimited,      // 429
  kUnavailable,      // 503: overloaded or storage down
  kInternal,         // 500
};

struct Error {
  ErrorKind kind = ErrorKind::kInternal;
  std::string code;     // stable snake_case code, e.g. "invalid_email"
  std::string message;  // a sentence a person can act on
  std::string field;    // JSON path of the field at fault, may be empty
};

inline Error MakeError(ErrorKind kind, std::string code, std::string message,
                       std::string field = {}) {
  return Error{kind, std::move(code), std::move(message), std::move(field)};
}

// HTTP status for an error kind.
int HttpStatus(ErrorKind kind);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }
  const Error& error() const { return std::get<1>(v_); }
  Error&& take_error() { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

// A Result with no value.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error)
      : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)
  static Status Ok() { return {}; }
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }
  Error&& take_error() { return std::move(error_); }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace herald

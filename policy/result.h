#pragma once

// Result<T>: a value or an Error. The expected-like type every function that can fail on
// outside input returns (STYLE.md "Errors"). It sits at the bottom of the dependency graph
// so that policy/ and everything above it can use it. Thread: any; it is a plain value.

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace palisade {

enum class ErrorCode {
  kInvalidArgument,  // the input breaks a documented rule
  kUnsupported,      // valid elsewhere (e.g. in Istio) but not supported here
  kNotFound,
  kIo,
};

struct Error {
  ErrorCode code = ErrorCode::kInvalidArgument;
  std::string message;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

// For functions that return nothing on success.
struct Ok {};
using Status = Result<Ok>;

inline Error invalidArgument(std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message)};
}
inline Error unsupported(std::string message) {
  return Error{ErrorCode::kUnsupported, std::move(message)};
}

}  // namespace palisade

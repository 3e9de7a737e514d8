// Status and Result<T>: the error currency at module boundaries.
//
// Expected failures (network, not found, conflict, rate limits, I/O) travel as a Status with a
// Kind the caller can branch on, never as exceptions. Exceptions are reserved for programming
// errors and start-up configuration errors (see config/config.h).
//
// A Status is cheap to copy when ok(). Result<T> holds either a T or a non-ok Status; reading
// the wrong side is a programming error (asserted). Thread safety: plain values, no sharing.
#pragma once

#include <cassert>
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace filesync {

class Status {
 public:
  // Stable classification of failures. Workers decide retry versus give-up from the kind.
  enum class Kind {
    kOk = 0,
    kNotFound,         // the path/session does not exist
    kConflict,         // something else is in the way (file where a folder is needed, ...)
    kRateLimited,      // back off for retry_after(), then retry
    kTransient,        // network error, 5xx, timeout: retry with backoff
    kAuth,             // token invalid/expired/revoked: stop and tell the user
    kInvalidArgument,  // the request is wrong (a bug or a name the cloud refuses): do not retry
    kIo,               // local filesystem error
    kChanged,          // a local file changed while it was read: try again next pass
    kCancelled,        // shutdown was requested
    kPermanent,        // anything else that will not succeed by retrying
  };

  Status() = default;
  static Status Ok() { return {}; }
  static Status NotFound(std::string msg) { return {Kind::kNotFound, std::move(msg)}; }
  static Status Conflict(std::string msg) { return {Kind::kConflict, std::move(msg)}; }
  static Status RateLimited(std::string msg, std::chrono::milliseconds retry_after) {
    Status s{Kind::kRateLimited, std::move(msg)};
    s.retry_after_ = retry_after;
    return s;
  }
  static Status Transient(std::string msg) { return {Kind::kTransient, std::move(msg)}; }
  static Status Auth(std::string msg) { return {Kind::kAuth, std::move(msg)}; }
  static Status InvalidArgument(std::string msg) {
    return {Kind::kInvalidArgument, std::move(msg)};
  }
  static Status Io(std::string msg) { return {Kind::kIo, std::move(msg)}; }
  static Status Changed(std::string msg) { return {Kind::kChanged, std::move(msg)}; }
  static Status Cancelled(std::string msg) { return {Kind::kCancelled, std::move(msg)}; }
  static Status Permanent(std::string msg) { return {Kind::kPermanent, std::move(msg)}; }

  [[nodiscard]] bool ok() const { return kind_ == Kind::kOk; }
  [[nodiscard]] Kind kind() const { return kind_; }
  [[nodiscard]] const std::string& message() const { return message_; }
  // Set for kRateLimited (and for transient errors that carried a Retry-After).
  [[nodiscard]] std::optional<std::chrono::milliseconds> retry_after() const {
    return retry_after_;
  }
  Status& set_retry_after(std::chrono::milliseconds d) {
    retry_after_ = d;
    return *this;
  }

  // True for failures that may succeed when simply tried again later.
  [[nodiscard]] bool IsRetryable() const {
    return kind_ == Kind::kRateLimited || kind_ == Kind::kTransient;
  }

  // "not_found: /a/b.txt" style, for logs and status output.
  [[nodiscard]] std::string ToString() const;
  [[nodiscard]] static const char* KindName(Kind kind);

 private:
  Status(Kind kind, std::string msg) : kind_(kind), message_(std::move(msg)) {}

  Kind kind_ = Kind::kOk;
  std::string message_;
  std::optional<std::chrono::milliseconds> retry_after_;
};

// Either a value or a non-ok Status.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result built from an ok Status has no value");
  }

  [[nodiscard]] bool ok() const { return std::holds_alternative<T>(v_); }
  [[nodiscard]] const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & {
    assert(ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace filesync

// Status: the outcome of every fallible kvtier call. No exception crosses the public API.
//
// An OK status carries no message and costs a byte-sized code plus an empty string (no
// allocation). An error carries a code a program can branch on and a message a person can read.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace kvtier {

enum class StatusCode : uint8_t {
  kOk = 0,
  kInvalidArgument,     // the caller passed something malformed: fix the call
  kNotFound,            // the thing asked for does not exist (a miss is usually not an error)
  kAlreadyExists,       // creating what exists
  kResourceExhausted,   // a tier, a table or a disk is full; retry later or elsewhere
  kVersionMismatch,     // a segment, file or message of another format version
  kCorruption,          // stored bytes fail their checksum or their structure
  kIOError,             // the operating system refused (errno is in the message)
  kUnavailable,         // a peer or the daemon cannot be reached right now
  kFailedPrecondition,  // the system is not in a state that allows this call
  kInternal,            // a kvtier bug: an invariant did not hold
  kNotAdmitted,         // the node chose not to cache this block (a put): keep your own copy, go on
};

// Stable lower-case name of a code, e.g. "invalid_argument", for logs and metrics labels.
std::string_view status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status invalid_argument(std::string msg) { return {StatusCode::kInvalidArgument, std::move(msg)}; }
  static Status not_found(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
  static Status already_exists(std::string msg) { return {StatusCode::kAlreadyExists, std::move(msg)}; }
  static Status resource_exhausted(std::string msg) { return {StatusCode::kResourceExhausted, std::move(msg)}; }
  static Status version_mismatch(std::string msg) { return {StatusCode::kVersionMismatch, std::move(msg)}; }
  static Status corruption(std::string msg) { return {StatusCode::kCorruption, std::move(msg)}; }
  static Status io_error(std::string msg) { return {StatusCode::kIOError, std::move(msg)}; }
  static Status unavailable(std::string msg) { return {StatusCode::kUnavailable, std::move(msg)}; }
  static Status failed_precondition(std::string msg) { return {StatusCode::kFailedPrecondition, std::move(msg)}; }
  static Status internal(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }
  static Status not_admitted(std::string msg) { return {StatusCode::kNotAdmitted, std::move(msg)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "ok", or "<code name>: <message>".
  std::string to_string() const;

  // Prefixes the message with what the caller was doing: "opening /x: no such file".
  Status with_context(std::string_view context) const;

  friend bool operator==(const Status& a, const Status& b) = default;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline std::ostream& operator<<(std::ostream& os, const Status& s) { return os << s.to_string(); }

}  // namespace kvtier

// Returns from the enclosing function when `expr` yields a non-OK Status.
#define KVTIER_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::kvtier::Status kvtier_status_ = (expr);        \
    if (!kvtier_status_.ok()) return kvtier_status_; \
  } while (false)

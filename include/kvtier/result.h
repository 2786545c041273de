// Result<T>: a value or the Status that explains why there is none (an expected<T, Status>).
#pragma once

#include <cstdlib>
#include <optional>
#include <type_traits>
#include <utility>

#include "kvtier/status.h"

namespace kvtier {

template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Status>, "Result<Status> is meaningless; return Status");

 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT(google-explicit-constructor): value is the common path
  Result(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    // An OK status without a value would be a Result that is neither; treat it as a kvtier bug.
    if (status_.ok()) status_ = Status::internal("Result constructed from an OK status without a value");
  }

  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Status& status() const { return status_; }

  // Accessing the value of a failed Result is a programming error: abort loudly rather than
  // hand out garbage.
  T& value() & {
    check();
    return *value_;
  }
  const T& value() const& {
    check();
    return *value_;
  }
  T&& value() && {
    check();
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  template <typename U>
  T value_or(U&& fallback) const& {
    return ok() ? *value_ : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  void check() const {
    if (!value_) std::abort();
  }

  std::optional<T> value_;
  Status status_;
};

}  // namespace kvtier

// Evaluates `rexpr` (a Result); on error returns its Status, otherwise moves the value into `lhs`.
#define KVTIER_ASSIGN_OR_RETURN(lhs, rexpr) \
  KVTIER_ASSIGN_OR_RETURN_IMPL_(KVTIER_CONCAT_(kvtier_r_, __LINE__), lhs, rexpr)
#define KVTIER_CONCAT_INNER_(a, b) a##b
#define KVTIER_CONCAT_(a, b) KVTIER_CONCAT_INNER_(a, b)
// NOLINTBEGIN(bugprone-macro-parentheses): lhs is a declaration and cannot be parenthesized.
#define KVTIER_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                  \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)

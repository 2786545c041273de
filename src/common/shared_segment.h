// SharedSegment: a named shared-memory object (/dev/shm/<name>) mapped into this process.
// The index and the host arena are both laid out inside one.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "kvtier/result.h"

namespace kvtier {

// Layouts inside segments put each part on its own page.
inline constexpr uint64_t kPageBytes = 4096;
constexpr uint64_t round_up(uint64_t value, uint64_t align) { return (value + align - 1) / align * align; }

class SharedSegment {
 public:
  // Creates it with every page reserved up front (a full /dev/shm is resource_exhausted here,
  // not a SIGBUS on a later write); already_exists if the name is taken. Reads as zeros.
  static Result<std::unique_ptr<SharedSegment>> create(std::string_view name, uint64_t bytes);
  static Result<std::unique_ptr<SharedSegment>> attach(std::string_view name);
  // attach() of a segment whose header starts with a nonzero 64-bit magic, which another process
  // may be creating right now: while it is smaller than `header_bytes` or its magic still reads
  // zero (between the creator's create and its header write), waits up to `wait`, then attaches
  // what is there for the caller to judge.
  static Result<std::unique_ptr<SharedSegment>> attach_created(std::string_view name, uint64_t header_bytes,
                                                               std::chrono::milliseconds wait);
  static Status destroy(std::string_view name);
  // [A-Za-z0-9._-], 1..200 characters.
  static Status validate_name(std::string_view name);

  ~SharedSegment();
  SharedSegment(const SharedSegment&) = delete;
  SharedSegment& operator=(const SharedSegment&) = delete;

  void* address() const;
  uint64_t size() const;
  const std::string& name() const { return name_; }

 private:
  SharedSegment() = default;
  struct Mapping;
  std::string name_;
  std::unique_ptr<Mapping> mapping_;
};

}  // namespace kvtier

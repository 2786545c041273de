#include "common/shared_segment.h"

#include <fcntl.h>
#include <fmt/format.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <system_error>
#include <thread>

namespace kvtier {
namespace bip = boost::interprocess;

struct SharedSegment::Mapping {
  bip::shared_memory_object shm;
  bip::mapped_region region;
};

namespace {

Status from_boost(const bip::interprocess_exception& e, std::string_view what, std::string_view name) {
  const std::string msg = fmt::format("{} shared-memory segment '{}': {}", what, name, e.what());
  switch (e.get_error_code()) {
    case bip::already_exists_error: return Status::already_exists(msg);
    case bip::not_found_error: return Status::not_found(msg);
    case bip::out_of_space_error: return Status::resource_exhausted(msg);
    default: return Status::io_error(msg);
  }
}

}  // namespace

SharedSegment::~SharedSegment() = default;

Status SharedSegment::validate_name(std::string_view name) {
  if (name.empty() || name.size() > 200) {
    return Status::invalid_argument("shared-memory segment name must be 1..200 characters");
  }
  for (char c : name) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return Status::invalid_argument(fmt::format("segment name '{}' may hold only [A-Za-z0-9._-]", name));
  }
  return {};
}

Result<std::unique_ptr<SharedSegment>> SharedSegment::create(std::string_view name, uint64_t bytes) {
  KVTIER_RETURN_IF_ERROR(validate_name(name));
  std::unique_ptr<SharedSegment> seg(new SharedSegment());
  seg->name_ = std::string(name);
  seg->mapping_ = std::make_unique<Mapping>();
  const char* cname = seg->name_.c_str();
  try {
    seg->mapping_->shm = bip::shared_memory_object(bip::create_only, cname, bip::read_write, bip::permissions(0660));
    seg->mapping_->shm.truncate(static_cast<bip::offset_t>(bytes));
    const int rc = posix_fallocate(seg->mapping_->shm.get_mapping_handle().handle, 0, static_cast<off_t>(bytes));
    if (rc != 0) {
      bip::shared_memory_object::remove(cname);
      return Status::resource_exhausted(fmt::format("reserving {} bytes for shared-memory segment '{}': {}", bytes,
                                                    name, std::generic_category().message(rc)));
    }
    seg->mapping_->region = bip::mapped_region(seg->mapping_->shm, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() != bip::already_exists_error) bip::shared_memory_object::remove(cname);
    return from_boost(e, "creating", name);
  }
  return seg;
}

Result<std::unique_ptr<SharedSegment>> SharedSegment::attach(std::string_view name) {
  KVTIER_RETURN_IF_ERROR(validate_name(name));
  std::unique_ptr<SharedSegment> seg(new SharedSegment());
  seg->name_ = std::string(name);
  seg->mapping_ = std::make_unique<Mapping>();
  try {
    seg->mapping_->shm = bip::shared_memory_object(bip::open_only, seg->name_.c_str(), bip::read_write);
    seg->mapping_->region = bip::mapped_region(seg->mapping_->shm, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    return from_boost(e, "attaching to", name);
  }
  return seg;
}

Result<std::unique_ptr<SharedSegment>> SharedSegment::attach_created(std::string_view name, uint64_t header_bytes,
                                                                     std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    auto seg = attach(name);
    // Not there: nothing to wait for. Otherwise mapping an object not yet sized fails (EINVAL).
    if (!seg.ok() && seg.status().code() == StatusCode::kNotFound) return seg;
    const bool written =
        seg.ok() && (*seg)->size() >= header_bytes &&
        __atomic_load_n(static_cast<const uint64_t*>((*seg)->address()), __ATOMIC_ACQUIRE) != 0;  // the magic
    if (written || std::chrono::steady_clock::now() >= deadline) return seg;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

Status SharedSegment::destroy(std::string_view name) {
  KVTIER_RETURN_IF_ERROR(validate_name(name));
  if (!bip::shared_memory_object::remove(std::string(name).c_str())) {
    return Status::not_found(fmt::format("no shared-memory segment named '{}'", name));
  }
  return {};
}

void* SharedSegment::address() const { return mapping_->region.get_address(); }
uint64_t SharedSegment::size() const { return static_cast<uint64_t>(mapping_->region.get_size()); }

}  // namespace kvtier

// A RocksDB file system that remembers, for every file written through it, how much of it was
// synced; drop_unsynced() then cuts each such file back to that length, as a power cut would
// (the page cache's unsynced writes are lost, what was synced stays). For the SSD catalogue's
// durability tests: RocksDB is opened on NewCompositeEnv(this) through SsdStoreOptions::metadata_env.
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace kvtier::ssd::testing {

class UnsyncedDroppingFs final : public rocksdb::FileSystemWrapper {
 public:
  UnsyncedDroppingFs() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "UnsyncedDroppingFs"; }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* d) override {
    return track(f, target()->NewWritableFile(f, o, r, d), r);
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* d) override {
    return track(f, target()->ReopenWritableFile(f, o, r, d), r);
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* d) override {
    forget(old);
    return track(f, target()->ReuseWritableFile(f, old, o, r, d), r);
  }
  rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* d) override {
    rocksdb::IOStatus s = target()->RenameFile(from, to, o, d);
    if (s.ok()) {
      std::lock_guard lock(mu_);
      auto it = files_.find(from);
      files_.erase(to);
      if (it != files_.end()) {
        files_[to] = it->second;
        files_.erase(it);
      }
    }
    return s;
  }
  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    forget(f);
    return target()->DeleteFile(f, o, d);
  }

  // Cuts every file written through this file system back to its synced length. Call it with
  // the database closed (or its process gone).
  void drop_unsynced() {
    std::lock_guard lock(mu_);
    for (const auto& [name, state] : files_) {
      if (::truncate(name.c_str(), static_cast<off_t>(state->synced)) != 0) continue;  // deleted meanwhile
      ++truncated_;
    }
    files_.clear();
  }
  size_t files_cut() const { return truncated_; }

 private:
  struct State {
    uint64_t written = 0, synced = 0;
  };

  class File final : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> f, std::shared_ptr<State> s)
        : FSWritableFileOwnerWrapper(std::move(f)), state_(std::move(s)) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* d) override {
      state_->written += data.size();
      return target()->Append(data, o, d);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                             const rocksdb::DataVerificationInfo& v, rocksdb::IODebugContext* d) override {
      state_->written += data.size();
      return target()->Append(data, o, v, d);
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset, const rocksdb::IOOptions& o,
                                       rocksdb::IODebugContext* d) override {
      state_->written = std::max<uint64_t>(state_->written, offset + data.size());
      return target()->PositionedAppend(data, offset, o, d);
    }
    rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
      state_->written = size;
      state_->synced = std::min(state_->synced, size);
      return target()->Truncate(size, o, d);
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
      return synced(target()->Sync(o, d));
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
      return synced(target()->Fsync(o, d));
    }
    rocksdb::IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const rocksdb::IOOptions& o,
                                rocksdb::IODebugContext* d) override {
      // A range sync makes no promise about metadata: counted as nothing synced (the stricter view).
      return target()->RangeSync(offset, nbytes, o, d);
    }

   private:
    rocksdb::IOStatus synced(rocksdb::IOStatus s) {
      if (s.ok()) state_->synced = state_->written;
      return s;
    }
    std::shared_ptr<State> state_;
  };

  rocksdb::IOStatus track(const std::string& f, rocksdb::IOStatus s, std::unique_ptr<rocksdb::FSWritableFile>* r) {
    if (!s.ok()) return s;
    auto state = std::make_shared<State>();
    {
      std::lock_guard lock(mu_);
      files_[f] = state;
    }
    *r = std::make_unique<File>(std::move(*r), std::move(state));
    return s;
  }
  void forget(const std::string& f) {
    std::lock_guard lock(mu_);
    files_.erase(f);
  }

  std::mutex mu_;
  std::map<std::string, std::shared_ptr<State>> files_;
  size_t truncated_ = 0;
};

}  // namespace kvtier::ssd::testing

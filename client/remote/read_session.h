// ReadSession: one Blocks.ReadBlocks stream to a node and the UCX endpoint to that node's arena
// (docs/transport.md). Each open() is one lease; get() reads leased blocks straight out of the
// node's memory. A session that failed (the stream ended, the endpoint lost its peer, a read
// timed out) is broken for good: the reader starts a new one.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "kvtier/remote_reader.h"
#include "kvtier/v1/blocks.grpc.pb.h"
#include "server/security/client_credentials.h"
#include "server/transport/ucx_worker.h"

namespace kvtier::remote {

using Clock = std::chrono::steady_clock;

struct LeaseGrant {
  uint64_t id = 0;  // 0: the node holds nothing of the chain
  uint64_t epoch = 0;
  Clock::time_point deadline;  // on this machine's clock, never later than the node's
  std::vector<RemoteBlock> blocks;
  std::vector<uint64_t> addresses;
};

// One block to read: `size` bytes at `remote` in the node's arena into `local`, which must then
// hash to `checksum` (the block's sealed XXH3-64).
struct BlockGet {
  uint64_t remote = 0;
  uint8_t* local = nullptr;
  size_t size = 0;
  uint64_t checksum = 0;
};

// What a read brought: gets[0, verified) arrived and matched their checksums; `corrupt` when
// gets[verified] arrived and did not.
struct ReadOutcome {
  size_t verified = 0;
  bool corrupt = false;
};

// The ReadBlocks stream, driven by gRPC's callback API: a read is always outstanding, so the
// stream's end (the node restarted, went away, or refused the session) is known the moment it
// happens, even while the session is busy with UCX reads.
class SessionStream final : public grpc::ClientBidiReactor<v1::ReadRequest, v1::ReadReply> {
 public:
  SessionStream(v1::Blocks::Stub& stub, const security::ClientCredentials& credentials);
  ~SessionStream() override;  // ends the stream (cancelled when `cancel`) and waits for gRPC to be done
  void send(v1::ReadRequest request);
  // The next reply, or nothing when the stream ended or `deadline` passed first.
  std::optional<v1::ReadReply> next_reply(Clock::time_point deadline);
  bool ended() const { return ended_.load(std::memory_order_acquire); }
  grpc::Status finish_status();  // once ended(): the status the node ended the stream with
  void cancel() { context_.TryCancel(); }

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  // Under mu_: whether the hold can be let go now (no write in flight, none to come); marks it gone.
  bool take_hold_locked();
  grpc::ClientContext context_;
  std::mutex mu_;
  std::condition_variable changed_;
  v1::ReadReply incoming_;
  std::deque<v1::ReadReply> replies_;
  std::deque<v1::ReadRequest> outgoing_;  // the front is being written
  bool holding_ = true;                   // the hold on the call (AddHold) is ours still
  bool writes_done_ = false;              // this side will write no more (the session is over)
  bool read_ended_ = false;               // the node ended the stream
  bool done_ = false;
  grpc::Status status_;
  std::atomic<bool> ended_{false};
};

class ReadSession {
 public:
  ReadSession(v1::Blocks::Stub& stub, const security::ClientCredentials& credentials, transport::UcxWorker& ucx);
  ~ReadSession();
  ReadSession(const ReadSession&) = delete;
  ReadSession& operator=(const ReadSession&) = delete;

  // failed_precondition: the node serves no UCX reads; unavailable: the session broke (the
  // node restarted or went away, or no UCX transport reaches it) or no reply came by
  // `deadline`; other codes: this lease was refused and the session goes on.
  Result<LeaseGrant> open(std::span<const BlockKey> keys, const RemoteReaderOptions& options,
                          Clock::time_point deadline);
  void release(uint64_t lease);
  // Reads every block and checks each as it lands (while the later ones are still coming), up to
  // `deadline` (unavailable after it, or when the node is lost; the session is broken then).
  Result<ReadOutcome> get(std::span<const BlockGet> gets, Clock::time_point deadline);
  bool broken() const { return broken_.load(std::memory_order_relaxed) || stream_.ended(); }

 private:
  Status connect(const v1::UcxArena& arena);
  Status ended(std::string_view what);  // the stream's end as a Status; breaks the session
  void close_endpoint();
  static void on_endpoint_error(void* self, ucp_ep_h ep, ucs_status_t status);

  transport::UcxWorker& ucx_;
  SessionStream stream_;
  ucp_ep_h endpoint_ = nullptr;
  ucp_rkey_h rkey_ = nullptr;
  std::vector<void*> in_flight_;  // the gets of the read under way, by block (null: done at once)
  std::atomic<bool> broken_{false};
};

}  // namespace kvtier::remote

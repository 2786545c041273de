#include "client/remote/read_session.h"

#include <fmt/format.h>

#include <string_view>

#include "client/remote/remote_status.h"
#include "kvtier/checksum.h"

namespace kvtier::remote {
namespace {

// Progresses the worker until `request` completes or `deadline` passes. A request still running
// then is cancelled and left to free itself: a peer that is gone may never answer, and the caller
// force-closes the endpoint, which ends whatever is still in flight.
// `node_alive` is asked now and then: over transports that cannot report a peer's failure, the
// end of the session's gRPC stream is how a read learns its node is gone.
template <typename Alive>
ucs_status_t wait(ucp_worker_h worker, void* request, Clock::time_point deadline, Alive node_alive) {
  if (request == nullptr) return UCS_OK;
  if (UCS_PTR_IS_ERR(request)) return UCS_PTR_STATUS(request);
  ucs_status_t status = UCS_INPROGRESS;
  for (uint32_t spins = 1;; ++spins) {
    (void)ucp_worker_progress(worker);
    status = ucp_request_check_status(request);
    if (status != UCS_INPROGRESS) break;
    if ((spins & 255) != 0) continue;
    const bool late = Clock::now() > deadline;
    if (late || ((spins & 4095) == 0 && !node_alive())) {
      ucp_request_cancel(worker, request);
      status = late ? UCS_ERR_TIMED_OUT : UCS_ERR_CONNECTION_RESET;
      break;
    }
  }
  ucp_request_free(request);
  return status;
}

}  // namespace

// A hold keeps gRPC from finishing the call (and freeing it) while this side may still start a
// write: without it a node that ends the stream at once (no UCX there) races the first write.
// gRPC may also run a reaction on the thread that starts an operation, so operations are started
// outside the lock the reactions take.
SessionStream::SessionStream(v1::Blocks::Stub& stub, const security::ClientCredentials& credentials) {
  credentials.authorize(context_);
  stub.async()->ReadBlocks(&context_, this);
  AddHold();
  StartRead(&incoming_);
  StartCall();
}

bool SessionStream::take_hold_locked() {
  if (!holding_ || !outgoing_.empty() || !(writes_done_ || read_ended_)) return false;
  holding_ = false;
  return true;
}

SessionStream::~SessionStream() {
  bool start_writes_done = false, release = false;
  {
    std::lock_guard lock(mu_);
    if (!writes_done_) {
      // The node ends every lease of the session when the stream ends.
      writes_done_ = true;
      start_writes_done = outgoing_.empty() && !read_ended_;
    }
    release = take_hold_locked();  // otherwise the last write's OnWriteDone lets it go
  }
  if (start_writes_done) StartWritesDone();
  if (release) RemoveHold();
  std::unique_lock lock(mu_);
  if (!changed_.wait_for(lock, std::chrono::seconds(2), [&] { return done_; })) {
    context_.TryCancel();  // what is in flight fails now, and its reactions let the hold go
    if (!changed_.wait_for(lock, std::chrono::seconds(2), [&] { return done_; }) && holding_) {
      holding_ = false;
      lock.unlock();
      RemoveHold();
      lock.lock();
    }
    changed_.wait(lock, [&] { return done_; });
  }
}

void SessionStream::send(v1::ReadRequest request) {
  v1::ReadRequest* start = nullptr;
  {
    std::lock_guard lock(mu_);
    if (!holding_ || writes_done_ || read_ended_) return;
    outgoing_.push_back(std::move(request));
    if (outgoing_.size() == 1) start = &outgoing_.front();  // a deque's elements stay put as it grows
  }
  if (start != nullptr) StartWrite(start);
}

void SessionStream::OnWriteDone(bool ok) {
  v1::ReadRequest* next = nullptr;
  bool start_writes_done = false, release = false;
  {
    std::lock_guard lock(mu_);
    outgoing_.pop_front();
    if (!ok) outgoing_.clear();  // the stream is ending: the rest is never sent
    if (!outgoing_.empty()) {
      next = &outgoing_.front();
    } else {
      start_writes_done = ok && writes_done_ && !read_ended_;
      release = take_hold_locked();
    }
  }
  if (next != nullptr) StartWrite(next);
  if (start_writes_done) StartWritesDone();
  if (release) RemoveHold();
}

void SessionStream::OnReadDone(bool ok) {
  bool release = false;
  {
    std::lock_guard lock(mu_);
    if (ok) {
      replies_.push_back(std::move(incoming_));
      incoming_.Clear();
    } else {
      read_ended_ = true;
      ended_.store(true, std::memory_order_release);
      release = take_hold_locked();  // the node ended the stream: nothing more will be written
    }
    changed_.notify_all();
  }
  if (ok) StartRead(&incoming_);
  if (release) RemoveHold();
}

void SessionStream::OnDone(const grpc::Status& status) {
  std::lock_guard lock(mu_);
  status_ = status;
  done_ = true;
  ended_.store(true, std::memory_order_release);
  changed_.notify_all();
}

std::optional<v1::ReadReply> SessionStream::next_reply(Clock::time_point deadline) {
  std::unique_lock lock(mu_);
  changed_.wait_until(lock, deadline, [&] { return !replies_.empty() || ended(); });
  if (replies_.empty()) return std::nullopt;
  v1::ReadReply reply = std::move(replies_.front());
  replies_.pop_front();
  return reply;
}

grpc::Status SessionStream::finish_status() {
  std::unique_lock lock(mu_);
  changed_.wait_for(lock, std::chrono::seconds(1), [&] { return done_; });
  return done_ ? status_ : grpc::Status(grpc::StatusCode::UNAVAILABLE, "the stream ended");
}

ReadSession::ReadSession(v1::Blocks::Stub& stub, const security::ClientCredentials& credentials,
                         transport::UcxWorker& ucx)
    : ucx_(ucx), stream_(stub, credentials) {}

ReadSession::~ReadSession() { close_endpoint(); }

Status ReadSession::ended(std::string_view what) {
  broken_ = true;
  if (!stream_.ended()) {
    stream_.cancel();  // no reply in time: this session is given up
    return Status::unavailable(fmt::format("{}: no reply from the node in time", what));
  }
  const grpc::Status s = stream_.finish_status();
  if (s.ok()) return Status::unavailable(fmt::format("{}: the node ended the read session", what));
  return from_grpc(s, what);
}

Result<LeaseGrant> ReadSession::open(std::span<const BlockKey> keys, const RemoteReaderOptions& options,
                                     Clock::time_point deadline) {
  if (stream_.ended()) return ended("leasing blocks");  // the node may refuse the session at once
  if (broken()) return Status::unavailable("the read session is broken");
  v1::ReadRequest request;
  v1::OpenRead& open = *request.mutable_open();
  for (const BlockKey& k : keys) {
    const auto b = k.to_bytes();
    open.add_keys(b.data(), b.size());
  }
  open.set_include_ssd(options.include_ssd);
  open.set_load_timeout_ms(options.load_timeout_ms);
  open.set_lease_ms(options.lease_ms);
  // The node's lease starts after it reads this; counting from now keeps ours the earlier end.
  const Clock::time_point sent = Clock::now();
  stream_.send(std::move(request));
  // The node answers at once, or after loading the SSD part (bounded by load_timeout_ms).
  std::optional<v1::ReadReply> next =
      stream_.next_reply(std::max(deadline, sent + std::chrono::milliseconds(options.load_timeout_ms + 1000)));
  if (!next) return ended("leasing blocks");
  const v1::ReadReply& reply = *next;
  if (reply.has_ucx()) KVTIER_RETURN_IF_ERROR(connect(reply.ucx()));
  if (endpoint_ == nullptr) {
    broken_ = true;
    return Status::unavailable("the node's first reply did not say how to reach its arena");
  }
  if (reply.error_code() != 0) {
    return from_grpc({static_cast<grpc::StatusCode>(reply.error_code()), reply.error_message()},
                     "the node refused the lease");
  }
  const v1::ReadLease& lease = reply.lease();
  LeaseGrant grant;
  grant.id = lease.id();
  grant.epoch = lease.epoch();
  grant.deadline = sent + std::chrono::milliseconds(lease.lease_ms());
  grant.blocks.reserve(lease.blocks_size());
  grant.addresses.reserve(lease.blocks_size());
  for (const v1::LeasedBlock& b : lease.blocks()) {
    if (b.key().size() != BlockKey::kBytes) {
      broken_ = true;
      return Status::unavailable("the node sent a lease with a malformed key");
    }
    RemoteBlock rb;
    rb.key = BlockKey::from_bytes(reinterpret_cast<const uint8_t*>(b.key().data()));
    rb.size = b.size();
    rb.checksum = b.xxh3();
    rb.tier = b.tier() == v1::TIER_SSD ? Tier::kSsd : Tier::kHost;
    grant.blocks.push_back(rb);
    grant.addresses.push_back(b.address());
  }
  return grant;
}

void ReadSession::release(uint64_t lease) {
  if (broken() || lease == 0) return;
  v1::ReadRequest request;
  request.set_release(lease);
  stream_.send(std::move(request));  // not answered; a broken stream ends the lease with the session
}

void ReadSession::on_endpoint_error(void* self, ucp_ep_h /*ep*/, ucs_status_t /*status*/) {
  static_cast<ReadSession*>(self)->broken_ = true;
}

Status ReadSession::connect(const v1::UcxArena& arena) {
  close_endpoint();
  if (ucx_.tcp_receive_segment() != 0 && arena.tcp_segment_bytes() > ucx_.tcp_receive_segment()) {
    broken_ = true;
    return Status::failed_precondition(
        fmt::format("the node's UCX sends TCP segments of {} bytes, more than this process receives "
                    "(UCX_TCP_RX_SEG_SIZE {}): UCX would abort it; set UCX_TCP_RX_SEG_SIZE to at least {}",
                    arena.tcp_segment_bytes(), ucx_.tcp_receive_segment(), arena.tcp_segment_bytes()));
  }
  ucp_ep_params_t params{};
  params.field_mask =
      UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER;
  params.address = reinterpret_cast<const ucp_address_t*>(arena.worker_address().data());
  // Peer failure is reported (a node that dies mid-read fails the read at once). Shared-memory
  // transports cannot report it: reads over them are bounded by their deadline instead (get()
  // then cancels and force-closes what is still in flight).
  params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  params.err_handler.cb = &ReadSession::on_endpoint_error;
  params.err_handler.arg = this;
  ucs_status_t created = UCS_ERR_UNSUPPORTED;
  if (ucx_.reports_peer_failure()) created = ucp_ep_create(ucx_.worker(), &params, &endpoint_);
  if (created != UCS_OK) {
    params.err_mode = UCP_ERR_HANDLING_MODE_NONE;
    params.field_mask &= ~static_cast<uint64_t>(UCP_EP_PARAM_FIELD_ERR_HANDLER);
    created = ucp_ep_create(ucx_.worker(), &params, &endpoint_);
  }
  if (created != UCS_OK) {
    endpoint_ = nullptr;
    broken_ = true;
    return transport::ucx_error(created, "connecting to the node's UCX worker (no common transport?)");
  }
  if (ucs_status_t s = ucp_ep_rkey_unpack(endpoint_, arena.rkey().data(), &rkey_); s != UCS_OK) {
    rkey_ = nullptr;
    broken_ = true;
    return transport::ucx_error(s, "unpacking the node's arena key");
  }
  return {};
}

void ReadSession::close_endpoint() {
  if (rkey_ != nullptr) ucp_rkey_destroy(rkey_);
  rkey_ = nullptr;
  if (endpoint_ == nullptr) return;
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = UCP_EP_CLOSE_FLAG_FORCE;  // a lost or stalled peer must not hold the close
  (void)wait(ucx_.worker(), ucp_ep_close_nbx(endpoint_, &param), Clock::now() + std::chrono::seconds(1),
             [] { return true; });
  endpoint_ = nullptr;
}

Result<ReadOutcome> ReadSession::get(std::span<const BlockGet> gets, Clock::time_point deadline) {
  if (broken() || endpoint_ == nullptr) return Status::unavailable("the read session is broken");
  ucp_request_param_t param{};
  in_flight_.clear();  // kept between calls: no allocation per read once it has grown
  ucs_status_t failed = UCS_OK;
  for (const BlockGet& g : gets) {
    void* r = ucp_get_nbx(endpoint_, g.local, g.size, g.remote, rkey_, &param);
    if (UCS_PTR_IS_ERR(r)) {
      failed = UCS_PTR_STATUS(r);
      break;
    }
    in_flight_.push_back(r);
  }
  // Each get's own completion, in order, not an endpoint flush (over TCP one more round trip):
  // a block is hashed as soon as it is in, while the gets after it keep arriving.
  const auto alive = [this] { return !stream_.ended(); };
  ReadOutcome out;
  for (size_t i = 0; i < in_flight_.size(); ++i) {
    const ucs_status_t s =
        wait(ucx_.worker(), in_flight_[i], failed == UCS_OK ? deadline : Clock::time_point::min(), alive);
    if (failed == UCS_OK && s != UCS_OK) failed = s;
    if (failed != UCS_OK || out.corrupt) continue;  // the rest only complete
    if (block_checksum(gets[i].local, gets[i].size) == gets[i].checksum) {
      ++out.verified;
    } else {
      out.corrupt = true;
    }
  }
  in_flight_.clear();
  if (failed != UCS_OK || broken()) {
    broken_ = true;
    // Nothing may still land in the destination after we return: a forced close ends the gets.
    close_endpoint();
    return transport::ucx_error(failed == UCS_OK ? UCS_ERR_CONNECTION_RESET : failed, "reading leased blocks");
  }
  return out;
}

}  // namespace kvtier::remote

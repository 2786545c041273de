// RemoteReader (kvtier/remote_reader.h): which path a fetch takes, and the checks on what it
// brings back. The UCX path is ReadSession's; the gRPC path is fetch_by_get_blocks.
#include "kvtier/remote_reader.h"

#include <fmt/format.h>

#include <functional>
#include <mutex>

#include "client/remote/get_blocks_fetch.h"
#include "client/remote/read_session.h"
#include "client/remote/remote_reader_testing.h"
#include "kvtier/checksum.h"

namespace kvtier {

using remote::Clock;

namespace detail {

struct RemoteReaderState {
  RemoteReaderOptions options;
  std::shared_ptr<const security::ClientCredentials> credentials;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Blocks::Stub> stub;

  mutable std::mutex mu;                      // everything below; one call at a time uses the worker and the stream
  std::unique_ptr<transport::UcxWorker> ucx;  // null: UCX unavailable in this process
  std::unique_ptr<remote::ReadSession> session;
  uint64_t session_serial = 0;
  std::string fallback_reason;             // why fetches use GetBlocks now; empty: they use UCX
  std::function<void()> after_lease_hook;  // tests (remote_reader_testing.h)
  Clock::time_point ucx_retry_at;
  RemoteReaderStats stats;

  bool ucx_usable(Clock::time_point now) const {
    return options.use_ucx && ucx != nullptr && (fallback_reason.empty() || now >= ucx_retry_at);
  }

  // The open session, or a new one when there is none or it broke. A new one waits (up to
  // `deadline`) for the channel to connect: after a node restart the channel is reconnecting,
  // and a stream started then would fail at once.
  remote::ReadSession& current_session(Clock::time_point deadline) {
    if (session == nullptr || session->broken()) {
      session.reset();  // its leases end with its stream
      (void)channel->WaitForConnected(std::chrono::system_clock::now() +
                                      std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                          std::max(deadline - Clock::now(), Clock::duration::zero())));
      session = std::make_unique<remote::ReadSession>(*stub, *credentials, *ucx);
      ++session_serial;
      ++stats.sessions;
    }
    return *session;
  }

  // One lease, on the current session. A session found broken (the node restarted or went away;
  // the first stream after that may fail too, before the channel notices) is replaced, up to
  // three times within `deadline`.
  Result<remote::LeaseGrant> open_lease(std::span<const BlockKey> keys, Clock::time_point deadline) {
    Status failure;
    for (int attempt = 0; attempt < 3 && (attempt == 0 || Clock::now() < deadline); ++attempt) {
      remote::ReadSession& s = current_session(deadline);
      auto grant = s.open(keys, options, deadline);
      // A node that serves no UCX reads says so on every session: no point in another.
      if (grant.ok() || !s.broken() || grant.status().code() == StatusCode::kFailedPrecondition) return grant;
      failure = grant.status();
    }
    return failure;
  }

  void release(uint64_t serial, uint64_t lease) {
    std::lock_guard lock(mu);
    if (session != nullptr && serial == session_serial) session->release(lease);
  }
};

}  // namespace detail

namespace {

// The leased blocks that fit `destination`, back to back from its start.
std::vector<remote::BlockGet> place(const std::vector<RemoteBlock>& blocks, const std::vector<uint64_t>& addresses,
                                    std::span<uint8_t> destination) {
  std::vector<remote::BlockGet> gets;
  uint64_t at = 0;
  for (size_t i = 0; i < blocks.size() && at + blocks[i].size <= destination.size(); ++i) {
    gets.push_back({addresses[i], destination.data() + at, blocks[i].size, blocks[i].checksum});
    at += blocks[i].size;
  }
  return gets;
}

// The fetch a checked read makes: its good prefix, and whether a block after it was corrupt.
RemoteFetch fetched(const std::vector<RemoteBlock>& blocks, std::span<const remote::BlockGet> gets,
                    remote::ReadOutcome read) {
  RemoteFetch out;
  out.path = RemotePath::kUcx;
  out.held = blocks.size();
  out.blocks = read.verified;
  out.corrupt = read.corrupt ? 1 : 0;
  for (size_t i = 0; i < read.verified; ++i) {
    out.bytes += gets[i].size;
    out.tiers.push_back(blocks[i].tier);
  }
  return out;
}

void count(RemoteReaderStats& stats, const RemoteFetch& f) {
  (f.path == RemotePath::kUcx ? stats.ucx_fetches : stats.grpc_fetches) += 1;
  stats.blocks += f.blocks;
  stats.bytes += f.bytes;
  stats.corrupt += f.corrupt;
}

}  // namespace

void detail::RemoteReaderTesting::set_after_lease_hook(RemoteReader& reader, std::function<void()> hook) {
  std::lock_guard lock(reader.state_->mu);
  reader.state_->after_lease_hook = std::move(hook);
}

std::string_view remote_path_name(RemotePath path) { return path == RemotePath::kUcx ? "ucx" : "grpc"; }

RemoteLease::RemoteLease(RemoteLease&& other) noexcept { *this = std::move(other); }

RemoteLease& RemoteLease::operator=(RemoteLease&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
    session_ = other.session_;
    id_ = std::exchange(other.id_, 0);
    epoch_ = other.epoch_;
    deadline_ = other.deadline_;
    blocks_ = std::move(other.blocks_);
    addresses_ = std::move(other.addresses_);
  }
  return *this;
}

RemoteLease::~RemoteLease() { release(); }

void RemoteLease::release() {
  if (state_ != nullptr && id_ != 0) state_->release(session_, id_);
  id_ = 0;
}

RemoteReader::RemoteReader(std::shared_ptr<detail::RemoteReaderState> state) : state_(std::move(state)) {}

RemoteReader::~RemoteReader() {
  std::lock_guard lock(state_->mu);
  state_->session.reset();  // RemoteLeases still alive find no session and do nothing
}

Result<std::unique_ptr<RemoteReader>> RemoteReader::open(const RemoteReaderOptions& options) {
  if (options.address.empty()) return Status::invalid_argument("RemoteReaderOptions::address is empty");
  if (options.timeout_ms == 0) return Status::invalid_argument("RemoteReaderOptions::timeout_ms is 0");
  auto state = std::make_shared<detail::RemoteReaderState>();
  state->options = options;
  config::ClientSecurity security;
  security.ca_file = options.tls_ca_file;
  security.cert_file = options.tls_cert_file;
  security.key_file = options.tls_key_file;
  security.server_name = options.tls_server_name;
  security.token_file = options.token_file;
  KVTIER_ASSIGN_OR_RETURN(state->credentials, security::ClientCredentials::open(security));
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(8 << 20);  // GetBlocks chunks of up to the node's 4 MiB limit
  // A restarted node is found again within 100 ms, not gRPC's default backoff of a second or more.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  state->channel = state->credentials->channel(options.address, args);
  state->stub = v1::Blocks::NewStub(state->channel);
  if (!options.use_ucx) {
    state->fallback_reason = "use_ucx is false";
  } else if (auto ucx = transport::UcxWorker::open(transport::UcxWorker::Threads::kSerialized); ucx.ok()) {
    state->ucx = std::move(ucx).value();
  } else {
    state->fallback_reason = fmt::format("UCX unavailable in this process: {}", ucx.status().message());
  }
  return std::unique_ptr<RemoteReader>(new RemoteReader(std::move(state)));
}

Result<RemoteLease> RemoteReader::lease(std::span<const BlockKey> keys) {
  std::lock_guard lock(state_->mu);
  if (!state_->ucx_usable(Clock::now())) {
    return Status::failed_precondition(
        fmt::format("no UCX reads from {}: {}", state_->options.address, state_->fallback_reason));
  }
  KVTIER_ASSIGN_OR_RETURN(
      remote::LeaseGrant grant,
      state_->open_lease(keys, Clock::now() + std::chrono::milliseconds(state_->options.timeout_ms)));
  RemoteLease lease;
  lease.state_ = state_;
  lease.session_ = state_->session_serial;
  lease.id_ = grant.id;
  lease.epoch_ = grant.epoch;
  lease.deadline_ = grant.deadline;
  lease.blocks_ = std::move(grant.blocks);
  lease.addresses_ = std::move(grant.addresses);
  return lease;
}

Result<RemoteFetch> RemoteReader::read(const RemoteLease& lease, std::span<uint8_t> destination) {
  std::lock_guard lock(state_->mu);
  if (lease.blocks_.empty()) {
    RemoteFetch none;
    count(state_->stats, none);
    return none;
  }
  const Clock::time_point now = Clock::now();
  if (lease.state_ != state_ || lease.id_ == 0 || state_->session == nullptr ||
      lease.session_ != state_->session_serial || state_->session->broken()) {
    return Status::unavailable("the lease has ended: released, or its read session (or node) is gone");
  }
  if (now >= lease.deadline_) return Status::unavailable("the lease's time is up; lease the blocks again");
  const auto gets = place(lease.blocks_, lease.addresses_, destination);
  const auto deadline = std::min(lease.deadline_, now + std::chrono::milliseconds(state_->options.timeout_ms));
  KVTIER_ASSIGN_OR_RETURN(remote::ReadOutcome read, state_->session->get(gets, deadline));
  RemoteFetch out = fetched(lease.blocks_, gets, read);
  count(state_->stats, out);
  return out;
}

Result<RemoteFetch> RemoteReader::fetch(std::span<const BlockKey> keys, std::span<uint8_t> destination) {
  std::lock_guard lock(state_->mu);
  detail::RemoteReaderState& s = *state_;
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + std::chrono::milliseconds(s.options.timeout_ms);
  if (s.ucx_usable(start)) {
    Status failure;
    // A read that failed with its session (the node restarted between the lease and the read) is
    // leased and read again once, on a new session.
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto grant = s.open_lease(keys, deadline);
      if (!grant.ok()) {
        failure = grant.status();
        if (failure.code() == StatusCode::kInvalidArgument) return failure;  // GetBlocks would refuse it too
        break;
      }
      if (grant->blocks.empty()) {  // the node holds nothing of the chain
        RemoteFetch none;
        count(s.stats, none);
        s.fallback_reason.clear();
        return none;
      }
      if (s.after_lease_hook) s.after_lease_hook();
      remote::ReadSession& session = *s.session;
      const auto gets = place(grant->blocks, grant->addresses, destination);
      Result<remote::ReadOutcome> read =
          Clock::now() < grant->deadline
              ? session.get(gets, std::min(deadline, grant->deadline))
              : Result<remote::ReadOutcome>(Status::unavailable("the lease's time was up before its blocks were read"));
      session.release(grant->id);  // unpinned now, not when its time is up
      if (read.ok()) {
        RemoteFetch out = fetched(grant->blocks, gets, *read);
        count(s.stats, out);
        s.fallback_reason.clear();
        return out;
      }
      failure = read.status();
      if (!session.broken()) break;
    }
    // UCX failed where gRPC may not: this fetch, and those until the retry time, use GetBlocks.
    s.fallback_reason = failure.message();
    s.ucx_retry_at = Clock::now() + std::chrono::milliseconds(s.options.ucx_retry_ms);
    ++s.stats.fallbacks;
  } else if (s.options.use_ucx) {
    ++s.stats.fallbacks;
  }
  RemoteReaderOptions options = s.options;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  options.timeout_ms = static_cast<uint32_t>(std::max<int64_t>(left, 1));
  KVTIER_ASSIGN_OR_RETURN(RemoteFetch out,
                          remote::fetch_by_get_blocks(*s.stub, *s.credentials, options, keys, destination));
  count(s.stats, out);
  return out;
}

RemotePath RemoteReader::path() const {
  std::lock_guard lock(state_->mu);
  return state_->ucx_usable(Clock::now()) ? RemotePath::kUcx : RemotePath::kGrpc;
}

std::string RemoteReader::fallback_reason() const {
  std::lock_guard lock(state_->mu);
  return state_->fallback_reason;
}

RemoteReaderStats RemoteReader::stats() const {
  std::lock_guard lock(state_->mu);
  return state_->stats;
}

}  // namespace kvtier

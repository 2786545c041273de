// UcxWorker: one UCX context and one worker, able to do one-sided reads (RMA) and to sleep on an
// event fd (wakeup). Both ends of the remote read path own one: the node to export its arena
// (docs/transport.md), a reader to get blocks out of it. UCX reads its transports and devices
// from the environment (UCX_TLS, UCX_NET_DEVICES, ...), so the same binary runs over TCP, shared
// memory or an RDMA NIC.
#pragma once

#include <ucp/api/ucp.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kvtier/result.h"

namespace kvtier::transport {

// A UCX failure as a Status: what was being done, in UCX's words.
Status ucx_error(ucs_status_t status, std::string_view what);

// Settings kvtier gives UCX unless its environment sets them (UCX_<name>): over TCP a get is
// answered in segments of TCP_TX_SEG_SIZE, 8 KiB by default; whole-block segments read KV blocks
// about four times as fast (docs/transport.md#tuning).
struct UcxSetting {
  const char* name;  // without the UCX_ prefix
  const char* value;
};
inline constexpr UcxSetting kUcxDefaults[] = {{"TCP_TX_SEG_SIZE", "256k"}, {"TCP_RX_SEG_SIZE", "256k"}};

// A UCX size setting ("8K", "256k", "1m", "65536") in bytes; nullopt for what is not one ("inf").
std::optional<uint64_t> parse_ucx_bytes(std::string_view text);

// Whether a UCX_TLS value lets UCX use any of `transports` (a name covers its variants: "rc" is
// "rc_x" too). Unset, empty or "all": every transport; "^a,b": every one but those.
bool ucx_tls_allows(const char* ucx_tls, std::initializer_list<std::string_view> transports);

class UcxWorker {
 public:
  enum class Threads {
    kOne,        // only the thread that made it (after start, one progress thread) uses it
    kSerialized  // any thread, one at a time (the caller holds a lock)
  };
  // unavailable (with UCX's reason) when UCX cannot start here: no transport, a bad UCX_TLS.
  static Result<std::unique_ptr<UcxWorker>> open(Threads threads);
  ~UcxWorker();
  UcxWorker(const UcxWorker&) = delete;
  UcxWorker& operator=(const UcxWorker&) = delete;

  ucp_context_h context() const { return context_; }
  ucp_worker_h worker() const { return worker_; }
  // The worker's address, for a peer to connect to it (ucp_ep_create).
  const std::string& address() const { return address_; }
  // For waiting until the worker has work (ucp_worker_arm first): an fd poll() can watch.
  int event_fd() const { return event_fd_; }
  // UCX's TCP segment sizes in this process (0 where TCP cannot carry reads). A peer whose
  // segments are larger than ours to receive makes UCX abort this process (an assertion in its
  // TCP transport), so the two ends compare them before they connect.
  uint64_t tcp_send_segment() const { return tcp_send_segment_; }
  uint64_t tcp_receive_segment() const { return tcp_receive_segment_; }
  // Whether the transports UCX_TLS allows can report a peer's failure: network transports can,
  // shared memory cannot, and asking for it there fails the connection (with an error on stdout).
  bool reports_peer_failure() const { return reports_peer_failure_; }

 private:
  UcxWorker() = default;
  ucp_context_h context_ = nullptr;
  ucp_worker_h worker_ = nullptr;
  std::string address_;
  int event_fd_ = -1;
  uint64_t tcp_send_segment_ = 0, tcp_receive_segment_ = 0;
  bool reports_peer_failure_ = false;
};

}  // namespace kvtier::transport

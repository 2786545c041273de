#include "server/transport/ucx_worker.h"

#include <fmt/format.h>

#include <cstdlib>
#include <string_view>

namespace kvtier::transport {

Status ucx_error(ucs_status_t status, std::string_view what) {
  return Status::unavailable(fmt::format("{}: {} (UCX)", what, ucs_status_string(status)));
}

namespace {

// The value UCX will use for a TCP setting: the environment's, else UCX's own default.
uint64_t tcp_setting(const char* variable, uint64_t ucx_default) {
  const char* v = std::getenv(variable);  // NOLINT(concurrency-mt-unsafe): read once, as UCX starts
  if (v == nullptr) return ucx_default;
  return parse_ucx_bytes(v).value_or(ucx_default);
}

}  // namespace

bool ucx_tls_allows(const char* ucx_tls, std::initializer_list<std::string_view> transports) {
  std::string_view list = ucx_tls == nullptr ? std::string_view() : std::string_view(ucx_tls);
  if (list.empty()) return true;
  const bool all_but = list.front() == '^';
  if (all_but) list.remove_prefix(1);
  bool named = false;
  while (!list.empty() && !named) {
    const size_t comma = list.find(',');
    const std::string_view token = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (token == "all") return !all_but;
    for (const std::string_view t : transports) {
      named =
          named || token == t || (token.size() > t.size() && token.substr(0, t.size()) == t && token[t.size()] == '_');
    }
  }
  return all_but ? !named : named;
}

std::optional<uint64_t> parse_ucx_bytes(std::string_view text) {
  uint64_t value = 0;
  size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    if (value > (UINT64_MAX - 9) / 10) return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(text[i] - '0');
  }
  if (i == 0) return std::nullopt;
  std::string_view unit = text.substr(i);
  if (!unit.empty() && (unit.back() == 'b' || unit.back() == 'B')) unit.remove_suffix(1);
  if (unit.empty()) return value;
  if (unit.size() != 1) return std::nullopt;
  int shift = 0;
  switch (unit[0]) {
    case 'k':
    case 'K': shift = 10; break;
    case 'm':
    case 'M': shift = 20; break;
    case 'g':
    case 'G': shift = 30; break;
    default: return std::nullopt;
  }
  if (value > (UINT64_MAX >> shift)) return std::nullopt;
  return value << shift;
}

Result<std::unique_ptr<UcxWorker>> UcxWorker::open(Threads threads) {
  std::unique_ptr<UcxWorker> w(new UcxWorker());
  // Through the environment, where UCX reads its transports' settings (ucp_config_modify does not
  // reach every one of them); an operator's own UCX_<name> stands. Only where TCP may carry the
  // reads: UCX warns of settings for a transport it does not load.
  const char* tls = std::getenv("UCX_TLS");  // NOLINT(concurrency-mt-unsafe): read once, before UCX starts
  w->reports_peer_failure_ = ucx_tls_allows(tls, {"tcp", "rc", "ud", "dc", "ib"});
  if (ucx_tls_allows(tls, {"tcp"})) {
    for (const UcxSetting& d : kUcxDefaults) {
      // NOLINTNEXTLINE(concurrency-mt-unsafe): before UCX starts; UCX reads its settings from here
      ::setenv(fmt::format("UCX_{}", d.name).c_str(), d.value, 0);
    }
    // UCX 1.13's defaults: 8 KiB segments sent, 64 KiB received.
    w->tcp_send_segment_ = tcp_setting("UCX_TCP_TX_SEG_SIZE", 8 << 10);
    w->tcp_receive_segment_ = tcp_setting("UCX_TCP_RX_SEG_SIZE", 64 << 10);
  }
  ucp_config_t* config = nullptr;
  if (ucs_status_t s = ucp_config_read(nullptr, nullptr, &config); s != UCS_OK) {
    return ucx_error(s, "reading UCX's configuration (UCX_* variables)");
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
  params.features = UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP;
  params.mt_workers_shared = 0;
  const ucs_status_t init = ucp_init(&params, config, &w->context_);
  ucp_config_release(config);
  if (init != UCS_OK) return ucx_error(init, "starting UCX");
  ucp_worker_params_t wp{};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  wp.thread_mode = threads == Threads::kOne ? UCS_THREAD_MODE_SINGLE : UCS_THREAD_MODE_SERIALIZED;
  if (ucs_status_t s = ucp_worker_create(w->context_, &wp, &w->worker_); s != UCS_OK) {
    return ucx_error(s, "creating a UCX worker");
  }
  ucp_address_t* address = nullptr;
  size_t length = 0;
  if (ucs_status_t s = ucp_worker_get_address(w->worker_, &address, &length); s != UCS_OK) {
    return ucx_error(s, "reading the UCX worker's address");
  }
  w->address_.assign(reinterpret_cast<const char*>(address), length);
  ucp_worker_release_address(w->worker_, address);
  if (ucs_status_t s = ucp_worker_get_efd(w->worker_, &w->event_fd_); s != UCS_OK) {
    return ucx_error(s, "getting the UCX worker's event fd");
  }
  return w;
}

UcxWorker::~UcxWorker() {
  if (worker_ != nullptr) ucp_worker_destroy(worker_);
  if (context_ != nullptr) ucp_cleanup(context_);
}

}  // namespace kvtier::transport

#include "server/kvtierd/node_options.h"

#include <fmt/format.h>
#include <unistd.h>

#include <climits>

namespace kvtier::daemon {

Result<node::NodeTiersOptions> node_tiers_options(const config::NodeConfig& cfg) {
  node::NodeTiersOptions o;
  o.node_name = cfg.node_name;
  if (o.node_name.empty()) {
    char host[HOST_NAME_MAX + 1] = {};
    if (::gethostname(host, sizeof(host) - 1) != 0) return Status::internal("gethostname failed; set node.name");
    o.node_name = host;
  }
  o.shm_prefix = cfg.shm_prefix;
  o.index_capacity = cfg.index_capacity;
  o.host_bytes = cfg.host_bytes;
  o.slab_bytes = cfg.host_slab_bytes;
  o.eviction_policy = cfg.eviction_policy;
  o.host_high_watermark = cfg.host_high_watermark;
  o.host_low_watermark = cfg.host_low_watermark;
  auto admission = parse_put_admission(cfg.put_admission);
  if (!admission.ok()) return admission.status();
  o.put_admission = *admission;
  o.ssd_enabled = cfg.ssd_enabled;
  if (cfg.ssd_enabled) {
    ssd::SsdStoreOptions& s = o.ssd;
    for (uint32_t i = 0; i < cfg.ssd_files; ++i) s.files.push_back(fmt::format("{}/data-{}.kvt", cfg.ssd_dir, i));
    s.bytes = cfg.ssd_bytes;
    s.metadata_dir = cfg.ssd_dir + "/catalog";
    s.region_bytes = cfg.ssd_region_bytes;
    s.io_bytes = static_cast<uint32_t>(cfg.ssd_io_bytes);
    s.queue_depth = cfg.ssd_queue_depth;
    auto reclaim = ssd::parse_region_reclaim(cfg.ssd_reclaim);
    if (!reclaim.ok()) return reclaim.status();
    s.reclaim = *reclaim;
    s.reinsert_hot = cfg.ssd_reinsert_hot;
    s.sync_writes = cfg.ssd_sync_writes;
    s.direct_io = cfg.ssd_direct_io;
    s.start_empty_if_unreadable = cfg.ssd_start_empty_if_unreadable;
    o.admission.min_accesses = cfg.ssd_min_accesses;
    o.admission.ancestor_hops = cfg.ssd_ancestor_hops;
    o.admission.write_budget_bytes_per_s = cfg.ssd_write_budget_per_s;
  }
  for (size_t i = 0; i < cfg.namespaces.size(); ++i) {
    auto ns = Namespace::create(cfg.namespaces[i]);
    if (!ns.ok()) return ns.status();
    const std::string codec_name = i < cfg.namespace_ssd_codecs.size() ? cfg.namespace_ssd_codecs[i] : "none";
    auto codec = ssd::parse_codec(codec_name);
    if (!codec.ok()) return codec.status();
    if (*codec != ssd::Codec::kNone) o.codecs[ns->index_id()] = *codec;
  }
  return o;
}

}  // namespace kvtier::daemon

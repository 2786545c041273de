// kvtier._native: the client library for Python engines (pybind11). Keys are 16-byte `bytes`
// (the canonical form, docs/keys.md). Host blocks and reservations export their arena memory
// through the buffer protocol without a copy (numpy.asarray(block), memoryview(block)); a view
// keeps its block leased, and release() refuses while views are alive, as memoryview does.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "binding_support.h"
#include "host_buffers.h"
#include "kv_copier_binding.h"
#include "kvtier/client.h"
#include "kvtier/prefix_chain.h"

namespace py = pybind11;

namespace kvtier::python {
namespace {

// Token ids from any buffer of uint32 (numpy arrays) or a sequence of ints.
std::vector<TokenId> tokens_from(const py::handle& obj) {
  std::vector<TokenId> out;
  if (PyObject_CheckBuffer(obj.ptr()) != 0 && !PyBytes_Check(obj.ptr())) {
    py::buffer_info info = py::reinterpret_borrow<py::buffer>(obj).request();
    const bool u32 = info.itemsize == 4 && (info.format == "I" || info.format == "=I" || info.format == "<I" ||
                                            info.format == "L" || info.format == "=L");
    if (!u32 || info.ndim != 1 || info.strides[0] != 4) {
      throw py::value_error("token ids as a buffer must be a contiguous 1-D array of uint32");
    }
    out.resize(static_cast<size_t>(info.shape[0]));
    if (!out.empty()) std::memcpy(out.data(), info.ptr, out.size() * sizeof(TokenId));
    return out;
  }
  for (const auto& t : py::reinterpret_borrow<py::sequence>(obj)) {
    const auto v = t.cast<long long>();
    if (v < 0 || v > 0xFFFFFFFFLL) throw py::value_error("a token id is a uint32");
    out.push_back(static_cast<TokenId>(v));
  }
  return out;
}

// A C-contiguous byte view of any buffer (bytes, bytearray, numpy, memoryview), held while it lives.
class ContiguousBuffer {
 public:
  ContiguousBuffer(const py::handle& obj, bool writable) {
    const int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj.ptr(), &view_, flags) != 0) throw py::error_already_set();
  }
  ContiguousBuffer(const ContiguousBuffer&) = delete;
  ContiguousBuffer& operator=(const ContiguousBuffer&) = delete;
  ~ContiguousBuffer() { PyBuffer_Release(&view_); }
  std::span<uint8_t> bytes() { return {static_cast<uint8_t*>(view_.buf), static_cast<size_t>(view_.len)}; }

 private:
  Py_buffer view_{};
};

struct PyMatch {
  size_t overall = 0, hbm = 0, host = 0, ssd = 0;
};

NamespaceSpec namespace_spec(const std::string& model_id, const std::string& adapter_id, const std::string& cache_salt,
                             const std::string& dtype, uint32_t block_tokens, uint32_t num_layers,
                             uint32_t num_kv_heads, uint32_t head_dim, uint32_t kv_planes) {
  NamespaceSpec spec;
  spec.model_id = model_id;
  spec.adapter_id = adapter_id;
  spec.cache_salt = cache_salt;
  spec.layout.dtype = take(parse_dtype(dtype));
  spec.layout.block_tokens = block_tokens;
  spec.layout.num_layers = num_layers;
  spec.layout.num_kv_heads = num_kv_heads;
  spec.layout.head_dim = head_dim;
  spec.layout.kv_planes = kv_planes;
  return spec;
}

// Every ClientOptions field but node_name, by its C++ name: the keywords of Client() and
// Client.from_env() both, so the two cannot drift apart as options are added.
constexpr OptionField<ClientOptions> kClientOptionFields[] = {
    {"shm_prefix", [](ClientOptions& o, const py::handle& v) { set_from(o.shm_prefix, v); }},
    {"create_if_missing", [](ClientOptions& o, const py::handle& v) { set_from(o.create_if_missing, v); }},
    {"index_capacity", [](ClientOptions& o, const py::handle& v) { set_from(o.index_capacity, v); }},
    {"host_bytes", [](ClientOptions& o, const py::handle& v) { set_from(o.host_bytes, v); }},
    {"slab_bytes", [](ClientOptions& o, const py::handle& v) { set_from(o.slab_bytes, v); }},
    {"verify_reads", [](ClientOptions& o, const py::handle& v) { set_from(o.verify_reads, v); }},
    {"huge_pages", [](ClientOptions& o, const py::handle& v) { set_from(o.huge_pages, v); }},
    {"engine_id", [](ClientOptions& o, const py::handle& v) { set_from(o.engine_id, v); }},
    {"room_wait_ms", [](ClientOptions& o, const py::handle& v) { set_from(o.room_wait_ms, v); }},
};

std::string client_option_names() { return option_names(kClientOptionFields); }

ClientOptions client_options(const py::kwargs& options, ClientOptions o = {}) {
  apply_options(o, options, kClientOptionFields, "client option");
  return o;
}

// [(key, parent, block_id), ...] → HbmBlock list.
std::vector<HbmBlock> hbm_blocks_from(const py::sequence& seq) {
  std::vector<HbmBlock> out;
  out.reserve(seq.size());
  for (const auto& item : seq) {
    const auto t = item.cast<py::tuple>();
    if (t.size() != 3) throw py::value_error("an HBM block is (key, parent, block_id)");
    out.push_back({key_from(t[0]), key_from(t[1]), t[2].cast<uint32_t>()});
  }
  return out;
}

py::dict stats_dict(const ClientStats& s) {
  py::dict d;
  d["index_entries"] = s.index.entries;
  d["index_capacity"] = s.index.capacity;
  d["hbm_blocks"] = s.index.tier_entries[tier_index(Tier::kHbm)];
  d["host_blocks"] = s.index.tier_entries[tier_index(Tier::kHost)];
  d["ssd_blocks"] = s.index.tier_entries[tier_index(Tier::kSsd)];
  d["host_bytes"] = s.host_bytes;
  d["host_used_bytes"] = s.host_used_bytes;
  d["puts"] = s.puts;
  d["put_exists"] = s.put_exists;
  d["not_admitted"] = s.not_admitted;
  d["gets"] = s.gets;
  d["evictions_for_room"] = s.evictions_for_room;
  d["sealed"] = s.sealed;
  d["corrupt_dropped"] = s.corrupt_dropped;
  d["loads_requested"] = s.loads_requested;
  d["room_waits"] = s.room_waits;
  d["processes_reclaimed"] = s.index.processes_reclaimed;
  d["hbm_recorded"] = s.hbm_recorded;
  d["hbm_withdrawn"] = s.hbm_withdrawn;
  d["hbm_dropped"] = s.hbm_dropped;
  return d;
}

}  // namespace
}  // namespace kvtier::python

PYBIND11_MODULE(_native, m) {
  using namespace kvtier;          // NOLINT(google-build-using-namespace): the binding's own file
  using namespace kvtier::python;  // NOLINT(google-build-using-namespace)
  m.doc() = "kvtier's client library: the node's shared-memory index and host arena (docs/python.md)";
  m.attr("KEY_BYTES") = BlockKey::kBytes;
  m.attr("KEY_FORMAT_VERSION") = kKeyFormatVersion;
  static py::exception<std::runtime_error> error(m, "Error");
  g_error = error.ptr();

  py::class_<NamespaceHandle>(m, "Namespace", "A namespace registered with the node (model, adapter, salt, layout)")
      .def_property_readonly("model_id", [](const NamespaceHandle& h) { return h.ns.spec().model_id; })
      .def_property_readonly("block_tokens", [](const NamespaceHandle& h) { return h.ns.block_tokens(); })
      .def_property_readonly("block_bytes", [](const NamespaceHandle& h) { return h.ns.bytes_per_block(); })
      .def_property_readonly(
          "root", [](const NamespaceHandle& h) { return key_bytes(h.ns.root()); },
          "the chain's parent for a first block (16 bytes)")
      .def_property_readonly("id", [](const NamespaceHandle& h) { return h.id; });

  py::class_<PyMatch>(m, "Match", "Longest cached prefix, in blocks: overall and per tier")
      .def_readonly("overall", &PyMatch::overall)
      .def_readonly("hbm", &PyMatch::hbm)
      .def_readonly("host", &PyMatch::host)
      .def_readonly("ssd", &PyMatch::ssd)
      .def("__repr__", [](const PyMatch& p) {
        return "Match(overall=" + std::to_string(p.overall) + ", hbm=" + std::to_string(p.hbm) +
               ", host=" + std::to_string(p.host) + ", ssd=" + std::to_string(p.ssd) + ")";
      });

  auto block = py::class_<PyHostBlock>(m, "HostBlock", py::buffer_protocol(),
                                       "A leased host block; its bytes are a read-only buffer (no copy)")
                   .def_property_readonly("key", &PyHostBlock::key)
                   .def_property_readonly("released", &PyHostBlock::released)
                   .def("__len__", &PyHostBlock::size)
                   .def("tobytes", &PyHostBlock::bytes, "a copy of the block's bytes")
                   .def("release", &PyHostBlock::release, "drop the lease now (BufferError while views are alive)")
                   .def("__enter__", [](py::object self) { return self; })
                   .def("__exit__", [](PyHostBlock& b, const py::args&) { b.release(); });
  install_buffer_slots<PyHostBlock>(block);

  auto reservation = py::class_<PyReservation>(m, "Reservation", py::buffer_protocol(),
                                               "Arena space for one block: write through the buffer, then commit()")
                         .def_property_readonly("exists", &PyReservation::exists,
                                                "the block was already cached: nothing to write, commit() is a no-op")
                         .def("__len__", &PyReservation::size)
                         .def("commit", &PyReservation::commit, "publish the block to every process")
                         .def("abandon", &PyReservation::abandon, "free the space without publishing");
  install_buffer_slots<PyReservation>(reservation);

  py::class_<BlockLoad>(m, "BlockLoad", "A request to the node daemon to bring SSD-resident blocks into host memory")
      .def("__len__", &BlockLoad::size, "blocks asked for")
      .def("done", &BlockLoad::done, "the daemon has handled the request")
      .def(
          "wait",
          [](BlockLoad& l, double timeout_s) {
            py::gil_scoped_release unlocked;
            return l.wait(std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
          },
          py::arg("timeout_s"), "wait until handled or timeout_s passes; returns the blocks in host memory then");

  py::class_<Client>(m, "Client", "The node's cache, mapped into this process (thread-safe)")
      .def(py::init([](const std::string& node_name, const py::kwargs& options) {
             ClientOptions o;
             o.node_name = node_name;
             return take(Client::open(client_options(options, o)));
           }),
           py::arg("node_name"),
           ("open the node's segments; keyword options (ClientOptions in kvtier/client.h): " + client_option_names())
               .c_str())
      .def_static(
          "from_env",
          [](const py::kwargs& options) {
            return take(Client::open(take(client_options_from_env(client_options(options)))));
          },
          "open the node named by KVTIER_NODE_NAME (and KVTIER_SHM_PREFIX, KVTIER_ENGINE_ID, KVTIER_VERIFY_READS, "
          "which override the same keyword options as Client())")
      .def_static(
          "destroy_node",
          [](const std::string& node_name, const std::string& shm_prefix) {
            ClientOptions o;
            o.node_name = node_name;
            o.shm_prefix = shm_prefix;
            check(Client::destroy_node(o));
          },
          py::arg("node_name"), py::arg("shm_prefix") = "kvtier", "remove the node's segments")
      .def(
          "register_namespace",
          [](Client& c, const std::string& model_id, const std::string& adapter_id, const std::string& cache_salt,
             const std::string& dtype, uint32_t block_tokens, uint32_t num_layers, uint32_t num_kv_heads,
             uint32_t head_dim, uint32_t kv_planes) {
            return take(c.register_namespace(namespace_spec(model_id, adapter_id, cache_salt, dtype, block_tokens,
                                                            num_layers, num_kv_heads, head_dim, kv_planes)));
          },
          py::kw_only(), py::arg("model_id"), py::arg("adapter_id") = "", py::arg("cache_salt") = "",
          py::arg("dtype") = "bf16", py::arg("block_tokens") = 16, py::arg("num_layers"), py::arg("num_kv_heads"),
          py::arg("head_dim"), py::arg("kv_planes") = 2)
      .def(
          "keys",
          [](const Client& c, const NamespaceHandle& ns, const py::object& tokens) {
            const std::vector<TokenId> ids = tokens_from(tokens);
            py::list out;
            for (const BlockKey& k : c.keys(ns, ids)) out.append(key_bytes(k));
            return out;
          },
          py::arg("ns"), py::arg("tokens"), "the chain keys of every whole block of `tokens` (uint32 ids)")
      .def(
          "match",
          [](const Client& c, const py::sequence& keys) {
            const PrefixMatch pm = c.match(keys_from(keys));
            return PyMatch{pm.overall, pm.in(Tier::kHbm), pm.in(Tier::kHost), pm.in(Tier::kSsd)};
          },
          py::arg("keys"), "the longest cached prefix (pins nothing)")
      .def(
          "acquire",
          [](Client& c, const py::sequence& keys) {
            std::vector<HostBlock> blocks = take(c.acquire(keys_from(keys)));
            py::list out;
            for (HostBlock& b : blocks) out.append(py::cast(PyHostBlock(std::move(b))));
            return out;
          },
          py::arg("keys"), "lease the host-resident prefix: a list of HostBlock, readable in place")
      .def(
          "pins",
          [](Client& c, const py::sequence& keys) {
            py::list out;
            for (const BlockKey& k : keys_from(keys)) {
              const auto info = c.index().lookup(k);
              out.append(info ? info->pins : 0U);
            }
            return out;
          },
          py::arg("keys"), "how many processes pin each block (0 for a block not cached): tests and operators")
      .def(
          "load", [](Client& c, const py::sequence& keys) { return take(c.load(keys_from(keys))); }, py::arg("keys"),
          py::keep_alive<0, 1>(),
          "ask the node daemon to bring the chain's SSD-resident cached prefix into host memory (a BlockLoad; "
          "Error 'unavailable' without a daemon serving an SSD tier)")
      .def(
          "reserve",
          [](Client& c, const NamespaceHandle& ns, const py::bytes& key, const py::bytes& parent,
             const py::object& tokens) {
            std::vector<TokenId> ids;
            if (!tokens.is_none()) ids = tokens_from(tokens);
            return PyReservation(take(c.reserve(ns, key_from(key), key_from(parent), ids)));
          },
          py::arg("ns"), py::arg("key"), py::arg("parent"), py::arg("tokens") = py::none(),
          "reserve arena space for `key` (parent: the previous key, or ns.root for a first block)")
      .def(
          "put",
          [](Client& c, const NamespaceHandle& ns, const py::bytes& key, const py::bytes& parent,
             const py::object& data, const py::object& tokens) {
            ContiguousBuffer buf(data, /*writable=*/false);
            std::vector<TokenId> ids;
            if (!tokens.is_none()) ids = tokens_from(tokens);
            const BlockKey k = key_from(key), p = key_from(parent);
            Status s;
            {
              py::gil_scoped_release unlocked;  // a block is megabytes: let other threads run
              s = c.put(ns, k, p, buf.bytes(), ids);
            }
            check(s);
          },
          py::arg("ns"), py::arg("key"), py::arg("parent"), py::arg("data"), py::arg("tokens") = py::none(),
          "reserve + copy + commit; `data` is exactly ns.block_bytes (any contiguous buffer)")
      .def(
          "get_copy",
          [](Client& c, const NamespaceHandle& ns, const py::sequence& keys, const py::object& out) -> py::object {
            const std::vector<BlockKey> ks = keys_from(keys);
            const auto copy = [&](std::span<uint8_t> into) {
              py::gil_scoped_release unlocked;
              return c.get_copy(ns, ks, into);
            };
            if (out.is_none()) {
              std::string buf(ks.size() * ns.ns.bytes_per_block(), '\0');
              const size_t n = take(copy(std::span(reinterpret_cast<uint8_t*>(buf.data()), buf.size())));
              buf.resize(n * ns.ns.bytes_per_block());
              return py::bytes(buf);
            }
            ContiguousBuffer into(out, /*writable=*/true);
            return py::int_(take(copy(into.bytes())));
          },
          py::arg("ns"), py::arg("keys"), py::arg("out") = py::none(),
          "copy the host-resident prefix: into `out` (returns blocks copied) or as new bytes")
      .def(
          "hbm_stored",
          [](Client& c, const NamespaceHandle& ns, const py::sequence& blocks) {
            return take(c.hbm_stored(ns, hbm_blocks_from(blocks)));
          },
          py::arg("ns"), py::arg("blocks"),
          "record blocks this engine holds in GPU memory: [(key, parent, block_id)]; returns records made")
      .def(
          "hbm_evicted",
          [](Client& c, const py::sequence& blocks) { return take(c.hbm_evicted(hbm_blocks_from(blocks))); },
          py::arg("blocks"), "drop this engine's HBM records of [(key, parent, block_id)]; returns records dropped")
      .def(
          "stats", [](const Client& c) { return stats_dict(c.stats()); }, "counters of this client and the node")
      .def(
          "maintain", [](Client& c) { check(c.maintain()); }, "reclaim what dead processes held")
      .def(
          "arena_offset",
          [](const Client& c, const py::object& block) {
            const uint8_t* address = nullptr;
            if (py::isinstance<PyHostBlock>(block)) {
              address = block.cast<const PyHostBlock&>().address();
            } else if (py::isinstance<PyReservation>(block)) {
              address = block.cast<const PyReservation&>().address();
            } else {
              throw py::type_error("arena_offset takes a HostBlock or a Reservation");
            }
            const auto arena = c.host_memory();
            if (address < arena.data() || address >= arena.data() + arena.size()) {
              throw py::value_error("the block is not in this client's arena");
            }
            return static_cast<uint64_t>(address - arena.data());
          },
          py::arg("block"),
          "where a HostBlock or Reservation lies in the arena: the same in every process on the node, so another "
          "process's KvCopier can copy it while this one holds it")
      .def(
          "host_memory",
          [](const Client& c) {
            const auto m = c.host_memory();
            return py::make_tuple(reinterpret_cast<uintptr_t>(m.data()), m.size());
          },
          "(address, bytes) of the host arena's block data in this process");

  bind_kv_copier(m);
}

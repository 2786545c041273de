// kvtier._remote: kvtier.RemoteReader and kvtier.fetch_remote, blocks another node holds read into
// a buffer of this process (over UCX out of the node's arena, or gRPC GetBlocks;
// kvtier/remote_reader.h). A module of its own, loaded on first use (kvtier/__init__.py): it
// brings gRPC, OpenSSL and UCX into the process, which an engine that only uses its own node
// does not need (tests/CMakeLists.txt checks kvtier._native's libraries).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "binding_support.h"
#include "kvtier/remote_reader.h"

namespace kvtier::python {
namespace {

// Each keyword option of RemoteReader() and the RemoteReaderOptions field it sets.
constexpr OptionField<RemoteReaderOptions> kReaderOptionFields[] = {
    {"use_ucx", [](RemoteReaderOptions& o, const py::handle& v) { set_from(o.use_ucx, v); }},
    {"include_ssd", [](RemoteReaderOptions& o, const py::handle& v) { set_from(o.include_ssd, v); }},
    {"load_timeout_ms", [](RemoteReaderOptions& o, const py::handle& v) { set_from(o.load_timeout_ms, v); }},
    {"lease_ms", [](RemoteReaderOptions& o, const py::handle& v) { set_from(o.lease_ms, v); }},
    {"timeout_ms", [](RemoteReaderOptions& o, const py::handle& v) { set_from(o.timeout_ms, v); }},
    {"ucx_retry_ms", [](RemoteReaderOptions& o, const py::handle& v) { set_from(o.ucx_retry_ms, v); }},
    {"tls_ca_file", [](RemoteReaderOptions& o, const py::handle& v) { set_from(o.tls_ca_file, v); }},
    {"tls_cert_file", [](RemoteReaderOptions& o, const py::handle& v) { set_from(o.tls_cert_file, v); }},
    {"tls_key_file", [](RemoteReaderOptions& o, const py::handle& v) { set_from(o.tls_key_file, v); }},
    {"tls_server_name", [](RemoteReaderOptions& o, const py::handle& v) { set_from(o.tls_server_name, v); }},
    {"token_file", [](RemoteReaderOptions& o, const py::handle& v) { set_from(o.token_file, v); }},
};

RemoteReaderOptions reader_options(const std::string& address, const py::kwargs& kwargs) {
  RemoteReaderOptions o;
  o.address = address;
  apply_options(o, kwargs, kReaderOptionFields, "RemoteReader option");
  return o;
}

py::dict fetch_dict(const RemoteFetch& f) {
  py::dict d;
  d["path"] = std::string(remote_path_name(f.path));
  d["blocks"] = f.blocks;
  d["bytes"] = f.bytes;
  d["held"] = f.held;
  d["corrupt"] = f.corrupt;
  py::list tiers;
  for (Tier t : f.tiers) tiers.append(std::string(tier_name(t)));
  d["tiers"] = tiers;
  return d;
}

py::dict fetch(RemoteReader& reader, const py::sequence& keys, const py::object& destination) {
  const std::vector<BlockKey> ks = keys_from(keys);
  Py_buffer view;
  if (PyObject_GetBuffer(destination.ptr(), &view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) != 0) {
    throw py::error_already_set();
  }
  Result<RemoteFetch> got = Status::internal("not fetched");
  {
    py::gil_scoped_release unlocked;  // the reads take milliseconds; other threads run meanwhile
    got = reader.fetch(ks, std::span(static_cast<uint8_t*>(view.buf), static_cast<size_t>(view.len)));
  }
  PyBuffer_Release(&view);
  return fetch_dict(take(std::move(got)));
}

void bind_remote_reader(py::module_& m) {
  py::class_<RemoteReader>(m, "RemoteReader",
                           "Blocks another node holds, read into this process: over UCX straight out of the node's "
                           "arena when both ends have it, over gRPC GetBlocks otherwise; every block checked against "
                           "its sealed checksum (thread-safe)")
      .def(py::init([](const std::string& address, const py::kwargs& options) {
             return take(RemoteReader::open(reader_options(address, options)));
           }),
           py::arg("address"),
           ("the node's gRPC host:port; keyword options (RemoteReaderOptions in kvtier/remote_reader.h): " +
            option_names(kReaderOptionFields))
               .c_str())
      .def("fetch", &fetch, py::arg("keys"), py::arg("destination"),
           "the held prefix of the chain `keys` into the writable buffer `destination`, blocks back to back, as "
           "many whole blocks as fit; returns {path, blocks, bytes, held, corrupt, tiers}")
      .def_property_readonly(
          "path", [](const RemoteReader& r) { return std::string(remote_path_name(r.path())); },
          "what the next fetch uses: 'ucx' or 'grpc'")
      .def_property_readonly("fallback_reason", &RemoteReader::fallback_reason,
                             "why fetches use GetBlocks now ('' when they use UCX)")
      .def(
          "stats",
          [](const RemoteReader& r) {
            const RemoteReaderStats s = r.stats();
            py::dict d;
            d["ucx_fetches"] = s.ucx_fetches;
            d["grpc_fetches"] = s.grpc_fetches;
            d["blocks"] = s.blocks;
            d["bytes"] = s.bytes;
            d["corrupt"] = s.corrupt;
            d["sessions"] = s.sessions;
            d["fallbacks"] = s.fallbacks;
            return d;
          },
          "counters of this reader");
  m.def("fetch_remote", &fetch, py::arg("node"), py::arg("keys"), py::arg("destination"),
        "node.fetch(keys, destination): the held prefix of `keys` from the node a RemoteReader reaches");
}

}  // namespace
}  // namespace kvtier::python

PYBIND11_MODULE(_remote, m) {
  m.doc() = "kvtier.RemoteReader: blocks of other nodes, over UCX or GetBlocks (docs/transport.md)";
  // Errors are kvtier._native's Error, the one type callers catch (a reference kept for good).
  pybind11::object error = pybind11::module_::import("kvtier._native").attr("Error");
  kvtier::python::g_error = error.release().ptr();
  kvtier::python::bind_remote_reader(m);
}

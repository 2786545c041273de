// Shared by the pybind11 module's files: Status → kvtier.Error, and keys as 16-byte `bytes`.
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "kvtier/block_key.h"
#include "kvtier/result.h"

namespace kvtier::python {

namespace py = pybind11;

// Status → kvtier.Error(code name, message); the error type is created in the module init.
inline PyObject* g_error = nullptr;

[[noreturn]] inline void raise(const Status& s) {
  auto err = py::reinterpret_borrow<py::object>(g_error);
  py::object e = err(std::string(status_code_name(s.code())) + ": " + s.message());
  e.attr("code") = std::string(status_code_name(s.code()));
  PyErr_SetObject(g_error, e.ptr());
  throw py::error_already_set();
}

template <typename T>
T take(Result<T> r) {
  if (!r.ok()) raise(r.status());
  return std::move(r).value();
}

inline void check(const Status& s) {
  if (!s.ok()) raise(s);
}

inline BlockKey key_from(const py::handle& obj) {
  if (!PyBytes_Check(obj.ptr()) || PyBytes_GET_SIZE(obj.ptr()) != static_cast<Py_ssize_t>(BlockKey::kBytes)) {
    throw py::value_error("a key is 16 bytes (the canonical form)");
  }
  return BlockKey::from_bytes(reinterpret_cast<const uint8_t*>(PyBytes_AS_STRING(obj.ptr())));
}

inline std::vector<BlockKey> keys_from(const py::sequence& seq) {
  std::vector<BlockKey> out;
  out.reserve(seq.size());
  for (const auto& k : seq) out.push_back(key_from(k));
  return out;
}

inline py::bytes key_bytes(const BlockKey& k) {
  const auto b = k.to_bytes();
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace kvtier::python

// Shared by the pybind11 module's files: Status → kvtier.Error, and keys as 16-byte `bytes`.
#pragma once

#include <pybind11/pybind11.h>

#include <algorithm>
#include <iterator>
#include <string>
#include <utility>
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

// Keyword options onto an options struct (ClientOptions, RemoteReaderOptions): each name's setter.
template <typename Options>
using OptionField = std::pair<const char*, void (*)(Options&, const py::handle&)>;

template <typename T>
void set_from(T& field, const py::handle& value) {
  field = py::cast<T>(value);
}

template <typename Options, size_t N>
std::string option_names(const OptionField<Options> (&fields)[N]) {
  std::string names;
  for (const auto& f : fields) (names += names.empty() ? "" : " ") += f.first;
  return names;
}

// TypeError for a name not in `fields` ("unknown <what> 'x' (options: ...)") or a value of the
// wrong type ("<what> 'x' has the wrong type: str").
template <typename Options, size_t N>
void apply_options(Options& o, const py::kwargs& kwargs, const OptionField<Options> (&fields)[N],
                   const std::string& what) {
  for (const auto& [name, value] : kwargs) {
    const auto key = py::cast<std::string>(name);
    const auto* field =
        std::find_if(std::begin(fields), std::end(fields), [&](const auto& f) { return key == f.first; });
    if (field == std::end(fields)) {
      std::string message = "unknown " + what;
      ((((message += " '") += key) += "' (options: ") += option_names(fields)) += ')';
      throw py::type_error(message);
    }
    try {
      field->second(o, value);
    } catch (const py::cast_error&) {
      std::string message = what;
      (((message += " '") += key) += "' has the wrong type: ") +=
          py::cast<std::string>(py::type::handle_of(value).attr("__name__"));
      throw py::type_error(message);
    }
  }
}

}  // namespace kvtier::python

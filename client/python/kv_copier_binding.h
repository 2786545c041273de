// The KvCopier part of the kvtier._native module (kv_copier_binding.cc).
#pragma once

#include <pybind11/pybind11.h>

namespace kvtier::python {

void bind_kv_copier(pybind11::module_& m);

}  // namespace kvtier::python

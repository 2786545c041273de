// The RemoteReader part of the kvtier._native module (remote_reader_binding.cc).
#pragma once

#include <pybind11/pybind11.h>

namespace kvtier::python {

void bind_remote_reader(pybind11::module_& m);

}  // namespace kvtier::python

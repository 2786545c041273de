// Host blocks and reservations as Python objects that export the arena's memory through the
// buffer protocol without a copy, counting live views (and copies in flight) so the memory is never
// released under them.
#pragma once

#include <pybind11/pybind11.h>

#include <optional>
#include <string>
#include <type_traits>

#include "binding_support.h"
#include "kvtier/client.h"

namespace kvtier::python {

// Memory exported through the buffer protocol, with a count of live views.
struct Exported {
  uint8_t* data = nullptr;
  size_t size = 0;
  bool readonly = true;
  int views = 0;
  int copies = 0;  // KvCopy tickets in flight that read or write this memory
};

// The memory may go away (release, commit, abandon) only when nothing looks at it.
inline void check_idle(const Exported& e, const char* what) {
  if (e.views > 0)
    throw py::buffer_error(std::to_string(e.views) + " views of the " + what + " are alive: drop them first");
  if (e.copies > 0)
    throw py::buffer_error(std::string("a copy into or out of the ") + what + " is in flight: wait() for it first");
}

inline int fill_buffer(PyObject* self, Py_buffer* view, int flags, Exported& e, const char* what) {
  if (e.data == nullptr && e.size == 0) {
    PyErr_Format(PyExc_BufferError, "the %s was released", what);
    return -1;
  }
  if ((flags & PyBUF_WRITABLE) != 0 && e.readonly) {
    PyErr_Format(PyExc_BufferError, "a %s is read-only", what);
    return -1;
  }
  if (PyBuffer_FillInfo(view, self, e.data, static_cast<Py_ssize_t>(e.size), e.readonly ? 1 : 0, flags) != 0) {
    return -1;
  }
  ++e.views;
  return 0;
}

// A leased host block. Python-side name: kvtier.HostBlock.
class PyHostBlock {
 public:
  explicit PyHostBlock(HostBlock b) : block_(std::move(b)) {
    exported_.data = const_cast<uint8_t*>(block_->data());  // NOLINT: exported read-only
    exported_.size = block_->size();
  }
  py::bytes key() const {
    alive();
    return key_bytes(block_->key());
  }
  size_t size() const { return exported_.size; }
  bool released() const { return !block_.has_value(); }
  void release() {
    check_idle(exported_, "block");
    block_.reset();
    exported_ = {};
  }
  py::bytes bytes() const {
    alive();
    return {reinterpret_cast<const char*>(exported_.data), exported_.size};
  }
  Exported& exported() { return exported_; }
  uint8_t* address() const {
    alive();
    return exported_.data;
  }

 private:
  void alive() const {
    if (!block_) throw py::value_error("the block was released");
  }
  std::optional<HostBlock> block_;
  Exported exported_;
};

// Arena space reserved for one block: write through the buffer, then commit().
class PyReservation {
 public:
  explicit PyReservation(PutReservation r) : r_(std::move(r)) {
    if (!r_->exists()) {
      exported_.data = r_->data();
      exported_.size = r_->size();
      exported_.readonly = false;
    }
  }
  bool exists() const { return r_.has_value() && r_->exists(); }
  size_t size() const { return r_.has_value() ? r_->size() : 0; }
  void commit() {
    if (!r_) throw py::value_error("the reservation was already committed or abandoned");
    check_idle(exported_, "reservation");
    PutReservation r = std::move(*r_);
    r_.reset();
    exported_ = {};
    check(std::move(r).commit());
  }
  void abandon() {
    check_idle(exported_, "reservation");
    r_.reset();  // dropped uncommitted: the space is freed
    exported_ = {};
  }
  Exported& exported() { return exported_; }
  uint8_t* address() const {
    if (!r_ || r_->exists())
      throw py::value_error("the reservation holds no space (committed, abandoned, or the block existed)");
    return exported_.data;
  }

 private:
  std::optional<PutReservation> r_;
  Exported exported_;
};

template <typename T>
int get_buffer(PyObject* self, Py_buffer* view, int flags) {
  auto& obj = py::cast<T&>(py::handle(self));
  return fill_buffer(self, view, flags, obj.exported(), std::is_same_v<T, PyHostBlock> ? "block" : "reservation");
}

template <typename T>
void release_buffer(PyObject* self, Py_buffer*) {
  auto& obj = py::cast<T&>(py::handle(self));
  if (obj.exported().views > 0) --obj.exported().views;
}

// pybind11's own buffer slots cannot count views; these replace them on the two classes.
template <typename T>
void install_buffer_slots(py::handle cls) {
  auto* type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  type->tp_as_buffer->bf_getbuffer = &get_buffer<T>;
  type->tp_as_buffer->bf_releasebuffer = &release_buffer<T>;
}

}  // namespace kvtier::python

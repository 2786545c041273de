// kvtier.KvCopier and kvtier.KvCopy: copies between an engine's paged KV cache and host blocks
// (kvtier/paged_kv.h), for Python engines such as the vLLM connector.
#include "kv_copier_binding.h"

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "binding_support.h"
#include "host_buffers.h"
#include "kvtier/client.h"
#include "kvtier/paged_kv.h"

namespace kvtier::python {
namespace {

// A copy started by a KvCopier. It keeps its host blocks and reservations from being released or
// committed until wait() (or until it is dropped, which waits). Copies given arena offsets hold
// nothing: whoever handed out the offsets keeps the blocks until the copy is done.
class PyKvCopy {
 public:
  PyKvCopy(std::shared_ptr<KvCopier> copier, KvCopyTicket ticket, std::vector<py::object> holders)
      : copier_(std::move(copier)), ticket_(ticket), holders_(std::move(holders)) {}
  PyKvCopy(const PyKvCopy&) = delete;
  PyKvCopy& operator=(const PyKvCopy&) = delete;
  PyKvCopy(PyKvCopy&&) = default;
  PyKvCopy& operator=(PyKvCopy&&) = delete;
  ~PyKvCopy() {
    if (copier_ && !finished_) {
      (void)copier_->wait(ticket_);  // the memory must not be reused under a copy in flight
      unhold();
    }
  }

  void wait() {
    if (finished_) return;
    Status s;
    {
      py::gil_scoped_release unlocked;
      s = copier_->wait(ticket_);
    }
    finished_ = true;
    unhold();
    check(s);
  }
  bool done() { return finished_ || take(copier_->done(ticket_)); }
  void order_before(uintptr_t stream) {
    if (!finished_) check(copier_->order_before(ticket_, stream));
  }

 private:
  void unhold() {
    for (auto& h : holders_) {
      if (py::isinstance<PyHostBlock>(h)) --h.cast<PyHostBlock&>().exported().copies;
      if (py::isinstance<PyReservation>(h)) --h.cast<PyReservation&>().exported().copies;
    }
    holders_.clear();
  }
  std::shared_ptr<KvCopier> copier_;
  KvCopyTicket ticket_;
  std::vector<py::object> holders_;
  bool finished_ = false;
};

// [(base, block_stride, chunk_bytes), ...] → a layout.
PagedKvLayout layout_from(const py::sequence& tensors, uint32_t num_blocks) {
  PagedKvLayout layout;
  layout.num_blocks = num_blocks;
  for (const auto& item : tensors) {
    const auto t = item.cast<py::tuple>();
    if (t.size() != 3) throw py::value_error("a KV tensor is (base address, block stride, chunk bytes)");
    layout.tensors.push_back({t[0].cast<uint64_t>(), t[1].cast<uint64_t>(), t[2].cast<uint64_t>()});
  }
  return layout;
}

// Copies between an engine's paged KV cache and host blocks. Python-side name: kvtier.KvCopier.
class PyKvCopier {
 public:
  PyKvCopier(std::unique_ptr<KvCopier> c, std::span<uint8_t> arena) : copier_(std::move(c)), arena_(arena) {}

  PyKvCopy start(const std::string& direction, const py::sequence& block_ids, const py::sequence& blocks,
                 uint32_t first, uint32_t count, uintptr_t after_stream) {
    KvCopyDirection dir{};
    if (direction == "offload") {
      dir = KvCopyDirection::kOffload;
    } else if (direction == "onboard") {
      dir = KvCopyDirection::kOnboard;
    } else {
      throw py::value_error("direction is 'offload' (cache to host blocks) or 'onboard' (host blocks to cache)");
    }
    if (block_ids.size() != blocks.size()) throw py::value_error("one host block per block id");
    std::vector<KvBlockCopy> copies;
    std::vector<py::object> holders;
    copies.reserve(blocks.size());
    for (size_t i = 0; i < blocks.size(); ++i) {
      py::object b = blocks[i];
      uint8_t* host = nullptr;
      if (py::isinstance<py::int_>(b)) {  // an offset into the client's arena (blocks another process holds)
        host = arena_address(b.cast<uint64_t>());
        copies.push_back({block_ids[i].cast<uint32_t>(), host});
        continue;
      }
      if (py::isinstance<PyReservation>(b)) {
        host = b.cast<PyReservation&>().address();
      } else if (py::isinstance<PyHostBlock>(b) && dir == KvCopyDirection::kOnboard) {
        host = b.cast<PyHostBlock&>().address();
      } else {
        throw py::type_error(
            "an offload writes into Reservations; an onboard reads HostBlocks or Reservations; either takes arena "
            "offsets (int)");
      }
      if (b.attr("__len__")().cast<uint64_t>() != copier_->layout().block_bytes()) {
        throw py::value_error("a host block's size differs from the layout's block bytes");
      }
      copies.push_back({block_ids[i].cast<uint32_t>(), host});
      holders.push_back(std::move(b));
    }
    Result<KvCopyTicket> ticket = Status::internal("not started");
    {
      py::gil_scoped_release unlocked;
      ticket = copier_->start(dir, copies, {first, count}, after_stream);
    }
    const KvCopyTicket t = take(std::move(ticket));
    for (auto& h : holders) {
      if (py::isinstance<PyHostBlock>(h)) ++h.cast<PyHostBlock&>().exported().copies;
      if (py::isinstance<PyReservation>(h)) ++h.cast<PyReservation&>().exported().copies;
    }
    return {copier_, t, std::move(holders)};
  }
  const KvCopier& copier() const { return *copier_; }

 private:
  uint8_t* arena_address(uint64_t offset) const {
    if (arena_.empty()) throw py::value_error("arena offsets need a KvCopier made with a client");
    const uint64_t bytes = copier_->layout().block_bytes();
    if (offset > arena_.size() || arena_.size() - offset < bytes) {
      throw py::value_error("arena offset " + std::to_string(offset) + " + a block of " + std::to_string(bytes) +
                            " bytes is outside the arena (" + std::to_string(arena_.size()) + " bytes)");
    }
    return arena_.data() + offset;
  }
  std::shared_ptr<KvCopier> copier_;
  std::span<uint8_t> arena_;  // the client's host arena, for copies given offsets (empty without a client)
};

}  // namespace

void bind_kv_copier(py::module_& m) {
  py::class_<PyKvCopy>(m, "KvCopy", "A copy in flight; its host blocks stay held until wait()")
      .def("wait", &PyKvCopy::wait, "block until the copy is complete (without the GIL)")
      .def("done", &PyKvCopy::done, "whether the copy is complete")
      .def("order_before", &PyKvCopy::order_before, py::arg("stream"),
           "make a CUDA stream (its handle as an int) wait for the copy without blocking");

  m.def("cuda_copy_built", &cuda_kv_copy_built, "whether this build has the CUDA copy path");
  py::class_<PyKvCopier>(m, "KvCopier", "Copies between an engine's paged KV cache and host blocks (docs/engines.md)")
      .def(py::init([](const py::sequence& tensors, uint32_t num_blocks, int device, const Client* client,
                       const std::string& method) {
             PagedKvLayout layout = layout_from(tensors, num_blocks);
             const std::span<uint8_t> arena = client != nullptr ? client->host_memory() : std::span<uint8_t>{};
             if (device < 0) return PyKvCopier(take(make_host_kv_copier(std::move(layout))), arena);
             CudaKvCopierOptions o;
             o.device = device;
             o.host_memory = arena;
             if (method == "memcpy") {
               o.method = CudaKvCopierOptions::Method::kMemcpy;
             } else if (method != "kernel") {
               throw py::value_error("method is 'kernel' or 'memcpy'");
             }
             return PyKvCopier(take(make_cuda_kv_copier(std::move(layout), o)), arena);
           }),
           py::keep_alive<1, 5>(),  // the client's arena stays mapped while the copier may copy into it
           py::arg("tensors"), py::arg("num_blocks"), py::arg("device") = -1, py::arg("client") = nullptr,
           py::arg("method") = "kernel",
           "tensors: [(base, block_stride, chunk_bytes)] in host-block order; device -1: a cache in host memory "
           "(memcpy), else the CUDA device (its copies use the client's registered host arena); with a client, "
           "blocks may also be given as offsets into its arena")
      .def_property_readonly("block_bytes", [](const PyKvCopier& c) { return c.copier().layout().block_bytes(); })
      .def_property_readonly("tensors", [](const PyKvCopier& c) { return c.copier().layout().tensors.size(); })
      .def_property_readonly("method", [](const PyKvCopier& c) { return std::string(c.copier().method()); })
      .def("start", &PyKvCopier::start, py::arg("direction"), py::arg("block_ids"), py::arg("blocks"),
           py::arg("first") = 0, py::arg("count") = 0, py::arg("after_stream") = 0,
           "start copying tensors [first, first+count) (count 0: to the end) of each block: 'offload' into "
           "Reservations, 'onboard' from HostBlocks (either: int offsets into the client's arena, for blocks held "
           "elsewhere); returns a KvCopy");
}

}  // namespace kvtier::python

// ops/context.cpp: exec_context and scratch_arena (see context.h).
#include "ops/context.h"

#include <algorithm>

#include "core/error.h"
#include "ops/ops.h"

namespace autoglm {

namespace {

constexpr size_t k_min_chunk = size_t(4) << 20;
constexpr size_t k_align = 256;  // cache lines on the CPU, coalescing on GPUs

}  // namespace

scratch_arena::scratch_arena(device dev) : dev_(dev) {}

scratch_arena::~scratch_arena() {
  for (chunk& c : chunks_)
    if (c.data) kernel_registry::instance().memory(dev_.kind).free(dev_, c.data);
}

tensor scratch_arena::alloc(dtype type, const std::vector<int64_t>& shape) {
  tensor t = tensor::view(nullptr, type, shape, dev_);
  const size_t bytes = std::max<size_t>(k_align, (t.n_bytes() + k_align - 1) / k_align * k_align);
  chunk* target = nullptr;
  for (chunk& c : chunks_)
    if (c.size - c.used >= bytes) {
      target = &c;
      break;
    }
  if (!target) {
    // Chunks never move (handed-out tensors stay valid); each new one at least doubles what exists.
    size_t want = std::max({bytes, k_min_chunk, bytes_reserved()});
    chunk c;
    c.data = kernel_registry::instance().memory(dev_.kind).alloc(dev_, want);
    c.size = want;
    chunks_.push_back(c);
    target = &chunks_.back();
    ++generation_;
  }
  void* p = static_cast<uint8_t*>(target->data) + target->used;
  target->used += bytes;
  in_use_ += bytes;
  high_water_ = std::max(high_water_, in_use_);
  return tensor::view(p, type, shape, dev_);
}

void scratch_arena::reset() {
  // Several chunks mean the last pass outgrew the first: merge into one of the total size for the next pass.
  if (chunks_.size() > 1) {
    const size_t total = bytes_reserved();
    const device_memory& mem = kernel_registry::instance().memory(dev_.kind);
    for (chunk& c : chunks_) mem.free(dev_, c.data);
    chunks_.clear();
    chunk c;
    c.data = mem.alloc(dev_, total);
    c.size = total;
    chunks_.push_back(c);
    ++generation_;
  }
  for (chunk& c : chunks_) c.used = 0;
  in_use_ = 0;
}

scratch_arena::mark scratch_arena::get_mark() const {
  mark m;
  for (const chunk& c : chunks_) m.used.push_back(c.used);
  m.in_use = in_use_;
  return m;
}

void scratch_arena::restore(const mark& m) {
  AG_CHECK(m.used.size() == chunks_.size(), "scratch_arena::restore: a mark of another generation");
  for (size_t i = 0; i < chunks_.size(); ++i) chunks_[i].used = m.used[i];
  in_use_ = m.in_use;
  high_water_ = std::max(high_water_, in_use_);
}

size_t scratch_arena::bytes_reserved() const {
  size_t n = 0;
  for (const chunk& c : chunks_) n += c.size;
  return n;
}

exec_context::exec_context(device dev, int32_t n_threads) : arena_((ops::init_backends(), dev)) {
  kc_.dev = dev;
  if (dev.kind == device_kind::CPU) {
    pool_ = std::make_unique<thread_pool>(n_threads);
    kc_.pool = pool_.get();
  } else {
    // GPU kernels still use a small host pool for host-side work (packing inputs).
    pool_ = std::make_unique<thread_pool>(1);
    kc_.pool = pool_.get();
  }
  // A device this build or machine cannot run says why (no CUDA backend built, no such device) before the
  // registry's generic "no backend" would.
  if (const std::string why = ops::device_problem(dev); !why.empty()) throw error(why);
  const device_memory& mem = kernel_registry::instance().memory(dev.kind);  // throws: no such backend
  if (mem.create_stream) kc_.stream = mem.create_stream(dev);
}

exec_context::~exec_context() {
  const device_memory& mem = kernel_registry::instance().memory(kc_.dev.kind);
  if (kc_.stream && mem.destroy_stream) mem.destroy_stream(kc_.dev, kc_.stream);
}

}  // namespace autoglm

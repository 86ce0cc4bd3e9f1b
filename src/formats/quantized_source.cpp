// formats/quantized_source.cpp: see quantized_source.h.
#include "formats/quantized_source.h"

#include <sys/mman.h>
#include <unistd.h>

#include "core/error.h"
#include "formats/quantize.h"

namespace autoglm {

namespace {

// Only pages wholly inside [p, p + n): a neighbouring tensor may still be read from the same page. A private
// read-only file mapping rereads a dropped page if anything touches it later.
void release_file_pages(const void* p, size_t n) {
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t a = uintptr_t(p), begin = (a + page - 1) / page * page, end = (a + n) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace

quantized_source::quantized_source(const tensor_source& base, const policy& pick, thread_pool* pool,
                                   bool release_base_pages)
    : base_(base) {
  for (const std::string& name : base.names()) {
    const entry& e = base.at(name);
    const dtype stored = e.data.type(), want = pick(name, e.shape, stored);
    if (want == stored) continue;
    entry out;
    out.name = e.name;
    out.file = e.file;
    out.shape = e.shape;
    try {
      if (want != dtype::I8 && !quant::can_quantize(want))
        throw error(std::string(dtype_name(want)) + " is not a type weights can be converted to");
      out.data = quant::quantize_tensor(e.data, want, want == dtype::I8 ? &out.scales : nullptr, pool);
    } catch (const error& err) {
      throw error(e.file + ": tensor '" + name + "' (" + dtype_name(stored) + " " + shape_str(e.shape) +
                  ") cannot be stored as " + dtype_name(want) + ": " + err.what());
    }
    bytes_before_ += e.data.n_bytes();
    bytes_after_ += out.data.n_bytes() + (out.scales.empty() ? 0 : out.scales.n_bytes());
    if (release_base_pages && e.data.is_contiguous()) release_file_pages(e.data.data(), e.data.n_bytes());
    converted_.emplace(name, std::move(out));
  }
}

const tensor_source::entry* quantized_source::find(const std::string& name) const {
  auto it = converted_.find(name);
  return it != converted_.end() ? &it->second : base_.find(name);
}

}  // namespace autoglm

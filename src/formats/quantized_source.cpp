// formats/quantized_source.cpp: see quantized_source.h.
#include "formats/quantized_source.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/file_io.h"
#include "core/quant_blocks.h"
#include "core/thread_pool.h"
#include "formats/quantize.h"

namespace autoglm {

namespace {

// Rows of F32 converted at a time: the F32 copy of a BF16 slab stays near 16 MB, however large the tensor (a 9B
// model's token table is 2.5 GB as F32).
constexpr int64_t k_slab_f32_bytes = int64_t(16) << 20;

// `src` as `want` (with per-row scales for I8), slab by slab: each slab's rows are read as F32 on the pool, handed
// to the quantizer, and (with `release`) their mapped pages given back. Row by row this is quant::quantize_tensor's
// computation (dequantize_row, then quantize_rows / quantize_rows_i8), so the bytes are the same.
tensor convert(const tensor& src, dtype want, tensor* scales, thread_pool* pool, bool release) {
  if (!(src.type() == dtype::F32 || src.type() == dtype::F16 || src.type() == dtype::BF16))
    throw error(std::string("the stored type must be F32, F16 or BF16 to be converted, not ") + dtype_name(src.type()));
  if (want != dtype::I8 && !quant::can_quantize(want))
    throw error(std::string(dtype_name(want)) + " is not a type weights can be converted to");
  if (want != dtype::I8 && !dtype_row_fits(want, src.cols()))
    throw error(std::string(dtype_name(want)) + " stores rows in blocks of " + std::to_string(dtype_block_elems(want)) +
                " elements; a row of " + std::to_string(src.cols()) + " does not divide");
  const int64_t rows = src.rows(), cols = src.cols();
  tensor out = tensor::empty_host(want, src.shape());
  if (want == dtype::I8) *scales = tensor::empty_host(dtype::F32, {rows});
  const int64_t slab = std::max<int64_t>(1, k_slab_f32_bytes / std::max<int64_t>(1, cols * 4));
  std::vector<float> f32(size_t(std::min(slab, rows) * cols));
  for (int64_t r0 = 0; r0 < rows; r0 += slab) {
    const int64_t n = std::min(slab, rows - r0);
    parallel_for(pool, n, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, cols)), [&](int64_t a, int64_t b) {
      for (int64_t r = a; r < b; ++r) quant::dequantize_row(src.type(), src.row(r0 + r), f32.data() + r * cols, cols);
    });
    try {
      if (want == dtype::I8)
        quant::quantize_rows_i8(f32.data(), reinterpret_cast<int8_t*>(out.row(r0)), scales->ptr<float>() + r0, n, cols,
                                pool);
      else
        quant::quantize_rows(want, f32.data(), out.row(r0), n, cols, pool);
    } catch (const error& e) {
      throw error(std::string(e.what()) + " (counting from row " + std::to_string(r0) + ")");
    }
    if (release && src.is_contiguous()) release_file_pages(src.row(r0), size_t(n) * size_t(src.row_stride()));
  }
  return out;
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
      out.data = convert(e.data, want, &out.scales, pool, release_base_pages);
    } catch (const error& err) {
      throw error(e.file + ": tensor '" + name + "' (" + dtype_name(stored) + " " + shape_str(e.shape) +
                  ") cannot be stored as " + dtype_name(want) + ": " + err.what());
    }
    out.private_copy = true;
    bytes_before_ += e.data.n_bytes();
    bytes_after_ += out.data.n_bytes() + (out.scales.empty() ? 0 : out.scales.n_bytes());
    converted_.emplace(name, std::move(out));
  }
}

void quantized_source::release(const std::string& name) const {
  auto it = converted_.find(name);
  if (it == converted_.end()) return;
  it->second.data = tensor();
  it->second.scales = tensor();
}

const tensor_source::entry* quantized_source::find(const std::string& name) const {
  auto it = converted_.find(name);
  return it != converted_.end() ? &it->second : base_.find(name);
}

}  // namespace autoglm

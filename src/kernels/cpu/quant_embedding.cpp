// kernels/cpu/quant_embedding.cpp: the row gather from block-quantized tables (see quant_embedding.h). One row
// of the 9B model's token table is 4096 values: dequantizing it costs far less than the rest of a decode step, so
// the scalar reference dequantizer serves every ISA (and is by construction the values every test expects).
#include "kernels/cpu/quant_embedding.h"

#include <algorithm>
#include <string>

#include "core/quant_blocks.h"
#include "core/thread_pool.h"
#include "kernels/cpu/kernel_util.h"

namespace autoglm::cpu {

bool quant_embedding_supports(dtype t) { return dtype_is_block(t) && quant::can_dequantize(t); }

void quant_embedding_kernel(const kernel_context& kc, const tensor& table, const tensor& ids, tensor& out) {
  AG_CHECK(quant_embedding_supports(table.type()),
           std::string("embedding: no block dequantizer for a ") + dtype_name(table.type()) + " table");
  AG_CHECK(ids.is_contiguous(), "embedding: ids must be contiguous");
  const auto* tab = static_cast<const uint8_t*>(table.data());
  // A block-type tensor's rows are whole blocks (tensor::view checks it); its row stride may be padded.
  const int64_t trs = table.row_stride(), n_rows = table.rows(), d = out.cols();
  AG_CHECK(table.cols() == d, "embedding: table rows of " + std::to_string(table.cols()) + " values, out rows of " +
                                  std::to_string(d));
  const int32_t* id = ids.ptr<int32_t>();
  const auto o = f32_rows(out, "embedding out");
  parallel_for(kc.pool, out.rows(), std::max<int64_t>(1, 16384 / std::max<int64_t>(1, d)), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      AG_CHECK(id[i] >= 0 && id[i] < n_rows, "embedding: id " + std::to_string(id[i]) + " outside the table of " +
                                                 std::to_string(n_rows) + " rows");
      quant::dequantize_row(table.type(), tab + id[i] * trs, o[i], d);
    }
  });
}

}  // namespace autoglm::cpu

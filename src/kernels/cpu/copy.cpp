// kernels/cpu/copy.cpp: strided, converting COPY and the EMBEDDING gather (see copy.h).
//
// COPY first collapses each side's dimensions that are contiguous with their neighbour, then walks runs of
// L = gcd(src innermost extent, dst innermost extent) elements: within a run both sides advance by their
// innermost stride, so a permute such as [n, 4, d] -> [n, d, 4] or a conversion of a contiguous block is a few
// long runs, and only the run starts need an index decomposition.
#include "kernels/cpu/copy.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>

#include "core/thread_pool.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/kernel_util.h"

namespace autoglm::cpu {

namespace {

// A tensor's layout reduced to its essential dimensions (row-major, sizes > 1 merged where contiguous).
struct layout {
  int n = 0;
  int64_t shape[k_max_dims] = {};
  int64_t stride[k_max_dims] = {};  // bytes

  explicit layout(const tensor& t) {
    for (int i = 0; i < t.n_dims(); ++i) {
      if (t.dim(i) == 1) continue;
      if (n > 0 && stride[n - 1] == t.stride(i) * t.dim(i)) {
        shape[n - 1] *= t.dim(i);
        stride[n - 1] = t.stride(i);
      } else {
        shape[n] = t.dim(i);
        stride[n] = t.stride(i);
        ++n;
      }
    }
    if (n == 0) {  // a single element
      shape[0] = 1;
      stride[0] = int64_t(dtype_size(t.type()));
      n = 1;
    }
  }
  int64_t inner() const { return shape[n - 1]; }
  int64_t inner_stride() const { return stride[n - 1]; }
  // Byte offset of the element with row-major index e.
  int64_t offset(int64_t e) const {
    int64_t off = 0;
    for (int i = n - 1; i >= 0; --i) {
      off += (e % shape[i]) * stride[i];
      e /= shape[i];
    }
    return off;
  }
};

bool copyable(dtype t) { return t == dtype::F32 || t == dtype::F16 || t == dtype::BF16 || t == dtype::I32; }

inline float load_f(dtype t, const uint8_t* p) {
  switch (t) {
    case dtype::F32: { float f; std::memcpy(&f, p, 4); return f; }
    case dtype::F16: { uint16_t h; std::memcpy(&h, p, 2); return f16_to_f32(h); }
    case dtype::BF16: { uint16_t h; std::memcpy(&h, p, 2); return bf16_to_f32(h); }
    default: { int32_t i; std::memcpy(&i, p, 4); return float(i); }
  }
}

inline int32_t to_i32(float f) {
  if (std::isnan(f)) return 0;
  if (f >= 2147483647.0f) return INT32_MAX;
  if (f <= -2147483648.0f) return INT32_MIN;
  return int32_t(f);
}

inline void store_f(dtype t, uint8_t* p, float f) {
  switch (t) {
    case dtype::F32: std::memcpy(p, &f, 4); return;
    case dtype::F16: { uint16_t h = f32_to_f16(f); std::memcpy(p, &h, 2); return; }
    case dtype::BF16: { uint16_t h = f32_to_bf16(f); std::memcpy(p, &h, 2); return; }
    default: { int32_t i = to_i32(f); std::memcpy(p, &i, 4); return; }
  }
}

// One run of n elements: src and dst advance by their own strides (bytes).
void copy_run(dtype st, const uint8_t* s, int64_t ss, dtype dt, uint8_t* d, int64_t ds, int64_t n) {
  const int64_t se = int64_t(dtype_size(st)), de = int64_t(dtype_size(dt));
  if (ss == se && ds == de) {
    if (st == dt) {
      std::memcpy(d, s, size_t(n * se));
      return;
    }
    if (dt == dtype::F32 && st != dtype::I32) {
      convert_to_f32(st, s, reinterpret_cast<float*>(d), n);
      return;
    }
    if (st == dtype::F32 && dt != dtype::I32) {
      convert_from_f32(dt, reinterpret_cast<const float*>(s), d, n);
      return;
    }
  }
  if (st == dt) {  // exact, whatever the type (I32 must not round through float)
    for (int64_t i = 0; i < n; ++i) std::memcpy(d + i * ds, s + i * ss, size_t(se));
    return;
  }
  for (int64_t i = 0; i < n; ++i) store_f(dt, d + i * ds, load_f(st, s + i * ss));
}

}  // namespace

void copy_kernel(const kernel_context& kc, const tensor& src, tensor& dst) {
  AG_CHECK(copyable(src.type()) && copyable(dst.type()), std::string("copy: ") + dtype_name(src.type()) + " -> " +
                                                             dtype_name(dst.type()) + " is not supported on the CPU");
  const int64_t total = src.n_elements();
  AG_CHECK(total == dst.n_elements(), "copy: element counts differ");
  if (total == 0) return;
  const layout sl(src), dl(dst);
  const int64_t run = std::gcd(sl.inner(), dl.inner());
  const int64_t n_runs = total / run;
  const auto* sbase = static_cast<const uint8_t*>(src.data());
  auto* dbase = static_cast<uint8_t*>(dst.data());
  parallel_for(kc.pool, n_runs, std::max<int64_t>(1, 16384 / run), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t e = r * run;
      copy_run(src.type(), sbase + sl.offset(e), sl.inner_stride(), dst.type(), dbase + dl.offset(e),
               dl.inner_stride(), run);
    }
  });
}

void embedding_kernel(const kernel_context& kc, const tensor& table, const tensor& ids, tensor& out) {
  AG_CHECK(table.type() == dtype::F32 || table.type() == dtype::F16 || table.type() == dtype::BF16,
           std::string("embedding: CPU tables are F32, F16 or BF16, not ") + dtype_name(table.type()));
  AG_CHECK(table.n_dims() == 1 || table.stride(-1) == int64_t(dtype_size(table.type())),
           "embedding: table rows must be contiguous");
  AG_CHECK(ids.is_contiguous(), "embedding: ids must be contiguous");
  const auto* tab = static_cast<const uint8_t*>(table.data());
  const int64_t trs = table.row_stride(), n_rows = table.rows(), d = out.cols();
  const int32_t* id = ids.ptr<int32_t>();
  const auto o = f32_rows(out, "embedding out");
  parallel_for(kc.pool, out.rows(), std::max<int64_t>(1, 16384 / std::max<int64_t>(1, d)), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      AG_CHECK(id[i] >= 0 && id[i] < n_rows, "embedding: id " + std::to_string(id[i]) + " outside the table of " +
                                                 std::to_string(n_rows) + " rows");
      convert_to_f32(table.type(), tab + id[i] * trs, o[i], d);
    }
  });
}

}  // namespace autoglm::cpu

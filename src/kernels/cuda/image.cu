// kernels/cuda/image.cu: IMAGE_PATCHES on the GPU (see kernels.h): the vision tower's input made from the decoded
// image on the device, so the host does no per-pixel work and uploads the image's bytes (7.8 MB for a 1080x2400
// screenshot) instead of 63 MB of F32 patch rows. Three kernels:
//  - the horizontal resize pass over the input rows the vertical taps touch, one thread per output pixel;
//  - the vertical pass, one thread per output byte;
//  - the patch layout, one thread per output value: each byte becomes its channel's table value (F32, or BF16
//    rounded once).
// Both passes use media/resize_bicubic.cpp's integer arithmetic (int32 sums of uint8 x fixed-point weights, started
// at half a unit, shifted by the precision, clamped to 0..255), so the resized bytes are the host's, bit for bit.
#include <algorithm>
#include <string>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels.h"

namespace autoglm::cuda {

namespace {

// One axis's taps on the device (autoglm/types.h resample_axis).
struct dev_taps {
  const int32_t* first;
  const int32_t* count;
  const int32_t* weight;  // [out, ksize]
  int ksize, precision;
};

__device__ inline uint8_t clamp_shift(int32_t acc, int precision) {
  return uint8_t(min(max(acc >> precision, 0), 255));
}

// dst [n_rows, out_w, 3] = the horizontal pass over src rows row0 .. row0 + n_rows - 1 (src [*, in_w, 3]).
__global__ void resample_horizontal(const uint8_t* src, int64_t in_w, int64_t row0, int64_t n_rows, uint8_t* dst,
                                    int64_t out_w, dev_taps t) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_rows * out_w) return;
  const int64_t r = i / out_w, x = i - r * out_w;
  const uint8_t* s = src + ((row0 + r) * in_w + t.first[x]) * 3;
  const int32_t* w = t.weight + x * t.ksize;
  int32_t a0 = int32_t{1} << (t.precision - 1), a1 = a0, a2 = a0;
  for (int k = 0, n = t.count[x]; k < n; ++k, s += 3) {
    a0 += int32_t(s[0]) * w[k];
    a1 += int32_t(s[1]) * w[k];
    a2 += int32_t(s[2]) * w[k];
  }
  uint8_t* d = dst + i * 3;
  d[0] = clamp_shift(a0, t.precision);
  d[1] = clamp_shift(a1, t.precision);
  d[2] = clamp_shift(a2, t.precision);
}

// dst [out_h, row_bytes] = the vertical pass over src rows (src row 0 is input row row0).
__global__ void resample_vertical(const uint8_t* src, int64_t row_bytes, int64_t row0, uint8_t* dst, int64_t out_h,
                                  dev_taps t) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= out_h * row_bytes) return;
  const int64_t y = i / row_bytes, j = i - y * row_bytes;
  const uint8_t* s = src + (t.first[y] - row0) * row_bytes + j;
  const int32_t* w = t.weight + y * t.ksize;
  int32_t a = int32_t{1} << (t.precision - 1);
  for (int k = 0, n = t.count[y]; k < n; ++k, s += row_bytes) a += int32_t(*s) * w[k];
  dst[i] = clamp_shift(a, t.precision);
}

// out [grid_h * grid_w, 3 * temporal * p * p]: rows (hb, wb, hm, wm), each (c, t, py, px) = values[c][img byte]
// (img [grid_h * p, grid_w * p, 3]; the frame repeated over t), as media's glm4v_patchify. Blocks take rows in
// turn (the table is loaded once per block), threads the values of a row.
template <bool BF16>
__global__ void patch_rows(const uint8_t* img, int64_t width, int grid_w, int p, int temporal, int merge,
                           const float* values, void* out, int n_rows) {
  __shared__ float table[768];
  for (int i = threadIdx.x; i < 768; i += blockDim.x) table[i] = values[i];
  __syncthreads();
  const int plane = p * p, row_len = 3 * temporal * plane, mm = merge * merge, blocks_w = grid_w / merge;
  for (int row = blockIdx.x; row < n_rows; row += gridDim.x) {
    const int block = row / mm, in_block = row - block * mm, hm = in_block / merge, wm = in_block % merge;
    const int hb = block / blocks_w, wb = block - hb * blocks_w;
    const int64_t y0 = int64_t(hb * merge + hm) * p, x0 = int64_t(wb * merge + wm) * p;
    for (int col = threadIdx.x; col < row_len; col += blockDim.x) {
      const int c = col / (plane * temporal), r = col % plane, py = r / p, px = r - py * p;
      const float v = table[c * 256 + img[((y0 + py) * width + x0 + px) * 3 + c]];
      const int64_t at = int64_t(row) * row_len + col;
      if (BF16) static_cast<uint16_t*>(out)[at] = f32_to_bf16_bits(v);
      else static_cast<float*>(out)[at] = v;
    }
  }
}

// Consecutive 16-byte-aligned pieces of one workspace.
struct pieces {
  size_t used = 0;
  size_t take(size_t bytes) {
    const size_t at = used;
    used += (bytes + 15) / 16 * 16;
    return at;
  }
};

size_t taps_bytes(const resample_axis& a) { return (a.first.size() + a.count.size() + a.weight.size()) * 4; }

}  // namespace

void image_patches_kernel(const kernel_context& kc, const raw_image& img, int32_t patch, int32_t temporal,
                          int32_t merge, tensor& out) {
  const act_mat om = act_of(out, "image_patches out");
  AG_CHECK(om.ld == om.cols, "image_patches: out must be contiguous");
  const resample_axis &ha = img.horizontal, &va = img.vertical;
  const bool need_h = ha.in_size != ha.out_size, need_v = va.in_size != va.out_size;
  const int64_t in_w = img.width, out_w = ha.out_size, out_h = va.out_size;
  // The input rows the vertical taps read (all of them without a vertical pass): the horizontal pass's rows.
  int64_t row0 = 0, row_end = img.height;
  if (need_v) {
    row0 = *std::min_element(va.first.begin(), va.first.end());
    row_end = 0;
    for (int32_t y = 0; y < va.out_size; ++y)
      row_end = std::max<int64_t>(row_end, int64_t(va.first[size_t(y)]) + va.count[size_t(y)]);
  }
  const int64_t n_rows = row_end - row0;
  const size_t src_bytes = img.rgb.size(), mid_bytes = need_h && need_v ? size_t(n_rows * out_w * 3) : 0,
               resized_bytes = need_h || need_v ? size_t(out_h * out_w * 3) : 0;
  pieces at;
  const size_t o_src = at.take(src_bytes), o_h = at.take(taps_bytes(ha)), o_v = at.take(taps_bytes(va)),
               o_values = at.take(sizeof(img.byte_values)), o_mid = at.take(mid_bytes),
               o_resized = at.take(resized_bytes);
  stream_state& s = state_of(kc);
  const cudaStream_t st = stream_of(s);
  auto* base = static_cast<uint8_t*>(workspace(s, at.used, "image_patches"));
  // Pageable sources: each copy returns once its bytes are staged, so nothing here must outlive the call.
  auto upload = [&](size_t offset, const void* src, size_t bytes) {
    if (bytes) check(cudaMemcpyAsync(base + offset, src, bytes, cudaMemcpyHostToDevice, st), "image_patches upload");
  };
  auto upload_taps = [&](size_t offset, const resample_axis& a) -> dev_taps {
    const size_t n = a.first.size();
    upload(offset, a.first.data(), n * 4);
    upload(offset + n * 4, a.count.data(), n * 4);
    upload(offset + n * 8, a.weight.data(), a.weight.size() * 4);
    const auto* p = reinterpret_cast<const int32_t*>(base + offset);
    return {p, p + n, p + 2 * n, a.ksize, a.precision};
  };
  upload(o_src, img.rgb.data(), src_bytes);
  const dev_taps th = upload_taps(o_h, ha), tv = upload_taps(o_v, va);
  upload(o_values, img.byte_values.data(), sizeof(img.byte_values));
  const std::string sizes = std::to_string(img.width) + "x" + std::to_string(img.height) + " -> " +
                            std::to_string(out_w) + "x" + std::to_string(out_h);
  const uint8_t* resized = base + o_src;
  if (need_h) {
    uint8_t* dst = base + (need_v ? o_mid : o_resized);
    resample_horizontal<<<blocks_for(n_rows * out_w, 256), 256, 0, st>>>(base + o_src, in_w, row0, n_rows, dst, out_w,
                                                                        th);
    check_launch("image_patches horizontal pass", sizes);
    resized = dst;
  }
  if (need_v) {
    // From the horizontal pass's rows (row0 first), or straight from the image's.
    const uint8_t* src = need_h ? resized : base + o_src + row0 * in_w * 3;
    resample_vertical<<<blocks_for(out_h * out_w * 3, 256), 256, 0, st>>>(src, out_w * 3, row0, base + o_resized,
                                                                         out_h, tv);
    check_launch("image_patches vertical pass", sizes);
    resized = base + o_resized;
  }
  if (om.rows == 0) return;
  AG_CHECK(om.rows < (int64_t(1) << 31), "image_patches: too many patches");
  const int grid_w = int(out_w / patch), n_rows_out = int(om.rows);
  const auto* values = reinterpret_cast<const float*>(base + o_values);
  const unsigned blocks = unsigned(std::min<int64_t>(om.rows, int64_t(sm_count(s)) * 8));
  if (om.type == dtype::BF16)
    patch_rows<true><<<blocks, 256, 0, st>>>(resized, out_w, grid_w, patch, temporal, merge, values, om.p, n_rows_out);
  else
    patch_rows<false><<<blocks, 256, 0, st>>>(resized, out_w, grid_w, patch, temporal, merge, values, om.p, n_rows_out);
  check_launch("image_patches layout", sizes);
}

}  // namespace autoglm::cuda

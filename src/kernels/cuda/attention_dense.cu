// kernels/cuda/attention_dense.cu: ATTENTION_DENSE on the GPU (see kernels.h): bidirectional attention within
// segments (the vision tower: one frame of one image each). Up to 1023 rows: the F32 flash tile of flash.cuh, 16
// query rows of one head per block, one split. From 1024 rows (large images): bf16 products on tensor cores, by
// default the fused wgmma flash kernel on Hopper (sm90a/attention_dense_wgmma.cu, head_dim 128) or the fused
// mma.sync flash kernel (attention_dense_mma.cu; head_dim 64 or 128, cuBLAS for the others), unless SPLIT precision
// asks for F32. q, k and v are column views of the fused qkv buffer (row strides free); rows outside every segment
// are left alone, as on the CPU. out is F32, or BF16 (the projection's GEMM input): the tensor-core kernels then
// round O once as they store it; the other paths write F32 rows into the workspace and COPY rounds them.
#include <cstdlib>
#include <string>

#include "kernels/cuda/flash.cuh"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/register.h"

namespace autoglm::cuda {

constexpr int64_t k_tensor_core_rows = 1024;

// Which kernel takes large images: AUTOGLM_CUDA_DENSE_ATTENTION=wgmma_tma (default: Hopper's warpgroup MMA,
// warp-specialized, tiles loaded by the tensor memory accelerator, on compute capability 9.0 with head_dim 128;
// elsewhere mma64), wgmma_ws (the same with cp.async loads by a whole warpgroup; also where the driver has no TMA
// maps), wgmma (one block barrier per 128-key tile), wgmma64 (that with 64-key tiles), mma64 (the mma.sync flash
// kernel, 4 warps = 64 query rows per block, two blocks per SM), mma (the same with 8 warps = 128 rows, one per SM),
// gemm (cuBLAS), fused (the WMMA flash kernel) or f32 (the F32 flash kernel): a switch for benchmarks and bisection,
// read at each call. On the H200 a 1080x2400 screenshot's block takes 2.12 ms with wgmma_tma (521 TFLOP/s), 2.53
// with wgmma_ws (437), 2.99 with wgmma (369), 3.28 with wgmma64, 4.57 with mma64 (cuda_perf, 2026-12-04).
enum class dense_path { WGMMA_TMA, WGMMA_WS, WGMMA, WGMMA64, MMA, MMA64, GEMM, FUSED, F32 };  // the names' order
dense_path dense_attention_path() {
  return dense_path(env_choice("AUTOGLM_CUDA_DENSE_ATTENTION",
                               {"wgmma_tma", "wgmma_ws", "wgmma", "wgmma64", "mma", "mma64", "gemm", "fused", "f32"}));
}

void attention_dense_kernel(const kernel_context& kc, const tensor& q, const tensor& k, const tensor& v,
                            int32_t n_heads, int32_t head_dim, const tensor& segments, float scale, tensor& out) {
  const act_mat qa = act_of(q, "attention_dense q"), ka = act_of(k, "attention_dense k"),
                va = act_of(v, "attention_dense v");
  AG_CHECK(ka.type == qa.type && va.type == qa.type, "attention_dense: q, k and v must have one type");
  const bool bf16_in = qa.type == dtype::BF16;
  auto as_f32 = [](const act_mat& m) { return mat<float>{static_cast<float*>(m.p), m.ld, m.rows, m.cols}; };
  mat<float> qm = as_f32(qa), km = as_f32(ka), vm = as_f32(va);  // BF16 rows until widened below
  // A BF16 out (the vision tower's projection input on CUDA): written as BF16 by the tensor-core kernels where its
  // start and row stride keep their 4-byte column pairs aligned; every other path writes F32 rows into the
  // workspace, then COPY rounds them into out.
  const act_mat oa = act_of(out, "attention_dense out");
  const bool out_bf16 = oa.type == dtype::BF16;
  const bool out_pairs_aligned = reinterpret_cast<uintptr_t>(oa.p) % 4 == 0 && oa.ld % 2 == 0;
  mat<float> om = as_f32(oa);  // BF16 rows when out_bf16 (until redirected to F32 rows below)
  AG_CHECK(segments.type() == dtype::I32 && segments.is_contiguous() && segments.n_elements() >= 2,
           "attention_dense: segments must be contiguous I32 [n_seg + 1]");
  AG_CHECK(km.rows == qm.rows && vm.rows == qm.rows && om.rows == qm.rows, "attention_dense: rows");
  const int64_t n_seg = segments.n_elements() - 1;
  if (qm.rows == 0 || n_heads == 0) return;
  AG_CHECK(n_seg <= 65535 && n_heads <= 65535, "attention_dense: " + std::to_string(n_seg) + " segments x " +
                                                   std::to_string(n_heads) + " heads exceed the grid");
  stream_state& s = state_of(kc);
  flash_args a{};
  a.q = qm.p;
  a.ldq = qm.ld;
  a.out = om.p;
  a.ldo = om.ld;
  a.out_bf16 = out_bf16;
  a.n_q_rows = qm.rows;
  a.n_heads = n_heads;
  a.head_dim = head_dim;
  a.group = 1;
  a.bh = 1;
  a.br = k_fa_vecs;
  a.n_head_tiles = 1;
  a.scale = scale;
  a.n_splits = 1;
  a.split_len = int64_t(1) << 40;
  a.flag = bad_index_flag(s);
  a.k = km.p;
  a.ldk = km.ld;
  a.v = vm.p;
  a.ldv = vm.ld;
  a.qkv_type = qa.type;
  a.segments = segments.ptr<int32_t>();
  const std::string sizes = "rows=" + std::to_string(qm.rows) + " segments=" + std::to_string(n_seg) +
                            " heads=" + std::to_string(n_heads) + " head_dim=" + std::to_string(head_dim);
  // Images of at least k_tensor_core_rows patches (a 448x448 image and up): tensor cores, bf16 products, through
  // the mma.sync flash kernel (attention_dense_mma.cu), cuBLAS (attention_dense_gemm.cu: also head dims the mma
  // kernel lacks) or the fused WMMA kernel (attention_dense_tc.cu). Smaller ones (and SPLIT precision, for parity
  // checks) keep the F32 kernel, whose cost is small there.
  // (The tensor-core kernels' softmax takes the max of the raw scores: a positive scale, as attention always has.)
  const bool tensor_cores = get_cuda_gemm_precision() == cuda_gemm_precision::ROUNDED &&
                            qm.rows >= k_tensor_core_rows && scale > 0.0f;
  if (tensor_cores && (!out_bf16 || out_pairs_aligned)) {
    dense_path path = dense_attention_path();
    if (path == dense_path::WGMMA_WS || path == dense_path::WGMMA_TMA || path == dense_path::WGMMA ||
        path == dense_path::WGMMA64) {
      const wgmma_variant v = path == dense_path::WGMMA_WS    ? wgmma_variant::WS128
                              : path == dense_path::WGMMA_TMA ? wgmma_variant::WS128_TMA
                              : path == dense_path::WGMMA     ? wgmma_variant::K128
                                                              : wgmma_variant::K64;
      if (dense_wgmma_fits(head_dim, v, s)) {
        launch_dense_wgmma(a, n_seg, v, s, sizes);
        return;
      }
      path = dense_path::MMA64;  // not a compute capability 9.0 device, or a head dim other than 128
    }
    if (path == dense_path::MMA || path == dense_path::MMA64) {
      const int warps = path == dense_path::MMA ? 8 : 4;
      if (dense_mma_fits(head_dim, warps, s)) {
        launch_dense_mma(a, n_seg, warps, s, sizes);
        return;
      }
      path = dense_path::GEMM;
    }
    // Below: F32 copies of BF16 q, k, v and F32 rows for a BF16 out in the workspace, which cuBLAS's path and the
    // fused kernel's F32 stores cannot share.
    if (bf16_in || out_bf16) path = dense_path::F32;
    if (path == dense_path::GEMM) {
      AG_CHECK(qm.ld <= 0x7fffffff && km.ld <= 0x7fffffff && vm.ld <= 0x7fffffff && om.ld <= 0x7fffffff,
               "attention_dense: row strides exceed cuBLAS's int");
      launch_dense_gemm(a, segments.ptr<int32_t>(), n_seg, s, sizes);
      return;
    }
    if (path == dense_path::FUSED && dense_tensor_cores_fit(head_dim, s)) {
      launch_dense_tensor_cores(a, s, n_seg, sizes);
      return;
    }
  }
  // The F32 flash kernel. BF16 q, k, v (the vision tower's on CUDA) outside the tensor-core kernels: F32 copies in
  // the workspace; a BF16 out: F32 rows after them, rounded into out at the end.
  const int64_t n = qm.rows, w = int64_t(n_heads) * head_dim;
  const size_t in_floats = bf16_in ? size_t(3 * n * w) : 0, out_floats = out_bf16 ? size_t(n * w) : 0;
  float* f = in_floats + out_floats
                 ? static_cast<float*>(workspace(s, (in_floats + out_floats) * sizeof(float), "attention_dense (bf16)"))
                 : nullptr;
  if (bf16_in) {
    const tensor* src[3] = {&q, &k, &v};
    mat<float>* ms[3] = {&qm, &km, &vm};
    for (int i = 0; i < 3; ++i) {
      tensor dst = tensor::view(f + i * n * w, dtype::F32, {n, w}, q.dev());
      copy_kernel(kc, src[i]->cols_view(0, w), dst);  // COPY's kernel (copy.cu): exact widening
      *ms[i] = {f + i * n * w, w, n, w};
    }
    a.q = qm.p;
    a.ldq = qm.ld;
    a.k = km.p;
    a.ldk = km.ld;
    a.v = vm.p;
    a.ldv = vm.ld;
    a.qkv_type = dtype::F32;
  }
  if (out_bf16) {
    // out's rows widened first (exactly), so rows outside every segment come back as they were.
    tensor rows_f32 = tensor::view(f + in_floats, dtype::F32, {n, w}, out.dev());
    copy_kernel(kc, out.cols_view(0, w), rows_f32);
    a.out = f + in_floats;
    a.ldo = w;
    a.out_bf16 = false;
  }
  // Any segment has at most q.rows rows: tiles past a segment's end return at once.
  const dim3 grid(blocks_for(qm.rows, k_fa_vecs), unsigned(n_seg), unsigned(n_heads));
  launch_flash<false, dtype::F32>(a, grid, s, "attention_dense", sizes);
  if (out_bf16) {
    tensor dst = out.cols_view(0, w);
    copy_kernel(kc, tensor::view(f + in_floats, dtype::F32, {n, w}, out.dev()), dst);  // rounded once
  }
}

}  // namespace autoglm::cuda

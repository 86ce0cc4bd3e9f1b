// kernels/cuda/attention_dense_gemm.cu: ATTENTION_DENSE for large images through cuBLAS (attention_dense.cu says
// when it runs). Per segment (one image frame), Q, K and V go to bf16 head-major copies [heads, len, head_dim];
// then per chunk of query rows:
//   S = scale * Q K^T   for every head in one strided-batched bf16 GEMM with F32 output  [heads, chunk, len]
//   P = softmax(S)      row by row in F32, written as bf16                                  [heads, chunk, len]
//   O = P V             a second batched GEMM writing each head's columns of the output rows in place.
// Q, K, V and P are rounded to bf16 as in a bf16 model's attention (and the tensor-core flash kernel); S, the
// softmax and the accumulation stay F32. The price is S's memory traffic (about 6 bytes per score), which the
// tensor-core GEMMs repay many times over at screenshot sizes (13k patches: 2.2e8 scores per head).
#include <string>
#include <vector>

#include "kernels/cuda/attention_gemm.cuh"
#include "kernels/cuda/flash.cuh"

namespace autoglm::cuda {

void launch_dense_gemm(const flash_args& a, const int32_t* segments_dev, int64_t n_seg, stream_state& s,
                       const std::string& sizes) {
  const cudaStream_t st = stream_of(s);
  // Segment bounds on the host: they size the GEMMs (one small copy per call; the vision tower calls this once
  // per block).
  std::vector<int32_t> seg(size_t(n_seg) + 1);
  check(cudaMemcpyAsync(seg.data(), segments_dev, seg.size() * sizeof(int32_t), cudaMemcpyDeviceToHost, st),
        "attention_dense (gemm): segment offsets");
  check(cudaStreamSynchronize(st), "attention_dense (gemm): segment offsets");
  const int heads = a.n_heads, hd = a.head_dim;
  auto h = static_cast<cublasHandle_t>(blas_handle(s));
  for (int64_t g = 0; g < n_seg; ++g) {
    const int64_t s0 = seg[size_t(g)], s1 = seg[size_t(g) + 1];
    AG_CHECK(s0 >= 0 && s1 >= s0 && s1 <= a.n_q_rows,
             "attention_dense: segment " + std::to_string(g) + " is [" + std::to_string(s0) + ", " +
                 std::to_string(s1) + "), outside the " + std::to_string(a.n_q_rows) + " rows or decreasing");
    const int64_t len = s1 - s0;
    if (len == 0) continue;
    AG_CHECK(len <= int64_t(1) << 30, "attention_dense: segment of " + std::to_string(len) + " rows");
    // Query rows per chunk: S and P for all heads within the budget, a multiple of 64 (aligned bf16 rows).
    const int64_t per_row = int64_t(heads) * len * 6;
    int64_t chunk = std::max<int64_t>(64, int64_t(k_score_budget) / per_row / 64 * 64);
    chunk = std::min(chunk, len);
    const size_t qkv_elems = size_t(heads) * size_t(len) * size_t(hd);
    const size_t qkv_bytes = (qkv_elems * 2 + 255) / 256 * 256;
    const size_t s_bytes = size_t(heads) * size_t(chunk) * size_t(len) * 4;
    auto* base = static_cast<uint8_t*>(workspace(s, 3 * qkv_bytes + s_bytes + s_bytes / 2, "attention_dense"));
    auto* qb = reinterpret_cast<uint16_t*>(base);
    auto* kb = reinterpret_cast<uint16_t*>(base + qkv_bytes);
    auto* vb = reinterpret_cast<uint16_t*>(base + 2 * qkv_bytes);
    auto* S = reinterpret_cast<float*>(base + 3 * qkv_bytes);
    auto* P = reinterpret_cast<uint16_t*>(base + 3 * qkv_bytes + s_bytes);
    const dim3 cg = row_grid(len, int64_t(heads) * hd, 256, s);
    heads_to_bf16_kernel<<<cg, 256, 0, st>>>(a.q + s0 * a.ldq, a.ldq, len, heads, hd, qb);
    heads_to_bf16_kernel<<<cg, 256, 0, st>>>(a.k + s0 * a.ldk, a.ldk, len, heads, hd, kb);
    heads_to_bf16_kernel<<<cg, 256, 0, st>>>(a.v + s0 * a.ldv, a.ldv, len, heads, hd, vb);
    check_launch("attention_dense (gemm) bf16 copies", sizes);
    for (int64_t r0 = 0; r0 < len; r0 += chunk) {
      const int64_t cr = std::min(chunk, len - r0);
      // Column-major view: S_h^T [len, cr] (ld len) = K_h [len, hd] . Q_h^T [hd, cr].
      const float alpha = a.scale, zero = 0.0f, one = 1.0f;
      check_cublas(cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(len), int(cr), hd, &alpha, kb,
                                            CUDA_R_16BF, hd, len * hd, qb + r0 * hd, CUDA_R_16BF, hd, len * hd,
                                            &zero, S, CUDA_R_32F, int(len), cr * len, heads, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT),
                 "attention_dense scores " + sizes);
      AG_CHECK(int64_t(heads) * cr <= int64_t(0x7fffffff), "attention_dense: softmax grid");
      softmax_rows_kernel<<<unsigned(int64_t(heads) * cr), k_softmax_threads, 0, st>>>(S, len, cr, false, 0, P);
      check_launch("attention_dense (gemm) softmax", sizes);
      // O_h^T [hd, cr] (ld = the output's row stride, head h at column h * hd) = V_h^T [hd, len] . P_h^T [len, cr].
      check_cublas(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, hd, int(cr), int(len), &one, vb,
                                            CUDA_R_16BF, hd, len * hd, P, CUDA_R_16BF, int(len), cr * len, &zero,
                                            a.out + (s0 + r0) * a.ldo, CUDA_R_32F, int(a.ldo), hd, heads,
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "attention_dense values " + sizes);
    }
  }
}

}  // namespace autoglm::cuda

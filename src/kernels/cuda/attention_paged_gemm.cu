// kernels/cuda/attention_paged_gemm.cu: causal ATTENTION_PAGED for prefill chunks on tensor cores
// (attention_paged.cu says when it runs). For each sequence of the batch with at least k_gemm_min_rows new rows:
//   - its context's K and V (n_past + n_new positions) gathered from the paged cache into bf16 [kv_heads, L, hd],
//     its new rows of Q into bf16 [heads, n_new, hd];
//   - head_dim 64 or 128: the causal mma.sync flash kernel (attention_dense_mma.cu) over those copies, the scores
//     never leaving registers;
//   - otherwise (or AUTOGLM_CUDA_PREFILL_ATTENTION=gemm), per chunk of new rows and per KV head, S = scale * Q K^T
//     for the group's heads in one strided-batched GEMM (the KV head's K shared: stride 0) over the keys the chunk
//     can see, a causal row softmax to bf16 P, and O = P V written into the output rows' head columns. At 2,048
//     tokens of the 9B model that writes and reads 0.5 GB of scores per layer; the softmax alone was 12% of a
//     prefill.
// The flash kernel then takes the other sequences (decode rows, short chunks). Rounding as in attention_gemm.cuh.
#include <string>
#include <vector>

#include "kernels/cuda/attention_gemm.cuh"
#include "kernels/cuda/flash.cuh"

namespace autoglm::cuda {

namespace {

// dst[h, p, d] = cache value of KV head h at position p (0 <= p < L) of the sequence whose block table is `table`.
// Grid row_grid(L, kv_heads * hd): positions by x, a position's (head, dim) items by thread.
template <dtype T>
__global__ void gather_kv_kernel(const uint8_t* cache, const int32_t* table, int64_t n_table, int64_t c_block,
                                 int64_t c_slot, int64_t c_head, int block_size, int64_t n_blocks, int kv_heads,
                                 int hd, int64_t L, uint16_t* dst, int32_t* flag) {
  const int c = int(blockIdx.y) * int(blockDim.x) + int(threadIdx.x);
  if (c >= kv_heads * hd) return;
  const int h = c / hd, d = c - h * hd;
  uint16_t* out = dst + int64_t(h) * L * hd + d;
  for (int64_t pos = blockIdx.x; pos < L; pos += gridDim.x) {
    const int64_t bi = pos / block_size;
    const int64_t blk = bi < n_table ? table[bi] : -1;
    if (blk < 0 || blk >= n_blocks) {
      flag_bad(flag, BAD_BLOCK_ID, blk);
      out[pos * hd] = 0;
      continue;
    }
    out[pos * hd] = f32_to_bf16_bits(load_elem<T>(cache + blk * c_block + (pos - bi * block_size) * c_slot + h * c_head, d));
  }
}

void gather_kv(dtype t, const flash_args& a, const uint8_t* cache, const int32_t* table, int kv_heads, int64_t L,
               uint16_t* dst, stream_state& s) {
  const dim3 grid = row_grid(L, int64_t(kv_heads) * a.head_dim, 256, s);
  const cudaStream_t st = stream_of(s);
#define AG_GATHER(T)                                                                                          \
  gather_kv_kernel<T><<<grid, 256, 0, st>>>(cache, table, a.n_table, a.c_block, a.c_slot, a.c_head,           \
                                            a.block_size, a.n_blocks, kv_heads, a.head_dim, L, dst, a.flag)
  if (t == dtype::F32) AG_GATHER(dtype::F32);
  else if (t == dtype::F16) AG_GATHER(dtype::F16);
  else AG_GATHER(dtype::BF16);
#undef AG_GATHER
}

}  // namespace

std::vector<int32_t> paged_prefill_gemm(const flash_args& a, dtype cache_type, int n_kv_heads, int64_t n_seqs,
                                        int mma_warps, const wgmma_variant* wgmma, stream_state& s,
                                        const std::string& sizes, int64_t* n_done) {
  *n_done = 0;
  const cudaStream_t st = stream_of(s);
  // The batch's layout on the host: it sizes the GEMMs (one small copy and a wait per layer of a prefill step).
  std::vector<int32_t> info(size_t(n_seqs) * size_t(a.ld_info));
  check(cudaMemcpyAsync(info.data(), a.seq_info, info.size() * 4, cudaMemcpyDeviceToHost, st),
        "attention_paged (gemm): seq_info");
  check(cudaStreamSynchronize(st), "attention_paged (gemm): seq_info");
  const int heads = a.n_heads, hd = a.head_dim, g = a.group;
  AG_CHECK(a.ldo <= 0x7fffffff, "attention_paged: output row stride exceeds cuBLAS's int");
  auto h = static_cast<cublasHandle_t>(blas_handle(s));
  const bool use_wgmma = wgmma && dense_wgmma_fits(hd, *wgmma, s);
  const bool use_mma = use_wgmma || (mma_warps > 0 && dense_mma_fits(hd, mma_warps, s));
  for (int64_t q = 0; q < n_seqs; ++q) {
    int32_t* row = info.data() + q * a.ld_info;
    const int64_t first = row[0], n_new = row[1], n_past = row[2];
    // Malformed rows stay with the flash kernel, which flags them; short ones are its job too.
    if (first < 0 || n_past < 0 || n_new < k_gemm_min_rows || first + n_new > a.n_q_rows) continue;
    const int64_t L = n_past + n_new;
    if ((L + a.block_size - 1) / a.block_size > a.n_table) continue;  // the flash kernel reports it
    AG_CHECK(L <= int64_t(1) << 30, "attention_paged: context of " + std::to_string(L));
    const int64_t per_row = int64_t(heads) * L * 6;
    const int64_t chunk = std::min(n_new, std::max<int64_t>(64, int64_t(k_score_budget) / per_row / 64 * 64));
    const size_t kv_bytes = (size_t(n_kv_heads) * size_t(L) * size_t(hd) * 2 + 255) / 256 * 256;
    const size_t q_bytes = (size_t(heads) * size_t(n_new) * size_t(hd) * 2 + 255) / 256 * 256;
    const size_t s_bytes = use_mma ? 0 : size_t(heads) * size_t(chunk) * size_t(L) * 4;
    auto* base = static_cast<uint8_t*>(workspace(s, 2 * kv_bytes + q_bytes + s_bytes + s_bytes / 2, "attention_paged"));
    auto* kb = reinterpret_cast<uint16_t*>(base);
    auto* vb = reinterpret_cast<uint16_t*>(base + kv_bytes);
    auto* qb = reinterpret_cast<uint16_t*>(base + 2 * kv_bytes);
    auto* S = reinterpret_cast<float*>(base + 2 * kv_bytes + q_bytes);
    auto* P = reinterpret_cast<uint16_t*>(base + 2 * kv_bytes + q_bytes + s_bytes);
    // The device copy of this sequence's block table row: a.tables + q * ld_tables.
    const int32_t* table = a.tables + q * a.ld_tables;
    gather_kv(cache_type, a, a.kcache, table, n_kv_heads, L, kb, s);
    gather_kv(cache_type, a, a.vcache, table, n_kv_heads, L, vb, s);
    heads_to_bf16_kernel<<<row_grid(n_new, int64_t(heads) * hd, 256, s), 256, 0, st>>>(
        a.q + first * a.ldq, a.ldq, n_new, heads, hd, qb);
    check_launch("attention_paged (gemm) bf16 copies", sizes);
    if (use_mma) {
      causal_mma_args c{};
      c.q = qb;
      c.k = kb;
      c.v = vb;
      c.q_rows = n_new;
      c.kv_rows = L;
      c.n_past = n_past;
      c.heads = heads;
      c.kv_heads = n_kv_heads;
      c.head_dim = hd;
      c.scale = a.scale;
      c.out = a.out + first * a.ldo;
      c.ldo = a.ldo;
      c.flag = a.flag;
      if (use_wgmma) launch_causal_wgmma(c, *wgmma, s, sizes);
      else launch_causal_mma(c, mma_warps, s, sizes);
      row[1] = 0;
      ++*n_done;
      continue;
    }
    const float alpha = a.scale, zero = 0.0f, one = 1.0f;
    for (int64_t r0 = 0; r0 < n_new; r0 += chunk) {
      const int64_t cr = std::min(chunk, n_new - r0);
      const int64_t lc = n_past + r0 + cr;  // keys the chunk's last row sees; earlier rows see fewer
      for (int j = 0; j < n_kv_heads; ++j) {
        // Column-major view per head of the group: S_h^T [lc, cr] (ld lc) = K_j [lc, hd] . Q_h^T [hd, cr].
        check_cublas(cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(lc), int(cr), hd, &alpha,
                                                kb + size_t(j) * L * hd, CUDA_R_16BF, hd, 0,
                                                qb + (size_t(j) * g * n_new + r0) * hd, CUDA_R_16BF, hd, n_new * hd,
                                                &zero, S + size_t(j) * g * cr * lc, CUDA_R_32F, int(lc), cr * lc, g,
                                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     "attention_paged scores " + sizes);
      }
      softmax_rows_kernel<<<unsigned(int64_t(heads) * cr), k_softmax_threads, 0, st>>>(S, lc, cr, true,
                                                                                         n_past + r0 + 1, P);
      check_launch("attention_paged (gemm) softmax", sizes);
      for (int j = 0; j < n_kv_heads; ++j) {
        // O_h^T [hd, cr] (ld = the output's row stride, head h at column h * hd) = V_j^T [hd, lc] . P_h^T [lc, cr].
        check_cublas(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, hd, int(cr), int(lc), &one,
                                                vb + size_t(j) * L * hd, CUDA_R_16BF, hd, 0,
                                                P + size_t(j) * g * cr * lc, CUDA_R_16BF, int(lc), cr * lc, &zero,
                                                a.out + (first + r0) * a.ldo + int64_t(j) * g * hd, CUDA_R_32F,
                                                int(a.ldo), hd, g, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     "attention_paged values " + sizes);
      }
    }
    row[1] = 0;  // done: the flash kernel skips it
    ++*n_done;
  }
  return info;
}

}  // namespace autoglm::cuda

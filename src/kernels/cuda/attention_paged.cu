// kernels/cuda/attention_paged.cu: the paged KV cache on the GPU (see kernels.h): KV_STORE (rows rounded to the
// cache's F32/F16/BF16 exactly as the CPU's convert_from_f32) and causal ATTENTION_PAGED over it with the
// flash tile of flash.cuh. Prefill chunks run one split (every row sees its own causal range); decode over a long
// context splits the positions so that 2 KV heads x a few sequences still fill the GPU (flash-decoding), then
// combine_splits merges the partials of each (row, head) in split order (deterministic). Sequences with a long
// chunk of new rows (prefill) run first on tensor cores at bf16 GEMM precision (attention_paged_gemm.cu: the causal
// mma kernel, or cuBLAS). A batch of decodes only (one new row per sequence) takes attention_decode.cu's
// single-launch kernel instead, where it can.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/cuda/flash.cuh"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/register.h"

namespace autoglm::cuda {

namespace {

constexpr int64_t k_min_split = 128;                     // positions per split, at least

// AUTOGLM_CUDA_PREFILL_ATTENTION=wgmma_tma (default), wgmma_ws, wgmma, mma64, mma, gemm or flash: which kernel
// takes prefill chunks (benchmarks, bisection): the fused causal wgmma kernel, warp-specialized (a loading
// warpgroup, two computing ones taking turns) with TMA or cp.async loads, or with one block barrier per 128-key tile
// (compute capability 9.0, head_dim 128; elsewhere mma64), the fused causal mma.sync kernel with blocks of 64 query
// rows (4 warps) or 128 (8 warps), cuBLAS with the scores in memory, or the F32 flash tile. On the H200, 2,048 /
// 4,096 tokens of the 9B model: wgmma_tma 218 / 362 TFLOP/s, wgmma_ws 194 / 307, wgmma 178 / 271, mma64 138 / 194
// (cuda_perf, 2026-12-04).
enum class prefill_path { WGMMA_TMA, WGMMA_WS, WGMMA, MMA64, MMA, GEMM, FLASH };  // the order of the names below
prefill_path prefill_attention_path() {
  return prefill_path(env_choice("AUTOGLM_CUDA_PREFILL_ATTENTION",
                                 {"wgmma_tma", "wgmma_ws", "wgmma", "mma64", "mma", "gemm", "flash"}));
}
constexpr size_t k_split_budget = size_t(256) << 20;     // bytes of partials at most


// One block per new row: both K and V of every KV head into the row's slot.
template <dtype T>
__global__ void kv_store_rows(const float* k, int64_t ldk, const float* v, int64_t ldv, const kv_slots dst,
                              int head_dim, int64_t width) {
  pdl_wait();  // launched as a programmatic dependent (launch_pdl)
  pdl_trigger();
  const int64_t r = blockIdx.x;
  const int64_t slot = dst.slots[r];
  if (slot < 0) return;  // a padding row
  if (slot >= dst.capacity) {
    if (threadIdx.x == 0) flag_bad(dst.flag, BAD_KV_SLOT, slot);
    return;
  }
  const int64_t base = dst.row_offset(slot);
  for (int64_t e = threadIdx.x; e < width; e += blockDim.x) {
    const int64_t h = e / head_dim, d = e - h * head_dim;
    store_elem<T>(dst.kc + base + h * dst.c_head, d, k[r * ldk + e]);
    store_elem<T>(dst.vc + base + h * dst.c_head, d, v[r * ldv + e]);
  }
}

// limits[first_row + i] = n_past + i + 1 for every new row of every well-formed sequence (others stay 0).
__global__ void row_limits(const int32_t* info, int64_t ld_info, int n_seqs, int64_t n_rows, int32_t* limits) {
  const int s = blockIdx.x;
  if (s >= n_seqs) return;
  const int64_t first = info[s * ld_info], n_new = info[s * ld_info + 1], n_past = info[s * ld_info + 2];
  if (first < 0 || n_new < 0 || n_past < 0 || first + n_new > n_rows) return;
  for (int64_t i = threadIdx.x; i < n_new; i += blockDim.x) limits[first + i] = int32_t(n_past + i + 1);
}

// out[row, head] = merge of the row's splits that saw any of its positions: ceil(limit / split_len) of them.
__global__ void combine_splits(const float* part_o, const float* part_ml, const int32_t* limits, int n_heads,
                               int n_splits, int64_t split_len, int head_dim, int hdp, float* out, int64_t ldo) {
  const int64_t row = blockIdx.x;
  const int head = blockIdx.y;
  const int64_t limit = limits[row];
  if (limit <= 0) return;
  const int ns = int(min(int64_t(n_splits), (limit + split_len - 1) / split_len));
  const int64_t base = (row * n_heads + head) * n_splits;
  float mx = -INFINITY;
  for (int s = 0; s < ns; ++s) mx = fmaxf(mx, part_ml[2 * (base + s)]);
  float sum = 0.0f;
  for (int s = 0; s < ns; ++s) sum += part_ml[2 * (base + s) + 1] * expf(part_ml[2 * (base + s)] - mx);
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float o = 0.0f;
    for (int s = 0; s < ns; ++s) o += part_o[(base + s) * hdp + d] * expf(part_ml[2 * (base + s)] - mx);
    out[row * ldo + int64_t(head) * head_dim + d] = o * inv;
  }
}

}  // namespace

cache_geom geometry(const paged_kv_layer& kv, const char* op) {
  const tensor& k = kv.k;
  const dtype t = k.type();
  AG_CHECK(k.n_dims() == 4, std::string(op) + ": cache must be [blocks, block_size, kv_heads, head_dim]");
  AG_CHECK(t == dtype::F32 || t == dtype::F16 || t == dtype::BF16,
           std::string(op) + ": CUDA caches hold F32, F16 or BF16, not " + dtype_name(t));
  AG_CHECK(kv.v.type() == t && kv.v.shape() == k.shape(), std::string(op) + ": K and V caches differ");
  for (int i = 0; i < 4; ++i)
    AG_CHECK(kv.v.stride(i) == k.stride(i), std::string(op) + ": K and V caches have different strides");
  AG_CHECK(k.stride(3) == int64_t(dtype_size(t)), std::string(op) + ": head_dim must be contiguous");
  AG_CHECK(k.dev().kind == device_kind::CUDA && kv.v.dev().kind == device_kind::CUDA,
           std::string(op) + ": the cache is not on a CUDA device");
  return {t, k.stride(0), k.stride(1), k.stride(2), k.dim(0), int(k.dim(1)), int(k.dim(2)), int(k.dim(3))};
}

void kv_store_kernel(const kernel_context& kc, const paged_kv_layer& kv, const tensor& k, const tensor& v,
                     const tensor& slots) {
  const cache_geom g = geometry(kv, "kv_store");
  const mat<float> km = f32_mat(k, "kv_store k"), vm = f32_mat(v, "kv_store v");
  AG_CHECK(slots.type() == dtype::I32 && slots.is_contiguous() && slots.n_elements() == km.rows,
           "kv_store: one contiguous I32 slot per row");
  const int64_t width = int64_t(g.n_kv_heads) * g.head_dim;
  AG_CHECK(km.cols == width && vm.cols == width && vm.rows == km.rows, "kv_store: k/v shapes");
  if (km.rows == 0) return;
  stream_state& s = state_of(kc);
  const kv_slots dst = kv_slots_of(kv, g, slots, s);
  void (*kernel)(const float*, int64_t, const float*, int64_t, const kv_slots, int, int64_t) =
      g.type == dtype::F32 ? kv_store_rows<dtype::F32> : g.type == dtype::F16 ? kv_store_rows<dtype::F16>
                                                                              : kv_store_rows<dtype::BF16>;
  launch_pdl(kernel, blocks_for(km.rows, 1), 128, 0, s, "kv_store", km.p, km.ld, vm.p, vm.ld, dst, g.head_dim, width);
  check_launch("kv_store", "rows=" + std::to_string(km.rows) + " width=" + std::to_string(width) + " cache " +
                               kv.k.shape_str() + " " + dtype_name(g.type));
}

void attention_paged_kernel(const kernel_context& kc, const tensor& q, const paged_kv_layer& kv,
                            const paged_batch& batch, int32_t n_heads, int32_t n_kv_heads, int32_t head_dim,
                            float scale, tensor& out) {
  const cache_geom g = geometry(kv, "attention_paged");
  AG_CHECK(g.n_kv_heads == n_kv_heads && g.head_dim == head_dim, "attention_paged: cache layout");
  AG_CHECK(n_kv_heads > 0 && n_heads % n_kv_heads == 0, "attention_paged: heads");
  const mat<float> qm = f32_mat(q, "attention_paged q"), om = f32_mat(out, "attention_paged out");
  const mat<int32_t> info = i32_mat(batch.seq_info, "attention_paged seq_info");
  const mat<int32_t> tables = i32_mat(batch.block_tables, "attention_paged block_tables");
  AG_CHECK(info.rows == batch.n_seqs && info.cols == 3 && tables.rows == batch.n_seqs, "attention_paged: batch");
  AG_CHECK(qm.rows == om.rows, "attention_paged: q/out rows");
  if (batch.n_seqs == 0 || qm.rows == 0) return;
  stream_state& s = state_of(kc);
  const cudaStream_t st = stream_of(s);

  flash_args a{};
  a.q = qm.p;
  a.ldq = qm.ld;
  a.out = om.p;
  a.ldo = om.ld;
  a.n_q_rows = qm.rows;
  a.n_heads = n_heads;
  a.head_dim = head_dim;
  a.group = n_heads / n_kv_heads;
  a.bh = std::min(a.group, k_fa_vecs);
  a.br = k_fa_vecs / a.bh;
  a.n_head_tiles = (a.group + a.bh - 1) / a.bh;
  a.scale = scale;
  a.flag = bad_index_flag(s);
  a.seq_info = info.p;
  a.ld_info = info.ld;
  a.tables = tables.p;
  a.ld_tables = tables.ld;
  a.n_table = tables.cols;
  a.kcache = static_cast<const uint8_t*>(kv.k.data());
  a.vcache = static_cast<const uint8_t*>(kv.v.data());
  a.c_block = g.c_block;
  a.c_slot = g.c_slot;
  a.c_head = g.c_head;
  a.n_blocks = g.n_blocks;
  a.block_size = g.block_size;
  a.max_context = batch.max_context;

  // A batch of decodes (rows == sequences, and every sequence has at least one new row, so each has exactly one)
  // runs as one launch (attention_decode.cu); shapes it does not take fall through to the flash kernel below.
  if (qm.rows == batch.n_seqs && launch_paged_decode(a, g.type, n_kv_heads, batch.n_seqs, s)) return;

  // Splits: enough blocks for two waves over the SMs when the batch alone does not make them (decode), each
  // split at least k_min_split positions, the partials within k_split_budget.
  const int64_t row_tiles = (qm.rows + a.br - 1) / a.br;
  const int64_t work_blocks = std::min<int64_t>(row_tiles + batch.n_seqs, qm.rows) * n_kv_heads * a.n_head_tiles;
  const int hdp = ((head_dim + 31) / 32 <= 4 ? (head_dim + 31) / 32 : 8) * 32;
  int64_t n_splits = 1;
  if (batch.max_context > 2 * k_min_split) {
    const int64_t want = (2 * int64_t(sm_count(s)) + work_blocks - 1) / work_blocks;
    n_splits = std::min({want, batch.max_context / k_min_split, int64_t(k_fa_max_splits)});
    const size_t per_split = size_t(qm.rows) * size_t(n_heads) * size_t(hdp + 2) * sizeof(float);
    n_splits = std::min<int64_t>(n_splits, int64_t(k_split_budget / std::max<size_t>(per_split, 1)));
    n_splits = std::max<int64_t>(n_splits, 1);
  }
  int64_t split_len = int64_t(1) << 40;  // one split: covers any context
  if (n_splits > 1) {
    split_len = (batch.max_context + n_splits - 1) / n_splits;
    split_len = (split_len + k_fa_keys - 1) / k_fa_keys * k_fa_keys;
    n_splits = (batch.max_context + split_len - 1) / split_len;
  }
  a.n_splits = int(n_splits);
  a.split_len = split_len;

  const int64_t gz = int64_t(n_kv_heads) * a.n_head_tiles * n_splits;
  AG_CHECK(batch.n_seqs <= 65535 && gz <= 65535, "attention_paged: " + std::to_string(batch.n_seqs) +
                                                     " sequences x " + std::to_string(gz) + " head groups exceed the grid");
  const dim3 grid(blocks_for(row_tiles, 1), unsigned(batch.n_seqs), unsigned(gz));
  const std::string sizes = "rows=" + std::to_string(qm.rows) + " seqs=" + std::to_string(batch.n_seqs) +
                            " heads=" + std::to_string(n_heads) + "/" + std::to_string(n_kv_heads) +
                            " head_dim=" + std::to_string(head_dim) + " max_context=" +
                            std::to_string(batch.max_context) + " splits=" + std::to_string(n_splits);

  // Prefill chunks (sequences with k_gemm_min_rows new rows or more) on tensor cores (the causal mma kernel, or
  // cuBLAS for head dims it does not take), as deployed (bf16 GEMM precision; SPLIT keeps the F32 flash kernel for
  // parity checks); the flash kernel does the rest.
  std::vector<int32_t> rest_info;
  // Reading the batch back costs a wait per layer: only when some sequence can hold k_gemm_min_rows new rows
  // (every sequence has at least one, so the longest has at most rows - (n_seqs - 1)); a batch of decodes skips it.
  const prefill_path path = prefill_attention_path();
  if (get_cuda_gemm_precision() == cuda_gemm_precision::ROUNDED &&
      qm.rows - (int64_t(batch.n_seqs) - 1) >= k_gemm_min_rows && path != prefill_path::FLASH &&
      a.scale > 0.0f) {  // the tensor-core kernels' softmax takes the max of the raw scores
    int64_t n_done = 0;
    const int mma_warps = path == prefill_path::MMA ? 8 : path == prefill_path::GEMM ? 0 : 4;
    const wgmma_variant wv = path == prefill_path::WGMMA_WS    ? wgmma_variant::WS128
                             : path == prefill_path::WGMMA_TMA ? wgmma_variant::WS128_TMA
                                                               : wgmma_variant::K128;
    const bool wgmma =
        path == prefill_path::WGMMA_TMA || path == prefill_path::WGMMA_WS || path == prefill_path::WGMMA;
    rest_info = paged_prefill_gemm(a, g.type, n_kv_heads, batch.n_seqs, mma_warps, wgmma ? &wv : nullptr, s, sizes,
                                   &n_done);
    if (n_done == batch.n_seqs) return;
    if (n_done == 0) rest_info.clear();
  }
  const size_t info_bytes = (rest_info.size() * sizeof(int32_t) + 255) / 256 * 256;

  int32_t* limits = nullptr;
  uint8_t* ws = nullptr;
  if (n_splits > 1) {
    const size_t n_part = size_t(qm.rows) * size_t(n_heads) * size_t(n_splits);
    const size_t lim_bytes = (size_t(qm.rows) * sizeof(int32_t) + 255) / 256 * 256;
    const size_t ml_bytes = (n_part * 2 * sizeof(float) + 255) / 256 * 256;
    ws = static_cast<uint8_t*>(workspace(s, info_bytes + lim_bytes + ml_bytes + n_part * size_t(hdp) * sizeof(float),
                                         "attention_paged"));
    limits = reinterpret_cast<int32_t*>(ws + info_bytes);
    a.part_ml = reinterpret_cast<float*>(ws + info_bytes + lim_bytes);
    a.part_o = reinterpret_cast<float*>(ws + info_bytes + lim_bytes + ml_bytes);
  } else if (info_bytes) {
    ws = static_cast<uint8_t*>(workspace(s, info_bytes, "attention_paged"));
  }
  if (info_bytes) {
    // The sequences left to the flash kernel: the others' new rows set to 0 (they are done and stay untouched).
    check(cudaMemcpyAsync(ws, rest_info.data(), rest_info.size() * sizeof(int32_t), cudaMemcpyHostToDevice, st),
          "attention_paged: the remaining sequences");
    a.seq_info = reinterpret_cast<const int32_t*>(ws);
  }
  if (n_splits > 1) {
    check(cudaMemsetAsync(limits, 0, (size_t(qm.rows) * sizeof(int32_t) + 255) / 256 * 256, st),
          "attention_paged: clearing row limits");
    row_limits<<<unsigned(batch.n_seqs), 128, 0, st>>>(a.seq_info, info.ld, batch.n_seqs, qm.rows, limits);
    check_launch("attention_paged row limits", sizes);
  }
  if (g.type == dtype::F32) launch_flash<true, dtype::F32>(a, grid, s, "attention_paged", sizes);
  else if (g.type == dtype::F16) launch_flash<true, dtype::F16>(a, grid, s, "attention_paged", sizes);
  else launch_flash<true, dtype::BF16>(a, grid, s, "attention_paged", sizes);
  if (n_splits > 1) {
    combine_splits<<<dim3(unsigned(qm.rows), unsigned(n_heads)), 128, 0, st>>>(
        a.part_o, a.part_ml, limits, n_heads, int(n_splits), split_len, head_dim, hdp, om.p, om.ld);
    check_launch("attention_paged combine", sizes);
  }
}

}  // namespace autoglm::cuda

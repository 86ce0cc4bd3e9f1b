// kernels/cuda/sample.cu: SAMPLE, one token per logits row, following kernels/cpu/sample.h's rule bit for bit (up to
// expf's last bit, which the CUDA and C libraries may round differently). One block per row; nothing is sorted:
//  - the top_k-th largest value and the top-p boundary are found by radix selection over order-preserving integer
//    keys of the values (4 passes of 8 bits over the row, a 256-bin histogram each: candidate counts for top-k,
//    fixed-point weight sums for top-p); ties at a boundary are resolved towards the lower ids without ranking
//    them, by correcting the boundary bin (all ties share one weight);
//  - the draw is an ordered scan of the row in id order (block-wide prefix sums of the kept weights), which also
//    ranks the ties at the boundary when only some of them are kept.
// Weights are integers (2^40 fixed point), so the sums are exact whatever order the atomics land in: the same
// logits and draw give the same token on every run.
#include <string>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels.h"

namespace autoglm::cuda {

namespace {

using u64 = unsigned long long;

constexpr int k_threads = 1024;
constexpr int k_items = 8;  // consecutive ids per thread in the ordered draw
constexpr float k_greedy_temperature = 1e-5f;
constexpr double k_weight_scale = 1099511627776.0;  // 2^40 (kernels/cpu/sample.h step 3)
constexpr int k_bins = 256;

// Order-preserving keys: a larger float has a larger key. Values are canonical (no NaN, no -0).
__device__ inline uint32_t order_key(float v) {
  const uint32_t b = __float_as_uint(v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ inline float key_value(uint32_t k) { return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k); }

__device__ inline u64 weight_of(float s, float mx) { return u64(double(expf(s - mx)) * k_weight_scale); }

__device__ inline u64 warp_sum_u64(u64 v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block; every thread gets it. scratch: 32 u64 of shared memory.
__device__ inline u64 block_sum_u64(u64 v, u64* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  v = warp_sum_u64(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  return warp_sum_u64(lane < n_warps ? scratch[lane] : 0);
}

// Exclusive prefix sum over the block in thread order; *total gets the block's sum. scratch: 33 u64.
__device__ inline u64 block_exclusive_scan_u64(u64 v, u64* scratch, u64* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  u64 incl = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const u64 n = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += n;
  }
  __syncthreads();
  if (lane == 31) scratch[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    const u64 w = lane < n_warps ? scratch[lane] : 0;
    u64 wi = w;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const u64 n = __shfl_up_sync(0xffffffffu, wi, o);
      if (lane >= o) wi += n;
    }
    scratch[lane] = wi - w;
    if (lane == 31) scratch[32] = wi;
  }
  __syncthreads();
  *total = scratch[32];
  return scratch[warp] + incl - v;
}

// Largest value, lowest id on ties, over the block; every thread gets the id.
__device__ inline int64_t block_argmax(float v, int64_t i, float* fs, int64_t* is) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  auto better = [](float va, int64_t ia, float vb, int64_t ib) { return va > vb || (va == vb && ia < ib); };
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float vo = __shfl_xor_sync(0xffffffffu, v, o);
    const int64_t io = __shfl_xor_sync(0xffffffffu, i, o);
    if (better(vo, io, v, i)) v = vo, i = io;
  }
  __syncthreads();
  if (lane == 0) fs[warp] = v, is[warp] = i;
  __syncthreads();
  v = lane < n_warps ? fs[lane] : -INFINITY;
  i = lane < n_warps ? is[lane] : INT64_MAX;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float vo = __shfl_xor_sync(0xffffffffu, v, o);
    const int64_t io = __shfl_xor_sync(0xffffffffu, i, o);
    if (better(vo, io, v, i)) v = vo, i = io;
  }
  return i;
}

// One radix level's choice: scanning bins from the top, the bin where the running sum reaches `remaining`
// (remaining <= the histogram's sum). Warp 0 does it (8 bins per lane); *bin and *before (the sum of the bins
// above it) go to shared memory. The caller synchronizes before and after.
__device__ inline void choose_bin(const u64* hist, u64 remaining, uint32_t* bin, u64* before) {
  if (threadIdx.x >= 32) return;
  const int lane = threadIdx.x;
  u64 chunk = 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) chunk += hist[k_bins - 1 - (lane * 8 + j)];
  u64 incl = chunk;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const u64 n = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += n;
  }
  const unsigned reached = __ballot_sync(0xffffffffu, incl >= remaining);
  const int first = reached ? __ffs(reached) - 1 : 31;  // never empty when remaining <= the sum
  if (lane == first) {
    u64 cum = incl - chunk;
    int b = k_bins - 1 - lane * 8 - 7;
    for (int j = 0; j < 8; ++j) {
      const int bj = k_bins - 1 - (lane * 8 + j);
      if (cum + hist[bj] >= remaining) {
        b = bj;
        break;
      }
      cum += hist[bj];
    }
    *bin = uint32_t(b);
    *before = cum;
  }
}

struct row_params {
  float temperature, top_p, min_p, u;
  int64_t top_k;
};

// Greedy rows are spread over the blocks of the grid's x (k_argmax_span ids each: a 151,552-id row is 10 blocks
// instead of one block reading 606 KB alone, 18 us on an H100): each block folds its span into the row's packed
// best (order key << 32 | ~id: the largest value, then the lowest id) with a 64-bit atomicMax, and the last block
// of the row writes the id and puts the words back to zero. The words and the arrival count live in the stream's
// split counters (zero between kernels), 4 per row. Other rows use block x = 0 alone, as before.
constexpr int64_t k_argmax_span = int64_t(k_threads) * 16;
constexpr int64_t k_argmax_rows = int64_t(k_split_counters) / 4;

__device__ inline float canonical(float v) { return isnan(v) ? -INFINITY : v == 0.0f ? 0.0f : v; }

__global__ void __launch_bounds__(k_threads)
    sample_rows(const float* logits, int64_t ld, int64_t vocab, const float* params, int32_t* out,
                int32_t* counters) {
  __shared__ u64 scratch[33];
  __shared__ float fscratch[32];
  __shared__ int64_t iscratch[32];
  __shared__ u64 hist[k_bins];
  __shared__ uint32_t chosen_bin;
  __shared__ u64 chosen_before;
  __shared__ int64_t found;

  const float* l = logits + int64_t(blockIdx.y) * ld;
  const float* pr = params + int64_t(blockIdx.y) * k_sample_params;
  const row_params p{pr[SP_TEMPERATURE], pr[SP_TOP_P], pr[SP_MIN_P], pr[SP_UNIFORM], int64_t(pr[SP_TOP_K])};
  const int tid = threadIdx.x;

  // The block's argmax of the raw logits over ids [begin, end) (NaN as -inf, lowest id on ties; -0 as +0, which
  // compares equal anyway); INT64_MAX when the span is empty.
  auto span_argmax = [&](int64_t begin, int64_t end) {
    float bv = -INFINITY;
    int64_t bi = INT64_MAX;
    for (int64_t i = begin + tid; i < end; i += k_threads) {
      const float v = canonical(l[i]);
      if (v > bv || bi == INT64_MAX) bv = v, bi = i;
    }
    return block_argmax(bv, bi, fscratch, iscratch);
  };
  // The raw logits' argmax into out: greedy, and min_p > 1 (no candidate).
  auto write_argmax = [&]() {
    const int64_t best = span_argmax(0, vocab);
    if (tid == 0) out[blockIdx.y] = int32_t(best == INT64_MAX ? 0 : best);
  };
  const bool greedy = !(p.temperature >= k_greedy_temperature) || p.top_k == 1;
  if (greedy && gridDim.x > 1) {
    const int64_t best =
        span_argmax(int64_t(blockIdx.x) * k_argmax_span, min(vocab, int64_t(blockIdx.x + 1) * k_argmax_span));
    int32_t* row_words = counters + 4 * int64_t(blockIdx.y);
    u64* packed = reinterpret_cast<u64*>(row_words + 2);
    if (tid == 0 && best != INT64_MAX) {
      atomicMax(packed, u64(order_key(canonical(l[best]))) << 32 | u64(~uint32_t(best)));
    }
    __shared__ int last_s;
    __threadfence();
    __syncthreads();
    if (tid == 0) {
      last_s = atomicAdd(row_words, 1) == int(gridDim.x) - 1;
      if (last_s) {
        __threadfence();
        const u64 b = atomicExch(packed, u64(0));
        row_words[0] = 0;
        out[blockIdx.y] = int32_t(~uint32_t(b & 0xffffffffu));
      }
    }
    return;
  }
  if (blockIdx.x > 0) return;
  if (greedy) {
    write_argmax();
    return;
  }

  const float inv_t = 1.0f / p.temperature;
  auto value = [&](int64_t i) {
    const float v = l[i];
    const float s = (isnan(v) ? -INFINITY : v) * inv_t;
    return s == 0.0f ? 0.0f : s;  // -0 and +0 are one value (and one key)
  };

  float tmax = -INFINITY;
  for (int64_t i = tid; i < vocab; i += k_threads) tmax = fmaxf(tmax, value(i));
  const float mx = block_max(tmax, fscratch);
  if (mx == -INFINITY) {
    if (tid == 0) out[blockIdx.y] = 0;
    return;
  }

  // 1. min-p candidates.
  const double threshold = p.min_p > 0.0f ? double(mx) + log(double(p.min_p)) : -INFINITY;
  auto candidate = [&](float s) { return s > -INFINITY && double(s) >= threshold; };
  u64 tcount = 0;
  for (int64_t i = tid; i < vocab; i += k_threads) tcount += candidate(value(i)) ? 1 : 0;
  const u64 n_candidates = block_sum_u64(tcount, scratch);
  if (n_candidates == 0) {  // min_p > 1: the most likely token
    write_argmax();
    return;
  }

  // Radix selection over the candidates with key >= floor_key whose key matches the selected high digits; each
  // element adds contribution(s) to its bin, `fix` (if any) corrects the bin of fix_key. Returns the key; `need`
  // gets what is left to take from the chosen key's bin.
  auto radix_select = [&](u64 target, uint32_t floor_key, bool by_weight, uint32_t fix_key, u64 fix, u64& need) {
    uint32_t prefix = 0, mask = 0;
    u64 remaining = target;
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int b = tid; b < k_bins; b += k_threads) hist[b] = 0;
      __syncthreads();
      for (int64_t i = tid; i < vocab; i += k_threads) {
        const float s = value(i);
        if (!candidate(s)) continue;
        const uint32_t key = order_key(s);
        if (key < floor_key || (key & mask) != prefix) continue;
        atomicAdd(&hist[(key >> shift) & 0xffu], by_weight ? weight_of(s, mx) : u64(1));
      }
      __syncthreads();
      if (tid == 0 && fix && (fix_key & mask) == prefix) hist[(fix_key >> shift) & 0xffu] -= fix;
      __syncthreads();
      choose_bin(hist, remaining, &chosen_bin, &chosen_before);
      __syncthreads();
      prefix |= chosen_bin << shift;
      mask |= 0xffu << shift;
      remaining -= chosen_before;
      __syncthreads();  // hist and chosen_* are rewritten by the next level
    }
    need = remaining;
    return prefix;
  };
  // Candidates with key == k (and key >= floor_key).
  auto count_key = [&](uint32_t k) {
    u64 c = 0;
    for (int64_t i = tid; i < vocab; i += k_threads) {
      const float s = value(i);
      c += (candidate(s) && order_key(s) == k) ? 1 : 0;
    }
    return block_sum_u64(c, scratch);
  };

  // 2. top-k: the k-th largest key; ties there beyond `need_k` (by id) are out.
  uint32_t key_k = 0;
  u64 need_k = 0, ties_k = 0;
  const bool top_k_on = p.top_k > 0 && u64(p.top_k) < n_candidates;
  if (top_k_on) {
    key_k = radix_select(u64(p.top_k), 0, false, 0, 0, need_k);
    ties_k = count_key(key_k);
  }
  const bool partial_k = top_k_on && need_k < ties_k;
  const u64 w_k = top_k_on ? weight_of(key_value(key_k), mx) : 0;
  const u64 excess_k = partial_k ? (ties_k - need_k) * w_k : 0;

  // 3. weight of the top-k set.
  u64 tmass = 0;
  for (int64_t i = tid; i < vocab; i += k_threads) {
    const float s = value(i);
    if (candidate(s) && order_key(s) >= key_k) tmass += weight_of(s, mx);
  }
  const u64 total_k = block_sum_u64(tmass, scratch) - excess_k;

  // 4. top-p: the boundary key, how many of its ties (by id) are in, and the kept weight.
  uint32_t key_f = key_k;
  u64 need_f = need_k, kept_weight = total_k;
  bool partial_f = partial_k;
  if (p.top_p < 1.0f && total_k > 0) {
    u64 target = u64(ceil(double(p.top_p) * double(total_k)));
    target = target < 1 ? 1 : (target > total_k ? total_k : target);
    u64 rest = 0;
    const uint32_t key_p = radix_select(target, key_k, true, key_k, excess_k, rest);
    const u64 w_p = weight_of(key_value(key_p), mx);
    const u64 ties_all = (partial_k && key_p == key_k) ? ties_k : count_key(key_p);
    const u64 ties_in = (partial_k && key_p == key_k) ? need_k : ties_all;
    u64 need_p = w_p ? (rest + w_p - 1) / w_p : ties_in;
    need_p = need_p < 1 ? 1 : (need_p > ties_in ? ties_in : need_p);
    key_f = key_p;
    need_f = need_p;
    partial_f = need_p < ties_all;
    kept_weight = (target - rest) + need_p * w_p;
  }

  // 5. the draw, in id order.
  const u64 draw = u64(double(p.u) * double(kept_weight));
  if (tid == 0) found = -1;
  u64 carry_mass = 0, carry_ties = 0;
  int64_t last_kept = -1;
  for (int64_t base = 0; base < vocab; base += int64_t(k_threads) * k_items) {
    const int64_t i0 = base + int64_t(tid) * k_items;
    float s[k_items];
    uint32_t key[k_items];
    bool in[k_items];
    u64 my_ties = 0;
#pragma unroll
    for (int j = 0; j < k_items; ++j) {
      s[j] = i0 + j < vocab ? value(i0 + j) : -INFINITY;
      key[j] = order_key(s[j]);
      in[j] = candidate(s[j]) && key[j] >= key_f;
      my_ties += (in[j] && key[j] == key_f) ? 1 : 0;
    }
    if (partial_f) {  // rank the boundary's ties by id: only the first need_f are in
      u64 tile_ties = 0;
      u64 rank = carry_ties + block_exclusive_scan_u64(my_ties, scratch, &tile_ties);
      carry_ties += tile_ties;
#pragma unroll
      for (int j = 0; j < k_items; ++j)
        if (in[j] && key[j] == key_f) in[j] = rank++ < need_f;
    }
    u64 my_mass = 0;
#pragma unroll
    for (int j = 0; j < k_items; ++j)
      if (in[j]) my_mass += weight_of(s[j], mx), last_kept = i0 + j;
    u64 tile_mass = 0;
    const u64 before = carry_mass + block_exclusive_scan_u64(my_mass, scratch, &tile_mass);
    carry_mass += tile_mass;
    if (before <= draw && draw < before + my_mass) {
      u64 acc = before;
      for (int j = 0; j < k_items; ++j) {
        if (!in[j]) continue;
        acc += weight_of(s[j], mx);
        if (acc > draw) {
          found = i0 + j;
          break;
        }
      }
    }
    __syncthreads();
    if (found >= 0) break;
  }
  if (found >= 0) {
    if (tid == 0) out[blockIdx.y] = int32_t(found);
    return;
  }
  // Rounding left the draw past the kept weight: the last kept token.
  const int64_t last = block_argmax(float(last_kept), last_kept, fscratch, iscratch);
  if (tid == 0) out[blockIdx.y] = int32_t(last < 0 ? 0 : last);
}

}  // namespace

void sample_kernel(const kernel_context& kc, const tensor& logits, const tensor& params, tensor& out) {
  const mat<float> l = f32_mat(logits, "sample logits");
  const float* p = f32_vector(params, "sample params");
  AG_CHECK(params.n_elements() == l.rows * k_sample_params, "sample: params must be F32 [rows, k_sample_params]");
  AG_CHECK(out.type() == dtype::I32 && out.is_contiguous() && out.dev().kind == device_kind::CUDA &&
               out.n_elements() == l.rows,
           "sample: out must be a contiguous I32 [rows] on the device");
  if (l.rows == 0 || l.cols == 0) return;
  AG_CHECK(l.cols <= int64_t(INT32_MAX), "sample: vocabulary larger than int32 ids");
  stream_state& s = state_of(kc);
  AG_CHECK(l.rows <= 65535, "sample: at most 65,535 rows per call");
  // Spread greedy rows over several blocks when the counters have room for every row (see sample_rows).
  const unsigned spans = l.rows <= k_argmax_rows ? unsigned((l.cols + k_argmax_span - 1) / k_argmax_span) : 1u;
  sample_rows<<<dim3(spans, unsigned(l.rows)), k_threads, 0, stream_of(s)>>>(l.p, l.ld, l.cols, p,
                                                                             out.ptr<int32_t>(), split_counters(s));
  check_launch("sample", "rows=" + std::to_string(l.rows) + " vocab=" + std::to_string(l.cols));
}

}  // namespace autoglm::cuda

// kernels/cuda/rope.cu: M-RoPE (interleaved pairs, text) and 2-D NeoX RoPE (vision; F32 or BF16), in place (see
// kernels.h), and ROPE_KV_STORE (M-RoPE of q|k with the KV store in the same launch).
// The inverse frequencies are computed on the host exactly as the CPU kernel does (rope.cuh) and passed by value, so
// every angle float(p) * inv is the same fp32 product; sincosf is CUDA's accurate version (no fast math), within 2
// ulp of the host's.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/kernels.h"
#include "kernels/cuda/rope.cuh"

namespace autoglm::cuda {

namespace {

constexpr int k_max_pairs = k_rope_max_pairs;
constexpr int k_threads = 128;

struct rope_args {
  float inv[k_max_pairs];
  float* x;
  int64_t ldx;
  int n_heads, head_dim, n_pairs;
  const int32_t* pos;  // planes of `ldp` elements: t, h, w (M-RoPE) or h, w (2-D)
  int64_t ldp;
  int sec0, sec1;  // M-RoPE: pairs [0, sec0) take t, [sec0, sec0+sec1) h, the rest w
};

// Blocks per token: enough for every (head, pair) of a few tokens to get a thread; one per token from 256 tokens.
dim3 rope_grid(int64_t rows, int64_t items) {
  const int64_t parts = std::clamp<int64_t>((items + k_threads - 1) / k_threads, 1, std::max<int64_t>(1, 256 / rows));
  return dim3(blocks_for(rows, 1), unsigned(parts));
}

// Pair i of head h of a token at M-RoPE positions (pt, ph, pw), rotated in place; returns the rotated pair.
__device__ inline float2 mrope_pair(const rope_args& a, float* row, int h, int i, int32_t pt, int32_t ph,
                                    int32_t pw) {
  float* v = row + int64_t(h) * a.head_dim + 2 * i;
  const float2 y = mrope_rotate(v[0], v[1], i, a.sec0, a.sec1, pt, ph, pw, a.inv);
  v[0] = y.x;
  v[1] = y.y;
  return y;
}

// Blocks (token, part): the parts' threads stride over (head, pair). A decode step's one token spreads over
// several blocks (one block of 128 threads took 5 us for 34 heads x 32 pairs).
__global__ void __launch_bounds__(k_threads) mrope_kernel(const rope_args a) {
  pdl_wait();  // launched as a programmatic dependent (launch_pdl)
  pdl_trigger();
  const int64_t t = blockIdx.x;
  const int32_t pt = a.pos[t], ph = a.pos[a.ldp + t], pw = a.pos[2 * a.ldp + t];
  float* row = a.x + t * a.ldx;
  for (int w = blockIdx.y * k_threads + threadIdx.x; w < a.n_heads * a.n_pairs; w += gridDim.y * k_threads) {
    const int h = w / a.n_pairs;
    mrope_pair(a, row, h, w - h * a.n_pairs, pt, ph, pw);
  }
}

// ROPE_KV_STORE: a.x holds n_q + n_kv heads (q then k), a.n_heads = n_q + n_kv. Blocks (token, part); the parts'
// threads stride over three kinds of items: the rotated pairs of every head (a k head's pair also goes to the K
// cache), the k heads' dims past rot_dim, and v's values (both only to the cache). The cache gets exactly what the
// rotation left in x (rounded to the cache type as kv_store rounds), so the op equals ROPE_MROPE then KV_STORE.
struct rope_store_args {
  const float* v;
  int64_t ldv;
  int n_q_heads, n_kv_heads;
  kv_slots dst;
};

template <dtype T>
__global__ void __launch_bounds__(k_threads) mrope_kv_store_kernel(const rope_args a, const rope_store_args c) {
  pdl_wait();  // launched as a programmatic dependent (launch_pdl)
  pdl_trigger();
  const int64_t t = blockIdx.x;
  const int32_t pt = a.pos[t], ph = a.pos[a.ldp + t], pw = a.pos[2 * a.ldp + t];
  float* row = a.x + t * a.ldx;
  const kv_slots& d = c.dst;
  const int64_t slot = d.slots[t];
  if (slot >= d.capacity && blockIdx.y == 0 && threadIdx.x == 0) flag_bad(d.flag, BAD_KV_SLOT, slot);
  const bool store = slot >= 0 && slot < d.capacity;  // a slot < 0 is a padding row: rotated, not stored
  const int64_t base = store ? d.row_offset(slot) : 0;
  const int rot_items = a.n_heads * a.n_pairs, pass = a.head_dim - 2 * a.n_pairs;
  const int k_items = c.n_kv_heads * pass, total = rot_items + k_items + c.n_kv_heads * a.head_dim;
  for (int w = blockIdx.y * k_threads + threadIdx.x; w < total; w += gridDim.y * k_threads) {
    if (w < rot_items) {
      const int h = w / a.n_pairs, i = w - h * a.n_pairs;
      const float2 y = mrope_pair(a, row, h, i, pt, ph, pw);
      if (h >= c.n_q_heads && store) {
        uint8_t* kd = d.kc + base + int64_t(h - c.n_q_heads) * d.c_head;
        store_elem<T>(kd, 2 * i, y.x);
        store_elem<T>(kd, 2 * i + 1, y.y);
      }
    } else if (!store) {
      continue;
    } else if (w < rot_items + k_items) {
      const int e = w - rot_items, h = e / pass, dim = 2 * a.n_pairs + (e - h * pass);
      store_elem<T>(d.kc + base + int64_t(h) * d.c_head, dim, row[int64_t(c.n_q_heads + h) * a.head_dim + dim]);
    } else {
      const int e = w - rot_items - k_items, h = e / a.head_dim, dim = e - h * a.head_dim;
      store_elem<T>(d.vc + base + int64_t(h) * d.c_head, dim, c.v[t * c.ldv + e]);
    }
  }
}

// Blocks (token, part): threads over (head, d < half); the pair is (d, d + half). Dims [0, quarter) rotate by the
// h position, [quarter, half) by the w position, with frequencies inv[d mod quarter]. A token's half angles are the
// same for every head: their sines and cosines are computed once per block into shared memory (a 1080x2400
// screenshot's q took 95 us with one sincosf per head and pair on the H200), the same values as before.
// T: x's type (F32, or BF16 q/k of the vision tower on CUDA: rotated in F32 from the exact bf16 values, rounded once).
template <dtype T>
__global__ void __launch_bounds__(k_threads) rope_2d_kernel_dev(const rope_args a, void* x) {
  __shared__ float sin_d[2 * k_max_pairs], cos_d[2 * k_max_pairs];  // half = head_dim / 2 <= 2 k_max_pairs
  pdl_wait();  // launched as a programmatic dependent (launch_pdl)
  pdl_trigger();
  const int64_t t = blockIdx.x;
  const int32_t ph = a.pos[t], pw = a.pos[a.ldp + t];
  const int half = a.head_dim / 2, quarter = a.head_dim / 4;
  for (int d = threadIdx.x; d < half; d += k_threads) {
    const float angle = d < quarter ? __fmul_rn(float(ph), a.inv[d]) : __fmul_rn(float(pw), a.inv[d - quarter]);
    sincosf(angle, &sin_d[d], &cos_d[d]);
  }
  __syncthreads();
  char* row = static_cast<char*>(x) + t * a.ldx * elem_bytes<T>();
  for (int w = blockIdx.y * k_threads + threadIdx.x; w < a.n_heads * half; w += gridDim.y * k_threads) {
    const int h = w / half, d = w - h * half;
    const float s = sin_d[d], c = cos_d[d];
    char* v = row + int64_t(h) * a.head_dim * elem_bytes<T>();
    const float x0 = load_elem<T>(v, d), x1 = load_elem<T>(v, d + half);
    store_elem<T>(v, d, x0 * c - x1 * s);
    store_elem<T>(v, d + half, x1 * c + x0 * s);
  }
}

// The M-RoPE arguments of x (n_heads heads of head_dim, the first rot_dim dims of each rotated) at positions pos
// [3, n], checked: rot_dim within k_max_pairs pairs, one position triple per row.
rope_args mrope_args(const mat<float>& xm, const mat<int32_t>& pm, int n_heads, int head_dim, int rot_dim,
                     const std::array<int32_t, 3>& sections, float theta, const char* op) {
  AG_CHECK(rot_dim / 2 <= k_max_pairs, std::string(op) + ": rot_dim " + std::to_string(rot_dim) +
                                           " over the CUDA limit of " + std::to_string(2 * k_max_pairs));
  AG_CHECK(pm.rows == 3 && pm.cols == xm.rows, std::string(op) + ": pos must be [3, n]");
  rope_args a{};
  const std::vector<float> inv = rope_inverse_frequencies(rot_dim, theta);
  std::copy(inv.begin(), inv.end(), a.inv);
  a.x = xm.p;
  a.ldx = xm.ld;
  a.n_heads = n_heads;
  a.head_dim = head_dim;
  a.n_pairs = rot_dim / 2;
  a.pos = pm.p;
  a.ldp = pm.ld;
  a.sec0 = sections[0];
  a.sec1 = sections[1];
  return a;
}

}  // namespace

void rope_mrope_kernel(const kernel_context& kc, tensor& x, int32_t n_heads, int32_t head_dim, int32_t rot_dim,
                       const tensor& pos, const std::array<int32_t, 3>& sections, float theta) {
  const mat<float> xm = f32_mat(x, "rope_mrope x");
  const mat<int32_t> pm = i32_mat(pos, "rope_mrope pos");
  const rope_args a = mrope_args(xm, pm, n_heads, head_dim, rot_dim, sections, theta, "rope_mrope");
  if (xm.rows == 0 || n_heads == 0) return;
  stream_state& s = state_of(kc);
  launch_pdl(mrope_kernel, rope_grid(xm.rows, int64_t(n_heads) * a.n_pairs), k_threads, 0, s, "rope_mrope", a);
  check_launch("rope_mrope", "n=" + std::to_string(xm.rows) + " heads=" + std::to_string(n_heads) +
                                 " head_dim=" + std::to_string(head_dim) + " rot_dim=" + std::to_string(rot_dim));
}

void rope_kv_store_kernel(const kernel_context& kc, tensor& qk, int32_t n_q_heads, int32_t rot_dim, const tensor& pos,
                          const std::array<int32_t, 3>& sections, float theta, const paged_kv_layer& kv,
                          const tensor& v, const tensor& slots) {
  const cache_geom g = geometry(kv, "rope_kv_store");
  const mat<float> xm = f32_mat(qk, "rope_kv_store qk"), vm = f32_mat(v, "rope_kv_store v");
  const mat<int32_t> pm = i32_mat(pos, "rope_kv_store pos");
  AG_CHECK(slots.type() == dtype::I32 && slots.is_contiguous() && slots.n_elements() == xm.rows,
           "rope_kv_store: one contiguous I32 slot per row");
  const int n_heads = n_q_heads + g.n_kv_heads;
  AG_CHECK(xm.cols == int64_t(n_heads) * g.head_dim && vm.rows == xm.rows &&
               vm.cols == int64_t(g.n_kv_heads) * g.head_dim,
           "rope_kv_store: qk/v shapes");
  const rope_args a = mrope_args(xm, pm, n_heads, g.head_dim, rot_dim, sections, theta, "rope_kv_store");
  if (xm.rows == 0) return;
  stream_state& s = state_of(kc);
  rope_store_args c{};
  c.v = vm.p;
  c.ldv = vm.ld;
  c.n_q_heads = n_q_heads;
  c.n_kv_heads = g.n_kv_heads;
  c.dst = kv_slots_of(kv, g, slots, s);
  const int64_t items = int64_t(n_heads) * a.n_pairs + int64_t(g.n_kv_heads) * (2 * g.head_dim - rot_dim);
  const dim3 grid = rope_grid(xm.rows, items);
  void (*kernel)(rope_args, rope_store_args) = g.type == dtype::F32   ? mrope_kv_store_kernel<dtype::F32>
                                                : g.type == dtype::F16 ? mrope_kv_store_kernel<dtype::F16>
                                                                       : mrope_kv_store_kernel<dtype::BF16>;
  launch_pdl(kernel, grid, k_threads, 0, s, "rope_kv_store", a, c);
  check_launch("rope_kv_store", "n=" + std::to_string(xm.rows) + " q_heads=" + std::to_string(n_q_heads) +
                                    " kv_heads=" + std::to_string(g.n_kv_heads) + " head_dim=" +
                                    std::to_string(g.head_dim) + " rot_dim=" + std::to_string(rot_dim));
}

void rope_2d_kernel(const kernel_context& kc, tensor& x, int32_t n_heads, int32_t head_dim, const tensor& pos,
                    float theta) {
  const act_mat xm = act_of(x, "rope_2d x");
  const mat<int32_t> pm = i32_mat(pos, "rope_2d pos");
  AG_CHECK(head_dim % 4 == 0 && head_dim / 4 <= k_max_pairs, "rope_2d: head_dim " + std::to_string(head_dim));
  AG_CHECK(pm.rows == 2 && pm.cols == xm.rows, "rope_2d: pos must be [2, n]");
  if (xm.rows == 0 || n_heads == 0) return;
  rope_args a{};
  const std::vector<float> inv = rope_inverse_frequencies(head_dim / 2, theta);  // head_dim / 4 frequencies
  std::copy(inv.begin(), inv.end(), a.inv);
  a.ldx = xm.ld;
  a.n_heads = n_heads;
  a.head_dim = head_dim;
  a.pos = pm.p;
  a.ldp = pm.ld;
  stream_state& s = state_of(kc);
  launch_pdl(xm.type == dtype::BF16 ? rope_2d_kernel_dev<dtype::BF16> : rope_2d_kernel_dev<dtype::F32>,
             rope_grid(xm.rows, int64_t(n_heads) * (head_dim / 2)), k_threads, 0, s, "rope_2d", a, xm.p);
  check_launch("rope_2d", "n=" + std::to_string(xm.rows) + " heads=" + std::to_string(n_heads) +
                              " head_dim=" + std::to_string(head_dim));
}

}  // namespace autoglm::cuda

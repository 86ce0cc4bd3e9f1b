// tests/kernels/harness.h: the kernel harness (after ggml's test-backend-ops). A case builds random inputs on
// the host, uploads them to the backend under test, runs one op through src/ops (so dispatch goes through the
// kernel registry exactly as the model's calls do), reads the result back as raw bytes and compares it with a
// plain C++ reference that accumulates in double (reference.h). Backends are enumerated from the registry
// (every device kind with memory registered, plus the CPU's portable path), so a backend added later runs the
// same cases. `--perf` times the same cases (and larger ones) and prints GB/s or GFLOP/s beside the machine's
// measured ceilings.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/kernel_registry.h"
#include "core/tensor.h"
#include "ops/context.h"

namespace autoglm::harness {

// ---- tolerances ---------------------------------------------------------------------------------------------
// Normalized error = max|out - ref| / max|ref| over the output. Every compute op works in F32 whatever its
// operand dtype (F16/BF16 weights, tables and caches are decoded exactly), so the bound is that of F32 sums
// against a double reference; an operand dtype whose kernels compute in lower precision (GGUF types with
// quantized activations) gets its own row here. Data movement (copy, embedding, kv_store) must match the
// reference's independent rounding bit for bit.
double tolerance(op_id op, dtype key);

// ---- backends -----------------------------------------------------------------------------------------------
struct backend {
  std::string name;  // "cpu", "cpu-portable", "cuda:0"
  device dev;
  bool portable = false;  // CPU only: force the portable C++ paths
  // CPU only: LINEAR on BF16 weights takes the AVX-512 BF16 GEMM (x rounded to bf16, kernels/cpu/gemm_bf16.h) from
  // 3 rows on; the other CPU backends run the exact F32 GEMM.
  bool bf16_gemm = false;
  // CPU only: linear weights of the r16 types (Q4_0 / Q5_0 / Q8_0 / Q4_K / Q5_K / Q6_K) carry their r16 copy
  // (kernels/cpu/quant_repack.h), as load makes on AVX-512 VNNI + AMX CPUs: the r16 decode, prefill on unpacked slabs
  // (EXACT precision, as cpu).
  bool r16 = false;
};
// Whether the selected backend gives linear weights of the r16 types their r16 copy.
bool selected_r16();
// Whether `b` runs the cases of (op, key): the bf16-GEMM variant differs from cpu only in LINEAR on float weights.
bool runs_on(const backend& b, op_id op, dtype key);
// Every backend in this build: device kinds with memory in the registry, the CPU's portable variant, its bf16-GEMM
// variant where the CPU has AVX-512 BF16 and its r16 variant where it has AVX-512 VNNI.
std::vector<backend> backends();
// Switches the CPU ISA paths for `b` (and back to the default with a default-constructed backend).
void select(const backend& b);

// ---- host data ------------------------------------------------------------------------------------------------
struct rng {
  std::mt19937_64 gen;
  explicit rng(uint64_t seed) : gen(seed) {}
  std::vector<float> normal(size_t n, float sd = 1.0f);
  std::vector<float> uniform(size_t n, float lo, float hi);
  int32_t integer(int32_t lo, int32_t hi);  // inclusive
};

// Host bytes of `values` stored as `type` (F32/F16/BF16 rounded to nearest even; I32 by truncation).
std::vector<uint8_t> encode(dtype type, const std::vector<float>& values);
std::vector<uint8_t> encode_i32(const std::vector<int32_t>& values);
// Values of host bytes of `type` (F32/F16/BF16/I32, or a GGUF block type through core's dequantizer).
std::vector<float> decode(dtype type, const std::vector<uint8_t>& bytes);
// Host bytes of `values` as `type` in rows of `row` elements: block types quantize each row (formats/quantize; a
// row holding NaN becomes blocks whose scale is NaN, so every value of it reads back NaN); others as encode().
std::vector<uint8_t> encode_rows(dtype type, const std::vector<float>& values, int64_t row);

// ---- device buffers -------------------------------------------------------------------------------------------
// A contiguous buffer on the backend's device, filled from host bytes; views over it describe strided operands.
struct dbuf {
  tensor t;  // contiguous [n_bytes / elem, ...] as allocated
  size_t bytes = 0;
};
dbuf upload(exec_context& ctx, dtype type, const std::vector<int64_t>& shape, const std::vector<uint8_t>& bytes);
// A device tensor of `type` and `shape` holding `values` (rounded to `type`).
tensor upload_f(exec_context& ctx, dtype type, const std::vector<int64_t>& shape, const std::vector<float>& values);
tensor upload_i32(exec_context& ctx, const std::vector<int64_t>& shape, const std::vector<int32_t>& values);
// A view of `b` starting `elem_offset` elements in, with element strides (the buffer's dtype).
tensor view(const dbuf& b, int64_t elem_offset, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides);
// Raw bytes of a contiguous device tensor.
std::vector<uint8_t> download(exec_context& ctx, const tensor& t);

// A [rows, cols] operand placed inside a wider buffer: `lead` elements before it and `pad` extra elements per row
// (a view with a row stride, like q inside a fused qkv buffer), everything outside the view set to k_sentinel,
// so a kernel that writes outside its operand is caught.
constexpr float k_sentinel = -4096.0f;  // exact in F32, F16, BF16 and I32
struct padded {
  dbuf buf;
  tensor t;  // the view
  int64_t rows = 0, cols = 0, pad = 0, lead = 0;
  int64_t stride() const { return cols + pad; }
};
// init: the view's values (rows*cols, rounded to type), or empty to leave it at the sentinel too.
padded make_padded(exec_context& ctx, dtype type, int64_t rows, int64_t cols, int64_t pad,
                   const std::vector<float>& init = {});
// The view's values, row-major; appends a description to `problems` when anything outside the view changed.
std::vector<float> read_padded(exec_context& ctx, const padded& p, std::string& problems);

// ---- comparison -----------------------------------------------------------------------------------------------
struct error_stats {
  double max_norm = 0;  // max|out - ref| / max|ref|
  double nmse = 0;      // sum (out - ref)^2 / sum ref^2
  int64_t nonfinite = 0;
};
error_stats compare(const std::vector<float>& out, const std::vector<double>& ref);
// "" when within tol, else a description naming the case.
std::string verdict(const std::string& what, const error_stats& e, double tol);
// The usual check: read `out` (nothing outside its view may have changed) and compare it with `ref`.
std::string check_output(exec_context& ctx, const padded& out, const std::vector<double>& ref, double tol);
// A seed derived from a case name, so every case draws its own reproducible inputs.
uint64_t seed_of(const std::string& name);

// ---- cases ----------------------------------------------------------------------------------------------------
// One prepared case on one backend: run() is the op under test (timed in --perf); check() compares its result
// with the reference and returns "" or a failure description.
struct instance {
  std::function<void()> run;
  std::function<std::string()> check;
  // The raw bytes of everything the op wrote (its output buffers, padding included): the harness runs every case
  // on 1 and on 3 threads and requires identical bytes, which covers every kernel's promise that results do not
  // depend on the thread count (and the paged-attention decode path against the per-row path).
  std::function<std::vector<uint8_t>()> output;
  double bytes = 0;  // memory traffic per run (memory-bound ops), for GB/s
  double flops = 0;  // arithmetic per run (compute-bound ops), for GFLOP/s
};

struct test_case {
  op_id op = op_id::COUNT;
  dtype key = dtype::F32;  // the dtype the registry is keyed by for this case
  std::string name;        // shape description, e.g. "m=1 n=7 k=13 bias"
  bool perf = false;       // a large shape: only run by --perf
  // Sized for a GPU path (e.g. tensor-core attention from 1024 rows): CPU backends skip it where the environment
  // says the CPU is emulated (AUTOGLM_HARNESS_EMULATED=1, set by tests/arm: minutes per case under qemu).
  bool gpu_sized = false;
  // In real use the operands of one run are not cache-resident (decode streams every weight and the KV cache
  // once per token): --perf then cycles through copies whose total is far larger than the last-level cache.
  bool stream = false;
  std::function<instance(exec_context&)> make;
};

// Case lists per op family (cases_*.cpp).
void add_linear_cases(std::vector<test_case>& out);
void add_elementwise_cases(std::vector<test_case>& out);  // norms, rope, activations, softmax
void add_memory_cases(std::vector<test_case>& out);       // copy, embedding, kv_store
void add_attention_cases(std::vector<test_case>& out);    // paged, dense, bicubic position embedding
void add_cross_cases(std::vector<test_case>& out);        // cross-attention, 1-D convolution taps, scaled add
void add_quant_linear_cases(std::vector<test_case>& out);  // linear with I8 / GGUF block weights
void add_sample_cases(std::vector<test_case>& out);        // token sampling from logits rows
const std::vector<test_case>& all_cases();

// The (op, dtype) pairs the CPU backend must implement (issue 9).
std::vector<std::pair<op_id, dtype>> required_cpu_kernels();

// --perf: ceilings, thread-pool overhead and every case's throughput on each backend; returns an exit code.
int run_perf(int argc, char** argv);

}  // namespace autoglm::harness

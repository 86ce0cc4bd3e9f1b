// tests/kernels/harness.cpp: backends, host encodings, device buffers and error metrics of the harness.
#include "harness.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "core/quant_blocks.h"
#include "formats/quantize.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/quant_repack.h"
#include "kernels/cpu/quant_linear.h"
#include "ops/ops.h"
#include "reference.h"

namespace autoglm::harness {

namespace {
device_kind g_selected = device_kind::CPU;  // the backend select() chose: tolerances below may depend on it
bool g_bf16_gemm = false;                   // ... and whether it was the CPU's bf16-GEMM variant
bool g_r16 = false;                         // ... or its r16 variant
}  // namespace

double tolerance(op_id op, dtype key) {
  // CUDA's LINEAR on F16/BF16 weights with more than 8 rows of x (prefill, vision) multiplies x rounded to the
  // weight's type on tensor cores, as torch's bf16 linear does: each product carries up to 2^-9 relative error,
  // about 1e-3 of max|y| in practice; 1e-2 is that bound with margin. (8 rows or fewer run an F32 GEMV: tests/cuda
  // holds that path to the F32 bound against the CPU.)
  if (g_selected == device_kind::CUDA &&
      (op == op_id::LINEAR || op == op_id::LINEAR_SWIGLU || op == op_id::LINEAR_ADD) &&
      (key == dtype::F16 || key == dtype::BF16))
    return 1e-2;
  // CUDA's ATTENTION_PAGED takes sequences with 128+ new rows (prefill chunks) on tensor cores (the causal mma
  // kernel or cuBLAS) with Q, K, V and the softmax weights rounded to bf16 (kernels/cuda/attention_paged_gemm.cu):
  // a bf16 bound, whatever the cache type.
  // (tests/cuda holds the flash kernel, which every other row takes, to the F32 bound on its own.)
  if (g_selected == device_kind::CUDA && op == op_id::ATTENTION_PAGED) return 2e-2;
  // The CPU's bf16 GEMM (cpu-bf16) is the same arithmetic as CUDA's tensor-core LINEAR on BF16 weights: x rounded
  // to bf16 (up to 2^-8 relative per product, about 2^-8/sqrt(3) rms), products exact, F32 sums; normalized errors
  // measure 0.8-3.2e-3 on gemm_bf16_test's shapes of 2+ rows, so the same 1e-2. gemm_bf16_test holds it to a scalar
  // model bit for bit and to the rounding bound per output. F16/F32 weights stay exact there: the F32 bound below.
  if (g_bf16_gemm && op == op_id::LINEAR && key == dtype::BF16) return 1e-2;
  // cpu-bf16's ATTENTION_PAGED: a sequence's 64+ new rows take the bf16 prefill (AMX tiles or AVX-512 BF16 dots;
  // Q, K, V and the softmax weights rounded to bf16), CUDA's bf16 bound.
  if (g_bf16_gemm && op == op_id::ATTENTION_PAGED) return 2e-2;
  switch (op) {
    case op_id::COPY:
    case op_id::EMBEDDING:
    case op_id::KV_STORE:
    case op_id::IM2COL_1D:
      return 0.0;  // bit-exact
    default:
      break;
  }
  switch (key) {
    case dtype::F32:
    case dtype::F16:
    case dtype::BF16:
      return 1e-5;  // F32 arithmetic on exactly decoded operands vs a double reference
    case dtype::I8:
    case dtype::Q8_0:
    case dtype::Q4_0:
    case dtype::Q4_1:
    case dtype::Q5_0:
    case dtype::Q5_1:
    case dtype::Q4_K:
    case dtype::Q5_K:
    case dtype::Q6_K:
      // LINEAR on quantized weights, against a reference that quantizes x by the kernels' own rule and sums in
      // double: the int8 products are exact integers, only the F32 steps per group round (conversion, scale
      // product, FMA, final lane sum and offsets), so the F32 bound holds. (Against unquantized x the error is
      // that of 8-bit activations, about 0.4%: the reference must quantize x the same way.)
      if (op == op_id::LINEAR || op == op_id::LINEAR_SWIGLU || op == op_id::LINEAR_ADD) return 1e-5;
      // A Q8_0 KV cache: its values (f16 scale x int8) are exact in F32, so attention is F32 arithmetic again.
      if (op == op_id::ATTENTION_PAGED && key == dtype::Q8_0) return 1e-5;
      return 0.0;
    default:
      return 0.0;  // no tolerance stated for this dtype yet: a new dtype must add its row
  }
}

std::vector<backend> backends() {
  ops::init_backends();
  std::vector<backend> out;
  for (int k = 0; k < int(device_kind::COUNT); ++k) {
    const device_kind dk = device_kind(k);
    try {
      kernel_registry::instance().memory(dk);
    } catch (const error&) {
      continue;  // not in this build
    }
    device dev{dk, 0};
    out.push_back({dev.str(), dev, false});
    if (dk == device_kind::CPU) {
      cpu::force_portable_kernels(false);
      if (cpu::cpu_has_avx2()) out.push_back({"cpu-portable", dev, true});
      if (cpu::bf16_gemm_available()) out.push_back({"cpu-bf16", dev, false, true});
      if (cpu::quant_isa_available(cpu::quant_isa::AVX512_VNNI)) out.push_back({"cpu-r16", dev, false, false, true});
    }
  }
  return out;
}

bool selected_r16() { return g_r16; }

bool runs_on(const backend& b, op_id op, dtype key) {
  if (b.r16)
    return (op == op_id::LINEAR || op == op_id::LINEAR_SWIGLU || op == op_id::LINEAR_ADD) &&
           cpu::r16_type(key);
  // cpu-bf16: the float LINEARs (the bf16 GEMM), dense attention (its bf16 paths from 1024 rows) and paged attention
  // (its bf16 prefill from 64 new rows).
  return !b.bf16_gemm || (op == op_id::LINEAR && (key == dtype::F32 || key == dtype::F16 || key == dtype::BF16)) ||
         (op == op_id::ATTENTION_DENSE && key == dtype::F32) || op == op_id::ATTENTION_PAGED;
}

void select(const backend& b) {
  // The CPU backends pin the GEMM precision (cpu runs the exact F32 GEMM whatever AUTOGLM_CPU_BF16_GEMM says);
  // the default backend gives back the process's own.
  static const cpu::cpu_gemm_precision process_precision = cpu::get_cpu_gemm_precision();
  cpu::force_portable_kernels(b.portable);
  const bool reset = b.name.empty();
  cpu::set_cpu_gemm_precision(reset          ? process_precision
                              : b.bf16_gemm ? cpu::cpu_gemm_precision::ROUNDED
                                             : cpu::cpu_gemm_precision::EXACT);
  cpu::set_bf16_gemm_min_rows(b.bf16_gemm ? 3 : cpu::k_bf16_gemm_default_min_rows);
  g_selected = b.dev.kind;
  g_bf16_gemm = b.bf16_gemm;
  g_r16 = b.r16;
}

// ---- host data ------------------------------------------------------------------------------------------------

std::vector<float> rng::normal(size_t n, float sd) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

std::vector<float> rng::uniform(size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

int32_t rng::integer(int32_t lo, int32_t hi) { return std::uniform_int_distribution<int32_t>(lo, hi)(gen); }

std::vector<uint8_t> encode(dtype type, const std::vector<float>& values) {
  std::vector<uint8_t> out(values.size() * dtype_size(type));
  for (size_t i = 0; i < values.size(); ++i) {
    const double r = ref::round_to(type, values[i]);
    uint8_t* p = out.data() + i * dtype_size(type);
    if (type == dtype::F32) {
      const float f = float(r);
      std::memcpy(p, &f, 4);
    } else if (type == dtype::I32) {
      const int32_t v = int32_t(r);
      std::memcpy(p, &v, 4);
    } else {
      // r is exactly representable, so the conversion below does no rounding of its own.
      const uint16_t h = type == dtype::F16 ? f32_to_f16(float(r)) : f32_to_bf16(float(r));
      std::memcpy(p, &h, 2);
    }
  }
  return out;
}

std::vector<uint8_t> encode_i32(const std::vector<int32_t>& values) {
  std::vector<uint8_t> out(values.size() * 4);
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

std::vector<uint8_t> encode_rows(dtype type, const std::vector<float>& values, int64_t row) {
  if (!dtype_is_block(type)) return encode(type, values);
  AG_CHECK(row > 0 && values.size() % size_t(row) == 0, "harness::encode_rows: whole rows only");
  const size_t rb = dtype_row_bytes(type, row), bb = dtype_block_bytes(type);
  std::vector<uint8_t> out(values.size() / size_t(row) * rb);
  for (size_t r = 0; r < values.size() / size_t(row); ++r) {
    const float* v = values.data() + r * size_t(row);
    uint8_t* o = out.data() + r * rb;
    if (std::any_of(v, v + row, [](float x) { return std::isnan(x); })) {
      AG_CHECK(type == dtype::Q8_0, "harness::encode_rows: NaN rows only for Q8_0");
      for (size_t b = 0; b < rb; b += bb) {
        const uint16_t nan = 0x7e00;
        std::memcpy(o + b, &nan, 2);
        std::memset(o + b + 2, 1, bb - 2);
      }
    } else {
      quant::quantize_row(type, v, o, row);
    }
  }
  return out;
}

std::vector<float> decode(dtype type, const std::vector<uint8_t>& bytes) {
  if (dtype_is_block(type)) {
    const int64_t n = int64_t(bytes.size() / dtype_block_bytes(type) * dtype_block_elems(type));
    std::vector<float> out(static_cast<size_t>(n));
    quant::dequantize_row(type, bytes.data(), out.data(), n);
    return out;
  }
  const size_t es = dtype_size(type);
  std::vector<float> out(bytes.size() / es);
  for (size_t i = 0; i < out.size(); ++i) {
    const uint8_t* p = bytes.data() + i * es;
    uint16_t h;
    int32_t v;
    switch (type) {
      case dtype::F32: std::memcpy(&out[i], p, 4); break;
      case dtype::F16: std::memcpy(&h, p, 2); out[i] = f16_to_f32(h); break;
      case dtype::BF16: std::memcpy(&h, p, 2); out[i] = bf16_to_f32(h); break;
      case dtype::I32: std::memcpy(&v, p, 4); out[i] = float(v); break;
      default: AG_CHECK(false, "harness::decode: unsupported dtype");
    }
  }
  return out;
}

// ---- device buffers -------------------------------------------------------------------------------------------

dbuf upload(exec_context& ctx, dtype type, const std::vector<int64_t>& shape, const std::vector<uint8_t>& bytes) {
  dbuf b;
  b.t = ops::alloc_persistent(ctx, type, shape);
  b.bytes = b.t.n_bytes();
  AG_CHECK(bytes.size() == b.bytes, "harness::upload: byte count differs from the shape");
  const device_memory& mem = kernel_registry::instance().memory(ctx.dev().kind);
  mem.copy(ctx.kernels(), b.t.data(), bytes.data(), b.bytes, false, true);
  mem.synchronize(ctx.kernels());
  return b;
}

tensor upload_f(exec_context& ctx, dtype type, const std::vector<int64_t>& shape, const std::vector<float>& values) {
  return upload(ctx, type, shape, encode(type, values)).t;
}

tensor upload_i32(exec_context& ctx, const std::vector<int64_t>& shape, const std::vector<int32_t>& values) {
  return upload(ctx, dtype::I32, shape, encode_i32(values)).t;
}

tensor view(const dbuf& b, int64_t elem_offset, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  const int64_t es = int64_t(dtype_size(b.t.type()));
  std::vector<int64_t> bs(strides.size());
  for (size_t i = 0; i < strides.size(); ++i) bs[i] = strides[i] * es;
  tensor t = tensor::strided(static_cast<uint8_t*>(b.t.data()) + elem_offset * es, b.t.type(), shape, bs, b.t.dev());
  t.set_owner(b.t.owner());
  return t;
}

std::vector<uint8_t> download(exec_context& ctx, const tensor& t) {
  std::vector<uint8_t> out(t.n_bytes());
  ops::to_host(ctx, t, out.data(), out.size());
  return out;
}

padded make_padded(exec_context& ctx, dtype type, int64_t rows, int64_t cols, int64_t pad,
                   const std::vector<float>& init) {
  padded p;
  p.rows = rows;
  p.cols = cols;
  p.pad = pad;
  p.lead = pad ? 3 : 0;  // also misaligns the view's start
  const int64_t total = p.lead + rows * p.stride() + pad;
  std::vector<float> host(size_t(total), k_sentinel);
  if (!init.empty()) {
    AG_CHECK(int64_t(init.size()) == rows * cols, "make_padded: init size");
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) host[size_t(p.lead + r * p.stride() + c)] = init[size_t(r * cols + c)];
  }
  p.buf = upload(ctx, type, {total}, encode(type, host));
  p.t = view(p.buf, p.lead, {rows, cols}, {p.stride(), 1});
  return p;
}

std::vector<float> read_padded(exec_context& ctx, const padded& p, std::string& problems) {
  const std::vector<float> all = decode(p.buf.t.type(), download(ctx, p.buf.t));
  std::vector<float> out(static_cast<size_t>(p.rows * p.cols));
  int64_t touched = 0;
  for (int64_t i = 0; i < int64_t(all.size()); ++i) {
    const int64_t rel = i - p.lead, r = rel / std::max<int64_t>(1, p.stride()), c = rel - r * p.stride();
    const bool inside = rel >= 0 && r < p.rows && c < p.cols;
    if (inside) out[size_t(r * p.cols + c)] = all[size_t(i)];
    else if (all[size_t(i)] != k_sentinel) ++touched;
  }
  if (touched) problems += "wrote " + std::to_string(touched) + " elements outside its output view; ";
  return out;
}

// ---- comparison -----------------------------------------------------------------------------------------------

error_stats compare(const std::vector<float>& out, const std::vector<double>& ref) {
  AG_CHECK(out.size() == ref.size(), "harness::compare: sizes differ");
  error_stats e;
  double max_ref = 0, max_diff = 0, se = 0, sr = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    // Infinities must match exactly and stay out of the normalization; NaN never matches.
    if (!std::isfinite(out[i]) || !std::isfinite(ref[i])) {
      if (!(double(out[i]) == ref[i])) ++e.nonfinite;
      continue;
    }
    const double d = out[i] == ref[i] ? 0.0 : std::abs(double(out[i]) - ref[i]);
    max_ref = std::max(max_ref, std::abs(ref[i]));
    max_diff = std::max(max_diff, d);
    se += d * d;
    sr += ref[i] * ref[i];
  }
  e.max_norm = max_diff == 0 ? 0.0 : max_diff / std::max(max_ref, 1e-30);
  e.nmse = se == 0 ? 0.0 : se / std::max(sr, 1e-300);
  return e;
}

std::string verdict(const std::string& what, const error_stats& e, double tol) {
  if (e.nonfinite == 0 && e.max_norm <= tol) return "";
  std::ostringstream s;
  s << what << ": normalized max error " << e.max_norm << " (tolerance " << tol << "), nmse " << e.nmse;
  if (e.nonfinite) s << ", " << e.nonfinite << " non-finite outputs";
  return s.str();
}

std::string check_output(exec_context& ctx, const padded& out, const std::vector<double>& ref, double tol) {
  std::string problems;
  const std::vector<float> got = read_padded(ctx, out, problems);
  return problems + verdict("output", compare(got, ref), tol);
}

uint64_t seed_of(const std::string& name) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

const std::vector<test_case>& all_cases() {
  static const std::vector<test_case> cases = [] {
    std::vector<test_case> c;
    add_linear_cases(c);
    add_elementwise_cases(c);
    add_memory_cases(c);
    add_attention_cases(c);
    add_cross_cases(c);
    add_quant_linear_cases(c);
    add_sample_cases(c);
    return c;
  }();
  return cases;
}

std::vector<std::pair<op_id, dtype>> required_cpu_kernels() {
  std::vector<std::pair<op_id, dtype>> r;
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16}) {
    r.emplace_back(op_id::LINEAR, t);
    r.emplace_back(op_id::LINEAR_SWIGLU, t);
    r.emplace_back(op_id::LINEAR_ADD, t);
    r.emplace_back(op_id::EMBEDDING, t);
    r.emplace_back(op_id::KV_STORE, t);
    r.emplace_back(op_id::ROPE_KV_STORE, t);
    r.emplace_back(op_id::LINEAR_ROPE_KV_STORE, t);
    r.emplace_back(op_id::ATTENTION_PAGED, t);
  }
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16, dtype::I32}) r.emplace_back(op_id::COPY, t);
  // Issue 11: LINEAR (and LINEAR_SWIGLU, gate|up with its gate) on every quantized weight type; a Q8_0 KV cache.
  for (dtype t : {dtype::I8, dtype::Q8_0, dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1, dtype::Q4_K, dtype::Q5_K,
                  dtype::Q6_K}) {
    r.emplace_back(op_id::LINEAR, t);
    r.emplace_back(op_id::LINEAR_SWIGLU, t);
    r.emplace_back(op_id::LINEAR_ADD, t);
  }
  // Token tables in any GGUF block type (community files store token_embd as Q4_K, Q6_K, Q8_0, ...).
  for (dtype t : {dtype::Q8_0, dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1, dtype::Q4_K, dtype::Q5_K,
                  dtype::Q6_K})
    r.emplace_back(op_id::EMBEDDING, t);
  r.emplace_back(op_id::KV_STORE, dtype::Q8_0);
  r.emplace_back(op_id::ROPE_KV_STORE, dtype::Q8_0);
  r.emplace_back(op_id::ATTENTION_PAGED, dtype::Q8_0);
  for (op_id op : {op_id::RMS_NORM, op_id::LAYER_NORM, op_id::ROPE_MROPE, op_id::ROPE_2D, op_id::SILU_MUL, op_id::GELU,
                   op_id::ADD, op_id::SOFTMAX, op_id::ATTENTION_DENSE, op_id::POS_EMBED_BICUBIC, op_id::SAMPLE})
    r.emplace_back(op, dtype::F32);
  // Issue 12: Whisper's encoder-decoder and gated cross-attention layers.
  for (op_id op : {op_id::ATTENTION_CROSS, op_id::IM2COL_1D, op_id::ADD_SCALED}) r.emplace_back(op, dtype::F32);
  // Issue 10: the decoder's sandwich-norm residual fused with the next input norm.
  r.emplace_back(op_id::RESIDUAL_RMS_NORM, dtype::F32);
  return r;
}

}  // namespace autoglm::harness

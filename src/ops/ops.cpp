// ops/ops.cpp: operand checks and dispatch through the kernel registry (see ops.h).
#include "ops/ops.h"

#include <cstring>
#include <mutex>
#include <optional>

#include "core/error.h"
#include "core/file_io.h"
#include "kernels/cpu/register.h"
#include "ops/repack_cache.h"
#if defined(AUTOGLM_HAVE_CUDA)
#include "kernels/cuda/register.h"
#endif

namespace autoglm::ops {

namespace {

kernel_registry& registry() { return kernel_registry::instance(); }

template <class Fn>
Fn kernel(op_id op, const exec_context& ctx, dtype key) {
  return registry().get_kernel<Fn>(op, ctx.dev().kind, key);
}

void on_device(const exec_context& ctx, const tensor& t, op_id op, const char* operand) {
  AG_CHECK(!t.empty(), std::string(op_name(op)) + ": " + operand + " is empty");
  AG_CHECK(t.dev() == ctx.dev(), std::string(op_name(op)) + ": " + operand + " is on " + t.dev().str() +
                                     ", the context on " + ctx.dev().str());
}

void is_f32(const tensor& t, op_id op, const char* operand) {
  AG_CHECK(t.type() == dtype::F32, std::string(op_name(op)) + ": " + operand + " must be F32, is " +
                                       dtype_name(t.type()));
}

// F32, or BF16 where the backend takes BF16 GEMM inputs (ops.h: gemm_input_type; CUDA takes them for any row count,
// as the last, shorter chunk of a pass has them too).
void is_f32_or_gemm_input(const exec_context& ctx, const tensor& t, op_id op, const char* operand) {
  const bool bf16_ok = ctx.dev().kind == device_kind::CUDA;
  AG_CHECK(t.type() == dtype::F32 || (t.type() == dtype::BF16 && bf16_ok),
           std::string(op_name(op)) + ": " + operand + " must be F32" + (bf16_ok ? " or BF16" : "") + " on " +
               ctx.dev().str() + ", is " + dtype_name(t.type()));
}

void same_rows_cols(const tensor& a, const tensor& b, op_id op) {
  AG_CHECK(a.rows() == b.rows() && a.cols() == b.cols(),
           std::string(op_name(op)) + ": shapes " + a.shape_str() + " and " + b.shape_str() + " differ");
}

const device_memory& memory(const exec_context& ctx) { return registry().memory(ctx.dev().kind); }

}  // namespace

void init_backends() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_cpu_kernels(registry());
#if defined(AUTOGLM_HAVE_CUDA)
    register_cuda_kernels(registry());
#endif
  });
}

std::string device_problem(const device& dev) {
  if (dev.kind == device_kind::CPU) return "";
#if defined(AUTOGLM_HAVE_CUDA)
  if (dev.kind == device_kind::CUDA) return cuda_device_problem(dev.index);
#else
  if (dev.kind == device_kind::CUDA)
    return dev.str() + ": this build has no CUDA backend (configure with -DAUTOGLM_CUDA=ON where the CUDA toolkit "
           "is installed)";
#endif
  return dev.str() + ": no backend for this device kind";
}

// ---- memory -----------------------------------------------------------------------------------------------

tensor scratch(exec_context& ctx, dtype type, const std::vector<int64_t>& shape) {
  return ctx.arena().alloc(type, shape);
}

tensor to_device(exec_context& ctx, const tensor& host) {
  AG_CHECK(host.dev().kind == device_kind::CPU, "to_device: the source must be host memory");
  if (ctx.dev().kind == device_kind::CPU) return host;
  AG_CHECK(host.is_contiguous(), "to_device: the source must be contiguous");
  tensor d = scratch(ctx, host.type(), host.shape());
  memory(ctx).copy(ctx.kernels(), d.data(), host.data(), host.n_bytes(), false, true);
  return d;
}

tensor alloc_persistent(exec_context& ctx, dtype type, const std::vector<int64_t>& shape) {
  if (ctx.dev().kind == device_kind::CPU) return tensor::empty_host(type, shape);
  const device_memory& mem = memory(ctx);
  tensor t = tensor::view(nullptr, type, shape, ctx.dev());
  void* p = mem.alloc(ctx.dev(), std::max<size_t>(t.n_bytes(), 256));
  const device dev = ctx.dev();
  auto free_fn = mem.free;
  tensor owned = tensor::view(p, type, shape, dev);
  owned.set_owner(std::shared_ptr<void>(p, [dev, free_fn](void* q) { free_fn(dev, q); }));
  return owned;
}

void to_host(exec_context& ctx, const tensor& src, void* dst, size_t dst_bytes) {
  AG_CHECK(src.is_contiguous(), "to_host: the source must be contiguous");
  AG_CHECK(dst_bytes >= src.n_bytes(), "to_host: destination too small");
  if (src.dev().kind == device_kind::CPU) {
    std::memcpy(dst, src.data(), src.n_bytes());
    return;
  }
  const device_memory& mem = registry().memory(src.dev().kind);
  mem.copy(ctx.kernels(), dst, src.data(), src.n_bytes(), true, false);
  mem.synchronize(ctx.kernels());
}

void synchronize(exec_context& ctx) { memory(ctx).synchronize(ctx.kernels()); }

void prefetch(exec_context& ctx, const linear_weight& w) {
  if (ctx.dev().kind == device_kind::CPU || w.empty() || w.weight.dev() != ctx.dev() || !w.weight.is_contiguous())
    return;
  const device_memory& mem = memory(ctx);
  if (mem.prefetch) mem.prefetch(ctx.kernels(), w.weight.data(), w.weight_bytes());
}

bool memory_info(exec_context& ctx, size_t& free_bytes, size_t& total_bytes) {
  const device_memory& mem = memory(ctx);
  if (!mem.mem_info) return false;
  mem.mem_info(ctx.dev(), &free_bytes, &total_bytes);
  return true;
}

dtype gemm_input_type(const exec_context& ctx, int64_t rows) {
#if defined(AUTOGLM_HAVE_CUDA)
  if (ctx.dev().kind == device_kind::CUDA) return cuda_gemm_input_type(rows);
#endif
  (void)ctx;
  (void)rows;
  return dtype::F32;
}

int64_t rows_per_pass(exec_context& ctx, int64_t bytes_per_row, int64_t cache_rows) {
  AG_CHECK(bytes_per_row > 0 && cache_rows > 0, "rows_per_pass: bytes per row and cache rows must be positive");
  size_t free_bytes = 0, total_bytes = 0;
  if (!memory_info(ctx, free_bytes, total_bytes)) return cache_rows;
  const size_t budget = std::min(size_t(1) << 30, free_bytes / 8);
  return std::max(cache_rows, int64_t(budget / size_t(bytes_per_row)));
}

tensor host_f32(exec_context& ctx, const tensor& src) {
  // Convert on the source's device into a contiguous F32 tensor, then bring it over.
  tensor conv = src;
  if (src.type() != dtype::F32 || !src.is_contiguous()) {
    // COPY walks any strides in row-major order, so permuted views (whose leading dims do not collapse) work.
    conv = scratch(ctx, dtype::F32, {src.rows(), src.cols()});
    copy(ctx, src, conv);
  }
  tensor out = tensor::empty_host(dtype::F32, {src.rows(), src.cols()});
  to_host(ctx, conv, out.data(), out.n_bytes());
  return out;
}

// ---- weights ----------------------------------------------------------------------------------------------

tensor prepare_weight(exec_context& ctx, const tensor& w) {
  if (ctx.dev().kind == device_kind::CPU) return w;  // used in place from the mapping
  AG_CHECK(w.is_contiguous(), "prepare_weight: the source must be contiguous");
  tensor d = alloc_persistent(ctx, w.type(), w.shape());
  memory(ctx).copy(ctx.kernels(), d.data(), w.data(), w.n_bytes(), false, true);
  // Complete before returning: other contexts (the vision worker's stream) read weights without waiting for
  // this one, and the source mapping may be released once the model is bound.
  memory(ctx).synchronize(ctx.kernels());
  return d;
}

tensor prepare_param_f32(exec_context& ctx, const tensor& p) {
  AG_CHECK(p.dev().kind == device_kind::CPU, "prepare_param_f32: parameters come from host memory");
  tensor host = tensor::empty_host(dtype::F32, p.shape());
  {
    // Conversion on the host with the CPU kernels (a context of the CPU backend is not needed for that).
    kernel_context kc;
    auto fn = registry().get_kernel<kernel_sig::copy>(op_id::COPY, device_kind::CPU, p.type());
    fn(kc, p, host);
  }
  if (ctx.dev().kind == device_kind::CPU) return host;
  tensor d = alloc_persistent(ctx, dtype::F32, p.shape());
  memory(ctx).copy(ctx.kernels(), d.data(), host.data(), host.n_bytes(), false, true);
  memory(ctx).synchronize(ctx.kernels());
  return d;
}

linear_weight prepare_linear(exec_context& ctx, const tensor& w, const tensor& bias, std::string name,
                             bool private_copy, const std::string& cache_key) {
  linear_weight lw;
  lw.weight = prepare_weight(ctx, w);
  if (ctx.dev().kind == device_kind::CPU && w.is_contiguous())
    if (auto repack = registry().find(op_id::REPACK_WEIGHT, device_kind::CPU, w.type())) {
      const bool file_backed = in_file_mapping(w.data(), w.n_bytes());
      // The copy kept from an earlier load (or one made into the cache's new file), where a cache is set.
      std::optional<repack_cache::entry> kept;
      repack_alloc alloc;
      if (!cache_key.empty())
        if (std::string dir = repack_cache::directory(); !dir.empty()) {
          kept.emplace(std::move(dir), cache_key, w.type(), w.shape());
          alloc = [&kept](int64_t bytes) { return kept->offer(bytes); };
        }
      lw.repacked =
          reinterpret_cast<kernel_sig::repack_weight>(repack)(ctx.kernels(), w, file_backed || private_copy, alloc);
      if (kept && !lw.repacked.empty()) kept->commit();
      // The kernels read the copy from now on: the file's pages of the weight need not stay resident, and a private
      // copy is let go (`weight` keeps its shape and dtype over the copy's bytes, core/weights.h).
      if (!lw.repacked.empty() && file_backed) {
        release_file_pages(w.data(), w.n_bytes());
      } else if (!lw.repacked.empty() && private_copy) {
        lw.weight = tensor::view(lw.repacked.data(), w.type(), w.shape());
        lw.weight.set_owner(lw.repacked.owner());
        lw.weight_released = true;
      }
    }
  if (!bias.empty()) {
    AG_CHECK(bias.n_elements() == w.dim(0), "prepare_linear: bias length differs from the output features");
    lw.bias = prepare_param_f32(ctx, bias);
  }
  lw.name = std::move(name);
  return lw;
}

// ---- compute ----------------------------------------------------------------------------------------------

namespace {

// LINEAR's operands (also those of the fused op that starts with one).
void check_linear(exec_context& ctx, op_id op, const tensor& x, const linear_weight& w, const tensor& y) {
  const std::string name = op_name(op);
  on_device(ctx, x, op, "x");
  on_device(ctx, w.weight, op, "weight");
  on_device(ctx, y, op, "y");
  is_f32_or_gemm_input(ctx, x, op, "x");
  is_f32_or_gemm_input(ctx, y, op, "y");
  AG_CHECK(w.weight.n_dims() == 2, name + ": weight '" + w.name + "' must be 2-D");
  AG_CHECK(x.cols() == w.in_features(), name + ": x " + x.shape_str() + " does not match weight '" + w.name + "' " +
                                            w.weight.shape_str());
  AG_CHECK(y.rows() == x.rows() && y.cols() == w.out_features(),
           name + ": y " + y.shape_str() + " for x " + x.shape_str() + " and weight " + w.weight.shape_str());
  if (!w.bias.empty()) on_device(ctx, w.bias, op, "bias");
}

}  // namespace

void linear(exec_context& ctx, const tensor& x, const linear_weight& w, tensor& y) {
  const op_id op = op_id::LINEAR;
  check_linear(ctx, op, x, w, y);
  if (x.rows() == 0) return;
  kernel<kernel_sig::linear>(op, ctx, w.weight.type())(ctx.kernels(), x, w, y);
}

void linear_swiglu(exec_context& ctx, const tensor& x, const linear_weight& w, tensor& tmp, tensor& y) {
  const op_id op = op_id::LINEAR_SWIGLU;
  for (const tensor* t : {&x, &w.weight, static_cast<const tensor*>(&tmp), static_cast<const tensor*>(&y)})
    on_device(ctx, *t, op, "x/weight/tmp/y");
  is_f32_or_gemm_input(ctx, x, op, "x");
  is_f32(tmp, op, "tmp");
  is_f32_or_gemm_input(ctx, y, op, "y");
  AG_CHECK(w.weight.n_dims() == 2, "linear_swiglu: weight '" + w.name + "' must be 2-D");
  AG_CHECK(x.cols() == w.in_features(), "linear_swiglu: x " + x.shape_str() + " does not match weight '" + w.name +
                                            "' " + w.weight.shape_str());
  AG_CHECK(w.out_features() == 2 * y.cols() && y.rows() == x.rows(),
           "linear_swiglu: y " + y.shape_str() + " for x " + x.shape_str() + " and gate|up weight " +
               w.weight.shape_str());
  AG_CHECK(tmp.rows() == x.rows() && tmp.cols() == w.out_features(),
           "linear_swiglu: tmp " + tmp.shape_str() + " for " + std::to_string(x.rows()) + " rows of " +
               std::to_string(w.out_features()));
  if (!w.bias.empty()) on_device(ctx, w.bias, op, "bias");
  if (x.rows() == 0) return;
  kernel<kernel_sig::linear_swiglu>(op, ctx, w.weight.type())(ctx.kernels(), x, w, tmp, y);
}

void linear_add(exec_context& ctx, const tensor& x, const linear_weight& w, tensor& tmp, tensor& y) {
  const op_id op = op_id::LINEAR_ADD;
  for (const tensor* t : {&x, &w.weight, static_cast<const tensor*>(&tmp), static_cast<const tensor*>(&y)})
    on_device(ctx, *t, op, "x/weight/tmp/y");
  is_f32_or_gemm_input(ctx, x, op, "x");
  is_f32(tmp, op, "tmp");
  is_f32(y, op, "y");
  AG_CHECK(w.weight.n_dims() == 2, "linear_add: weight '" + w.name + "' must be 2-D");
  AG_CHECK(x.cols() == w.in_features(), "linear_add: x " + x.shape_str() + " does not match weight '" + w.name +
                                            "' " + w.weight.shape_str());
  AG_CHECK(w.out_features() == y.cols() && y.rows() == x.rows(),
           "linear_add: y " + y.shape_str() + " for x " + x.shape_str() + " and weight " + w.weight.shape_str());
  AG_CHECK(tmp.rows() == x.rows() && tmp.cols() == y.cols(),
           "linear_add: tmp " + tmp.shape_str() + " for y " + y.shape_str());
  if (!w.bias.empty()) on_device(ctx, w.bias, op, "bias");
  if (x.rows() == 0) return;
  kernel<kernel_sig::linear_add>(op, ctx, w.weight.type())(ctx.kernels(), x, w, tmp, y);
}

void rms_norm(exec_context& ctx, const tensor& x, const tensor& weight, float eps, tensor& y) {
  const op_id op = op_id::RMS_NORM;
  on_device(ctx, x, op, "x");
  on_device(ctx, weight, op, "weight");
  on_device(ctx, y, op, "y");
  is_f32(weight, op, "weight");
  is_f32(x, op, "x");
  is_f32_or_gemm_input(ctx, y, op, "y");
  same_rows_cols(x, y, op);
  AG_CHECK(weight.n_elements() == x.cols(), "rms_norm: weight length differs from the row width");
  kernel<kernel_sig::rms_norm>(op, ctx, x.type())(ctx.kernels(), x, weight, eps, y);
}

void residual_rms_norm(exec_context& ctx, tensor& x, const tensor& y, const tensor& w_post, const tensor& w_next,
                       float eps, tensor& h) {
  const op_id op = op_id::RESIDUAL_RMS_NORM;
  on_device(ctx, x, op, "x");
  on_device(ctx, y, op, "y");
  on_device(ctx, w_post, op, "w_post");
  is_f32(w_post, op, "w_post");
  same_rows_cols(x, y, op);
  AG_CHECK(w_post.n_elements() == x.cols(), "residual_rms_norm: w_post length differs from the row width");
  if (!w_next.empty()) {
    on_device(ctx, w_next, op, "w_next");
    on_device(ctx, h, op, "h");
    is_f32(w_next, op, "w_next");
    is_f32_or_gemm_input(ctx, h, op, "h");
    same_rows_cols(x, h, op);
    AG_CHECK(w_next.n_elements() == x.cols(), "residual_rms_norm: w_next length differs from the row width");
    AG_CHECK(h.data() != x.data() && h.data() != y.data(), "residual_rms_norm: h must not alias x or y");
  }
  kernel<kernel_sig::residual_rms_norm>(op, ctx, x.type())(ctx.kernels(), x, y, w_post, w_next, eps, h);
}

void layer_norm(exec_context& ctx, const tensor& x, const tensor& weight, const tensor& bias, float eps, tensor& y) {
  const op_id op = op_id::LAYER_NORM;
  on_device(ctx, x, op, "x");
  on_device(ctx, weight, op, "weight");
  on_device(ctx, bias, op, "bias");
  on_device(ctx, y, op, "y");
  same_rows_cols(x, y, op);
  AG_CHECK(weight.n_elements() == x.cols() && bias.n_elements() == x.cols(), "layer_norm: parameter length");
  kernel<kernel_sig::layer_norm>(op, ctx, x.type())(ctx.kernels(), x, weight, bias, eps, y);
}

void rope_mrope(exec_context& ctx, tensor& x, int32_t n_heads, int32_t head_dim, int32_t rot_dim, const tensor& pos,
                const std::array<int32_t, 3>& sections, float theta) {
  const op_id op = op_id::ROPE_MROPE;
  on_device(ctx, x, op, "x");
  on_device(ctx, pos, op, "pos");
  AG_CHECK(pos.type() == dtype::I32 && pos.rows() == 3 && pos.cols() == x.rows(), "rope_mrope: pos must be I32 [3, n]");
  AG_CHECK(x.cols() >= int64_t(n_heads) * head_dim, "rope_mrope: x narrower than its heads");
  AG_CHECK(rot_dim > 0 && rot_dim <= head_dim && rot_dim % 2 == 0, "rope_mrope: rot_dim");
  AG_CHECK(sections[0] + sections[1] + sections[2] == rot_dim / 2, "rope_mrope: sections must cover rot_dim/2 pairs");
  kernel<kernel_sig::rope_mrope>(op, ctx, x.type())(ctx.kernels(), x, n_heads, head_dim, rot_dim, pos, sections, theta);
}

void rope_2d(exec_context& ctx, tensor& x, int32_t n_heads, int32_t head_dim, const tensor& pos, float theta) {
  const op_id op = op_id::ROPE_2D;
  on_device(ctx, x, op, "x");
  on_device(ctx, pos, op, "pos");
  AG_CHECK(pos.type() == dtype::I32 && pos.rows() == 2 && pos.cols() == x.rows(), "rope_2d: pos must be I32 [2, n]");
  AG_CHECK(x.cols() >= int64_t(n_heads) * head_dim && head_dim % 4 == 0, "rope_2d: head layout");
  kernel<kernel_sig::rope_2d>(op, ctx, x.type())(ctx.kernels(), x, n_heads, head_dim, pos, theta);
}

void kv_store(exec_context& ctx, const paged_kv_layer& kv, const tensor& k, const tensor& v, const tensor& slots) {
  const op_id op = op_id::KV_STORE;
  on_device(ctx, kv.k, op, "k cache");
  on_device(ctx, kv.v, op, "v cache");
  on_device(ctx, k, op, "k");
  on_device(ctx, v, op, "v");
  on_device(ctx, slots, op, "slots");
  AG_CHECK(kv.k.n_dims() == 4 && kv.v.shape() == kv.k.shape(), "kv_store: cache must be [blocks, block, heads, dim]");
  AG_CHECK(k.cols() == kv.k.dim(2) * kv.k.dim(3) && v.cols() == k.cols() && v.rows() == k.rows(),
           "kv_store: k/v rows must be n_kv_heads*head_dim wide");
  AG_CHECK(slots.type() == dtype::I32 && slots.n_elements() == k.rows(), "kv_store: one I32 slot per row");
  kernel<kernel_sig::kv_store>(op, ctx, kv.k.type())(ctx.kernels(), kv, k, v, slots);
}

namespace {

// ROPE_KV_STORE's operands (also those of the fused op that ends with it).
void check_rope_kv_store(exec_context& ctx, op_id op, const tensor& qk, int32_t n_q_heads, int32_t rot_dim,
                         const tensor& pos, const std::array<int32_t, 3>& sections, const paged_kv_layer& kv,
                         const tensor& v, const tensor& slots) {
  const std::string name = op_name(op);
  on_device(ctx, qk, op, "qk");
  on_device(ctx, pos, op, "pos");
  on_device(ctx, kv.k, op, "k cache");
  on_device(ctx, kv.v, op, "v cache");
  on_device(ctx, v, op, "v");
  on_device(ctx, slots, op, "slots");
  AG_CHECK(kv.k.n_dims() == 4 && kv.v.shape() == kv.k.shape(), name + ": cache must be [blocks, block, heads, dim]");
  const int64_t n_kv_heads = kv.k.dim(2), head_dim = kv.k.dim(3);
  AG_CHECK(n_q_heads >= 0 && qk.type() == dtype::F32 && qk.cols() == (n_q_heads + n_kv_heads) * head_dim,
           name + ": qk " + qk.shape_str() + " must be F32 [n, (" + std::to_string(n_q_heads) + " + " +
               std::to_string(n_kv_heads) + ") * " + std::to_string(head_dim) + "]");
  AG_CHECK(v.type() == dtype::F32 && v.rows() == qk.rows() && v.cols() == n_kv_heads * head_dim,
           name + ": v must be F32 [n, n_kv_heads*head_dim]");
  AG_CHECK(pos.type() == dtype::I32 && pos.rows() == 3 && pos.cols() == qk.rows(), name + ": pos must be I32 [3, n]");
  AG_CHECK(rot_dim > 0 && rot_dim <= head_dim && rot_dim % 2 == 0, name + ": rot_dim");
  AG_CHECK(sections[0] + sections[1] + sections[2] == rot_dim / 2, name + ": sections must cover rot_dim/2 pairs");
  AG_CHECK(slots.type() == dtype::I32 && slots.n_elements() == qk.rows(), name + ": one I32 slot per row");
}

}  // namespace

void rope_kv_store(exec_context& ctx, tensor& qk, int32_t n_q_heads, int32_t rot_dim, const tensor& pos,
                   const std::array<int32_t, 3>& sections, float theta, const paged_kv_layer& kv, const tensor& v,
                   const tensor& slots) {
  const op_id op = op_id::ROPE_KV_STORE;
  check_rope_kv_store(ctx, op, qk, n_q_heads, rot_dim, pos, sections, kv, v, slots);
  kernel<kernel_sig::rope_kv_store>(op, ctx, kv.k.type())(ctx.kernels(), qk, n_q_heads, rot_dim, pos, sections, theta,
                                                          kv, v, slots);
}

void linear_rope_kv_store(exec_context& ctx, const tensor& x, const linear_weight& w, tensor& y, int32_t n_q_heads,
                          int32_t rot_dim, const tensor& pos, const std::array<int32_t, 3>& sections, float theta,
                          const paged_kv_layer& kv, const tensor& slots) {
  const op_id op = op_id::LINEAR_ROPE_KV_STORE;
  check_linear(ctx, op, x, w, y);
  AG_CHECK(kv.k.n_dims() == 4, "linear_rope_kv_store: cache must be [blocks, block, heads, dim]");
  const int64_t kvd = kv.k.dim(2) * kv.k.dim(3), qkd = int64_t(n_q_heads) * kv.k.dim(3) + kvd;
  AG_CHECK(y.type() == dtype::F32 && y.cols() == qkd + kvd,
           "linear_rope_kv_store: y " + y.shape_str() + " must be F32 [n, (" + std::to_string(n_q_heads) +
               " + 2 x " + std::to_string(kv.k.dim(2)) + ") * " + std::to_string(kv.k.dim(3)) + "]");
  check_rope_kv_store(ctx, op, y.cols_view(0, qkd), n_q_heads, rot_dim, pos, sections, kv, y.cols_view(qkd, kvd),
                      slots);
  if (x.rows() == 0) return;
  kernel<kernel_sig::linear_rope_kv_store>(op, ctx, w.weight.type())(ctx.kernels(), x, w, y, n_q_heads, rot_dim, pos,
                                                                     sections, theta, kv, slots);
}

void attention_paged(exec_context& ctx, const tensor& q, const paged_kv_layer& kv, const paged_batch& batch,
                     int32_t n_heads, int32_t n_kv_heads, int32_t head_dim, float scale, tensor& out) {
  const op_id op = op_id::ATTENTION_PAGED;
  on_device(ctx, q, op, "q");
  on_device(ctx, kv.k, op, "k cache");
  on_device(ctx, out, op, "out");
  on_device(ctx, batch.seq_info, op, "seq_info");
  on_device(ctx, batch.block_tables, op, "block_tables");
  AG_CHECK(n_kv_heads > 0 && n_heads % n_kv_heads == 0, "attention_paged: heads must be a multiple of KV heads");
  AG_CHECK(kv.k.dim(2) == n_kv_heads && kv.k.dim(3) == head_dim, "attention_paged: cache layout");
  AG_CHECK(q.cols() >= int64_t(n_heads) * head_dim && out.cols() >= int64_t(n_heads) * head_dim &&
               out.rows() == q.rows(),
           "attention_paged: q/out shapes");
  AG_CHECK(batch.seq_info.type() == dtype::I32 && batch.seq_info.rows() == batch.n_seqs && batch.seq_info.cols() == 3,
           "attention_paged: seq_info must be I32 [n_seqs, 3]");
  AG_CHECK(batch.block_tables.type() == dtype::I32 && batch.block_tables.rows() == batch.n_seqs,
           "attention_paged: block_tables must be I32 [n_seqs, max_blocks]");
  kernel<kernel_sig::attention_paged>(op, ctx, kv.k.type())(ctx.kernels(), q, kv, batch, n_heads, n_kv_heads,
                                                             head_dim, scale, out);
}

void attention_dense(exec_context& ctx, const tensor& q, const tensor& k, const tensor& v, int32_t n_heads,
                     int32_t head_dim, const tensor& segments, float scale, tensor& out) {
  const op_id op = op_id::ATTENTION_DENSE;
  for (const tensor* t : {&q, &k, &v, static_cast<const tensor*>(&out)}) on_device(ctx, *t, op, "q/k/v/out");
  on_device(ctx, segments, op, "segments");
  const int64_t w = int64_t(n_heads) * head_dim;
  AG_CHECK(q.cols() >= w && k.cols() >= w && v.cols() >= w && out.cols() >= w, "attention_dense: widths");
  AG_CHECK(k.rows() == q.rows() && v.rows() == q.rows() && out.rows() == q.rows(), "attention_dense: rows");
  is_f32_or_gemm_input(ctx, q, op, "q");
  AG_CHECK(k.type() == q.type() && v.type() == q.type(), "attention_dense: q, k and v must have one type");
  is_f32_or_gemm_input(ctx, out, op, "out");
  AG_CHECK(segments.type() == dtype::I32 && segments.n_elements() >= 2, "attention_dense: segments I32 [n_seg+1]");
  kernel<kernel_sig::attention_dense>(op, ctx, q.type())(ctx.kernels(), q, k, v, n_heads, head_dim, segments, scale,
                                                         out);
}

void attention_cross(exec_context& ctx, const tensor& q, const tensor& k, const tensor& v, int32_t n_heads,
                     int32_t n_kv_heads, int32_t head_dim, float scale, tensor& out) {
  const op_id op = op_id::ATTENTION_CROSS;
  for (const tensor* t : {&q, &k, &v, static_cast<const tensor*>(&out)}) on_device(ctx, *t, op, "q/k/v/out");
  AG_CHECK(n_heads > 0 && n_kv_heads > 0 && head_dim > 0 && n_heads % n_kv_heads == 0,
           "attention_cross: heads must be a positive multiple of KV heads");
  const int64_t qw = int64_t(n_heads) * head_dim, kw = int64_t(n_kv_heads) * head_dim;
  AG_CHECK(q.cols() >= qw && out.cols() >= qw && k.cols() >= kw && v.cols() >= kw, "attention_cross: widths");
  AG_CHECK(out.rows() == q.rows() && v.rows() == k.rows(), "attention_cross: rows");
  kernel<kernel_sig::attention_cross>(op, ctx, q.type())(ctx.kernels(), q, k, v, n_heads, n_kv_heads, head_dim, scale,
                                                         out);
}

int64_t conv1d_out_len(int64_t t_in, int32_t kernel_size, int32_t stride, int32_t pad) {
  AG_CHECK(kernel_size > 0 && stride > 0 && pad >= 0, "conv1d_out_len: kernel, stride and padding");
  const int64_t span = t_in + 2 * int64_t(pad) - kernel_size;
  return span < 0 ? 0 : span / stride + 1;
}

void im2col_1d(exec_context& ctx, const tensor& x, int32_t kernel_size, int32_t stride, int32_t pad, tensor& out) {
  const op_id op = op_id::IM2COL_1D;
  on_device(ctx, x, op, "x");
  on_device(ctx, out, op, "out");
  is_f32(x, op, "x");
  is_f32(out, op, "out");
  const int64_t t_out = conv1d_out_len(x.rows(), kernel_size, stride, pad);
  AG_CHECK(out.rows() == t_out && out.cols() == x.cols() * kernel_size,
           "im2col_1d: out " + out.shape_str() + " for x " + x.shape_str() + " kernel " + std::to_string(kernel_size) +
               " stride " + std::to_string(stride) + " pad " + std::to_string(pad));
  if (t_out == 0) return;
  kernel<kernel_sig::im2col_1d>(op, ctx, x.type())(ctx.kernels(), x, kernel_size, stride, pad, out);
}

void silu_mul(exec_context& ctx, const tensor& gate, const tensor& up, tensor& out) {
  const op_id op = op_id::SILU_MUL;
  on_device(ctx, gate, op, "gate");
  on_device(ctx, up, op, "up");
  on_device(ctx, out, op, "out");
  same_rows_cols(gate, up, op);
  same_rows_cols(gate, out, op);
  is_f32_or_gemm_input(ctx, gate, op, "gate");
  AG_CHECK(up.type() == gate.type() && out.type() == gate.type(),
           std::string("silu_mul: gate, up and out must have one type, are ") + dtype_name(gate.type()) + ", " +
               dtype_name(up.type()) + ", " + dtype_name(out.type()));
  kernel<kernel_sig::silu_mul>(op, ctx, gate.type())(ctx.kernels(), gate, up, out);
}

void gelu(exec_context& ctx, tensor& x) {
  on_device(ctx, x, op_id::GELU, "x");
  kernel<kernel_sig::gelu>(op_id::GELU, ctx, x.type())(ctx.kernels(), x);
}

void add(exec_context& ctx, tensor& x, const tensor& y) {
  on_device(ctx, x, op_id::ADD, "x");
  on_device(ctx, y, op_id::ADD, "y");
  same_rows_cols(x, y, op_id::ADD);
  kernel<kernel_sig::add>(op_id::ADD, ctx, x.type())(ctx.kernels(), x, y);
}

void add_scaled(exec_context& ctx, tensor& x, const tensor& y, float alpha) {
  on_device(ctx, x, op_id::ADD_SCALED, "x");
  on_device(ctx, y, op_id::ADD_SCALED, "y");
  same_rows_cols(x, y, op_id::ADD_SCALED);
  kernel<kernel_sig::add_scaled>(op_id::ADD_SCALED, ctx, x.type())(ctx.kernels(), x, y, alpha);
}

void embedding(exec_context& ctx, const tensor& table, const tensor& ids, tensor& out) {
  const op_id op = op_id::EMBEDDING;
  on_device(ctx, table, op, "table");
  on_device(ctx, ids, op, "ids");
  on_device(ctx, out, op, "out");
  is_f32(out, op, "out");
  AG_CHECK(ids.type() == dtype::I32 && ids.n_elements() == out.rows(), "embedding: one I32 id per output row");
  AG_CHECK(table.cols() == out.cols(), "embedding: table width differs from out");
  kernel<kernel_sig::embedding>(op, ctx, table.type())(ctx.kernels(), table, ids, out);
}

void softmax(exec_context& ctx, tensor& x, float scale) {
  on_device(ctx, x, op_id::SOFTMAX, "x");
  kernel<kernel_sig::softmax>(op_id::SOFTMAX, ctx, x.type())(ctx.kernels(), x, scale);
}

void copy(exec_context& ctx, const tensor& src, tensor& dst) {
  const op_id op = op_id::COPY;
  on_device(ctx, src, op, "src");
  on_device(ctx, dst, op, "dst");
  AG_CHECK(src.n_elements() == dst.n_elements(), "copy: " + src.shape_str() + " -> " + dst.shape_str());
  kernel<kernel_sig::copy>(op, ctx, src.type())(ctx.kernels(), src, dst);
}

void pos_embed_bicubic(exec_context& ctx, const tensor& table, int32_t table_grid, int32_t grid_h, int32_t grid_w,
                       const tensor& pos, tensor& out) {
  const op_id op = op_id::POS_EMBED_BICUBIC;
  on_device(ctx, table, op, "table");
  on_device(ctx, pos, op, "pos");
  on_device(ctx, out, op, "out");
  AG_CHECK(table.rows() == int64_t(table_grid) * table_grid && table.cols() == out.cols(), "pos_embed_bicubic: table");
  AG_CHECK(pos.type() == dtype::I32 && pos.rows() == 2 && pos.cols() == out.rows(), "pos_embed_bicubic: pos I32 [2, n]");
  kernel<kernel_sig::pos_embed_bicubic>(op, ctx, table.type())(ctx.kernels(), table, table_grid, grid_h, grid_w, pos,
                                                                out);
}

namespace {

// An axis of raw_image's resize whose taps stay inside the input (the kernels index by them without checks).
void check_resample_axis(const resample_axis& a, int32_t in_size, const char* name) {
  const std::string what = std::string("image_patches: ") + name + " resize ";
  AG_CHECK(a.in_size == in_size && a.out_size > 0, what + "does not start from the image's size");
  if (a.in_size == a.out_size) return;  // no pass
  AG_CHECK(a.ksize > 0 && a.precision >= 1 && a.precision <= 22 && a.first.size() == size_t(a.out_size) &&
               a.count.size() == size_t(a.out_size) && a.weight.size() == size_t(a.out_size) * size_t(a.ksize),
           what + "taps are malformed");
  for (int32_t i = 0; i < a.out_size; ++i) {
    const int32_t f = a.first[size_t(i)], c = a.count[size_t(i)];
    AG_CHECK(f >= 0 && c >= 0 && c <= a.ksize && f <= a.in_size - c, what + "taps reach outside the image");
  }
}

}  // namespace

void image_patches(exec_context& ctx, const raw_image& img, int32_t patch, int32_t temporal, int32_t merge,
                   tensor& out) {
  const op_id op = op_id::IMAGE_PATCHES;
  on_device(ctx, out, op, "out");
  is_f32_or_gemm_input(ctx, out, op, "out");
  AG_CHECK(out.is_contiguous(), "image_patches: out must be contiguous");
  AG_CHECK(img.width > 0 && img.height > 0 && img.rgb.size() == size_t(img.width) * size_t(img.height) * 3,
           "image_patches: the image's bytes do not match its size");
  check_resample_axis(img.horizontal, img.width, "horizontal");
  check_resample_axis(img.vertical, img.height, "vertical");
  AG_CHECK(patch > 0 && temporal > 0 && merge > 0, "image_patches: patch, temporal and merge must be positive");
  const int32_t w = img.horizontal.out_size, h = img.vertical.out_size;
  AG_CHECK(w % (patch * merge) == 0 && h % (patch * merge) == 0,
           "image_patches: resized " + std::to_string(w) + "x" + std::to_string(h) + " is not a multiple of " +
               std::to_string(patch * merge));
  const int64_t n = int64_t(h / patch) * (w / patch), pd = int64_t(3) * temporal * patch * patch;
  AG_CHECK(out.rows() == n && out.cols() == pd,
           "image_patches: out " + out.shape_str() + " for " + std::to_string(n) + " patches of " + std::to_string(pd));
  kernel<kernel_sig::image_patches>(op, ctx, dtype::U8)(ctx.kernels(), img, patch, temporal, merge, out);
}

void sample(exec_context& ctx, const tensor& logits, const float* params, tensor& out) {
  const op_id op = op_id::SAMPLE;
  on_device(ctx, logits, op, "logits");
  on_device(ctx, out, op, "out");
  is_f32(logits, op, "logits");
  AG_CHECK(out.type() == dtype::I32 && out.is_contiguous() && out.n_elements() == logits.rows(),
           "sample: out must be I32 [" + std::to_string(logits.rows()) + "], is " + out.shape_str());
  AG_CHECK(logits.cols() > 0, "sample: empty logits rows");
  const tensor host = tensor::view(params, dtype::F32, {logits.rows(), int64_t(k_sample_params)},
                                   device{});
  const tensor dev_params = to_device(ctx, host);
  kernel<kernel_sig::sample>(op, ctx, logits.type())(ctx.kernels(), logits, dev_params, out);
}

// ---- graphs -------------------------------------------------------------------------------------------------

bool graphs_supported(exec_context& ctx) {
  if (ctx.dev().kind == device_kind::CPU) return false;
  const device_memory& mem = memory(ctx);
  return mem.graph_begin && mem.graph_end && mem.graph_launch && mem.graph_destroy;
}

void graph_begin(exec_context& ctx) {
  AG_CHECK(graphs_supported(ctx), "graph_begin: " + ctx.dev().str() + " has no graphs");
  memory(ctx).graph_begin(ctx.kernels());
}

std::shared_ptr<void> graph_end(exec_context& ctx) {
  const device_memory& mem = memory(ctx);
  void* g = mem.graph_end(ctx.kernels());
  if (!g) return nullptr;
  const device dev = ctx.dev();
  auto destroy = mem.graph_destroy;
  return std::shared_ptr<void>(g, [dev, destroy](void* p) { destroy(dev, p); });
}

void graph_launch(exec_context& ctx, const std::shared_ptr<void>& graph) {
  AG_CHECK(graph != nullptr, "graph_launch: no graph");
  memory(ctx).graph_launch(ctx.kernels(), graph.get());
}

// ---- tensor parallelism / debugging -------------------------------------------------------------------------

// A group of one still goes through its communicator (NCCL's size-1 path is tested on one GPU that way).
void all_reduce_sum(exec_context& ctx, tensor& x) {
  if (ctx.comm()) ctx.comm()->all_reduce_sum(ctx.kernels(), x);
}

void all_gather_cols(exec_context& ctx, const tensor& x, tensor& out) {
  const int64_t n = x.rows(), c = x.cols();
  AG_CHECK(out.rows() == n, "all_gather_cols: out must have the input's rows");
  communicator* comm = ctx.comm();
  if (!comm) {
    AG_CHECK(out.cols() <= c, "all_gather_cols: out wider than one rank's columns without a communicator");
    copy(ctx, x.cols_view(0, out.cols()), out);
    return;
  }
  const int32_t R = comm->size();
  AG_CHECK(out.cols() <= int64_t(R) * c, "all_gather_cols: out wider than the ranks' columns together");
  // The collective stacks rows rank by rank ([R * n, c]); rank r's block becomes out's columns [r * c, ...).
  tensor src = x;
  if (!x.is_contiguous()) {
    src = scratch(ctx, dtype::F32, {n, c});
    copy(ctx, x, src);
  }
  tensor stacked = scratch(ctx, dtype::F32, {int64_t(R) * n, c});
  comm->all_gather_rows(ctx.kernels(), src, stacked);
  for (int32_t r = 0; r < R; ++r) {
    const int64_t first = int64_t(r) * c, width = std::min(c, out.cols() - first);
    tensor dst = out.cols_view(first, width);
    copy(ctx, stacked.rows_view(int64_t(r) * n, n).cols_view(0, width), dst);
  }
}

communicator_group create_communicators(const std::vector<device>& devs) {
  if (devs.empty()) throw error("a tensor-parallel group needs at least one rank");
  for (const device& d : devs)
    if (d.kind != devs[0].kind)
      throw error("a tensor-parallel group spans one kind of device, not " + devs[0].str() + " and " + d.str());
  init_backends();
  const device_memory& mem = kernel_registry::instance().memory(devs[0].kind);
  if (!mem.create_communicators)
    throw error("the " + std::string(device_kind_name(devs[0].kind)) + " backend has no communicator for tensor parallelism");
  return mem.create_communicators(devs);
}

void dump(exec_context& ctx, const std::string& name, const tensor& t) {
  if (!ctx.dump()) return;
  ctx.dump()(name, host_f32(ctx, t));
}

}  // namespace autoglm::ops

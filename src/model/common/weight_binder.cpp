// model/common/weight_binder.cpp: see weight_binder.h.
#include "model/common/weight_binder.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "ops/ops.h"
#include "ops/repack_cache.h"

namespace autoglm {

namespace {

// Rows `rows` (ranges concatenated) and columns [col_first, col_first + n_cols) of a host matrix `w` [R, C] in
// any dtype, then `pad_rows` zero rows, as a new host tensor. Columns of a block type must be whole blocks.
tensor cut(const tensor& w, const weight_binder::row_ranges& rows, int64_t col_first, int64_t n_cols,
           int64_t pad_rows, const std::string& name) {
  const dtype t = w.type();
  const int64_t R = w.rows(), C = w.cols();
  const int64_t be = int64_t(dtype_block_elems(t));
  if (col_first % be != 0 || n_cols % be != 0)
    throw error("tensor parallelism: '" + name + "' (" + dtype_name(t) + ", " + std::to_string(C) +
                " columns) would be cut at column " + std::to_string(col_first) + " into " + std::to_string(n_cols) +
                " columns, which is not a whole number of " + std::to_string(be) + "-element " + dtype_name(t) +
                " blocks; use fewer ranks or a type with smaller blocks (q8_0, bf16)");
  AG_CHECK(col_first >= 0 && n_cols > 0 && col_first + n_cols <= C, "tensor parallelism: column range of " + name);
  int64_t n_out = pad_rows;
  for (const auto& [first, count] : rows) {
    AG_CHECK(first >= 0 && count >= 0 && first + count <= R, "tensor parallelism: row range of " + name);
    n_out += count;
  }
  tensor out = tensor::empty_host(t, {n_out, n_cols});
  const size_t skip = dtype_row_bytes(t, col_first), width = dtype_row_bytes(t, n_cols);
  int64_t o = 0;
  for (const auto& [first, count] : rows)
    for (int64_t r = first; r < first + count; ++r) std::memcpy(out.row(o++), w.row(r) + skip, width);
  for (; o < n_out; ++o) std::memset(out.row(o), 0, width);
  return out;
}

// The same for a 1-D tensor (a bias, I8 scales), cut as a one-column matrix.
tensor cut_vector(const tensor& v, const weight_binder::row_ranges& rows, int64_t pad_rows, const std::string& name) {
  const tensor out = cut(v.reshape({v.n_elements(), 1}), rows, 0, 1, pad_rows, name);
  return out.reshape({out.rows()});
}

// Element i of a contiguous F32, F16 or BF16 vector.
float float_at(const tensor& v, int64_t i) {
  switch (v.type()) {
    case dtype::F32: return v.ptr<float>()[i];
    case dtype::F16: return f16_to_f32(v.ptr<uint16_t>()[i]);
    case dtype::BF16: return bf16_to_f32(v.ptr<uint16_t>()[i]);
    default: throw error(std::string("a bias of dtype ") + dtype_name(v.type()));
  }
}

}  // namespace

tensor weight_binder::linear_matrix(const std::string& name, const std::vector<int64_t>& shape) const {
  tensor w = src_.get_matrix(name, shape);
  require_kernel(op_id::LINEAR, name, w.type(), "a linear weight");
  return w;
}

std::string weight_binder::source_key(const std::string& name) const {
  if (repack_cache::directory().empty()) return {};  // no cache: no key, and no source file stat'ed for one
  const std::string id = repack_cache::file_identity(src_.at(name).file);
  return id.empty() ? id : id + " : " + name;
}

namespace {

// A key naming the rows taken from a source tensor, "" where its file has no identity.
std::string rows_key(const std::string& source, const weight_binder::row_ranges& rows) {
  if (source.empty()) return source;
  std::string k = source + " rows";
  for (const auto& [first, count] : rows)
    k.append(" ").append(std::to_string(first)).append("+").append(std::to_string(count));
  return k;
}

}  // namespace

linear_weight weight_binder::prepare(const std::string& name, const tensor& w, const tensor& bias,
                                     const tensor& scales, shard_kind shard, bool private_copy,
                                     const std::string& cache_key) {
  linear_weight lw = ops::prepare_linear(ctx_, w, bias, name, private_copy, cache_key);
  // An I8 weight's per-row scales come with it (a source that quantized the checkpoint at load).
  if (!scales.empty()) lw.scales = ops::prepare_param_f32(ctx_, scales);
  lw.shard = {shard, rank_, n_ranks_};
  return lw;
}

linear_weight weight_binder::linear(const std::string& name, const std::vector<int64_t>& shape,
                                    const std::string& bias_name, shard_kind shard) {
  const tensor w = linear_matrix(name, shape);
  tensor bias;
  if (!bias_name.empty()) bias = float_tensor(bias_name, {shape[0]});
  const tensor_source::entry& e = src_.at(name);
  linear_weight lw = prepare(name, w, bias, e.scales, n_ranks_ == 1 ? shard : shard_kind::REPLICATED, e.private_copy,
                             source_key(name));
  // The backend keeps its own copy: the source's (a permuted or converted copy made at load) can go now rather
  // than when loading ends, so resident memory never holds both. Not with several ranks: each binds the same
  // source (on its own thread).
  if (lw.weight_released && n_ranks_ == 1) src_.release(name);
  return lw;
}

linear_weight weight_binder::linear_rows(const std::string& name, const std::vector<int64_t>& shape,
                                         const std::string& bias_name, const row_ranges& rows) {
  if (n_ranks_ == 1) return linear(name, shape, bias_name, shard_kind::COLUMN);
  const tensor w = linear_matrix(name, shape);
  tensor bias, scales;
  // 1-D tensors are cut as one-column matrices.
  if (!bias_name.empty()) {
    const tensor& b = float_tensor(bias_name, {shape[0]});
    bias = cut_vector(b, rows, 0, bias_name);
  }
  if (const tensor& s = src_.at(name).scales; !s.empty())
    scales = cut_vector(s, rows, 0, name + " scales");
  return prepare(name, cut(w, rows, 0, w.cols(), 0, name), bias, scales, shard_kind::COLUMN, true,
                 rows_key(source_key(name), rows));
}

linear_weight weight_binder::linear_cols(const std::string& name, const std::vector<int64_t>& shape,
                                         const std::string& bias_name, int64_t first, int64_t count) {
  if (n_ranks_ == 1) return linear(name, shape, bias_name, shard_kind::ROW);
  const tensor w = linear_matrix(name, shape);
  tensor bias;
  if (!bias_name.empty() && rank_ == 0) bias = float_tensor(bias_name, {shape[0]});
  const std::string key = source_key(name);
  return prepare(name, cut(w, {{0, w.rows()}}, first, count, 0, name), bias, src_.at(name).scales, shard_kind::ROW,
                 true, key.empty() ? key : key + " cols " + std::to_string(first) + "+" + std::to_string(count));
}

linear_weight weight_binder::linear_stacked(const std::string& name, const std::vector<stacked_part>& parts) {
  AG_CHECK(!parts.empty(), "linear_stacked: no parts");
  const bool scaled = !src_.at(parts[0].name).scales.empty();
  std::vector<tensor> ws;
  for (const stacked_part& p : parts) {
    ws.push_back(src_.get_matrix(p.name, p.shape));
    if (ws.back().type() != ws[0].type() || ws.back().cols() != ws[0].cols() ||
        src_.at(p.name).scales.empty() == scaled)
      return {};
  }
  require_kernel(op_id::LINEAR, parts[0].name, ws[0].type(), "a linear weight");
  const bool any_bias = std::any_of(parts.begin(), parts.end(), [](const stacked_part& p) { return !p.bias_name.empty(); });
  int64_t n_rows = 0;
  for (const stacked_part& p : parts)
    for (const auto& [first, count] : p.rows) n_rows += count;
  const dtype t = ws[0].type();
  tensor w = tensor::empty_host(t, {n_rows, ws[0].cols()});
  tensor bias = any_bias ? tensor::empty_host(dtype::F32, {n_rows}) : tensor();
  tensor scales = scaled ? tensor::empty_host(dtype::F32, {n_rows}) : tensor();
  const size_t row_bytes = dtype_row_bytes(t, ws[0].cols());
  int64_t o = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const stacked_part& p = parts[i];
    tensor b;
    if (!p.bias_name.empty()) b = float_tensor(p.bias_name, {p.shape[0]});
    const tensor& sc = src_.at(p.name).scales;
    for (const auto& [first, count] : p.rows) {
      AG_CHECK(first >= 0 && count >= 0 && first + count <= ws[i].rows(), "linear_stacked: row range of " + p.name);
      for (int64_t r = first; r < first + count; ++r, ++o) {
        std::memcpy(w.row(o), ws[i].row(r), row_bytes);
        if (any_bias) bias.ptr<float>()[o] = b.empty() ? 0.0f : float_at(b, r);
        if (scaled) scales.ptr<float>()[o] = sc.ptr<float>()[r];
      }
    }
  }
  std::string key = "stacked";
  for (const stacked_part& p : parts) {
    const std::string part = rows_key(source_key(p.name), p.rows);
    if (part.empty()) {
      key.clear();
      break;
    }
    key.append(" [").append(part).append("]");
  }
  return prepare(name, w, bias, scales, shard_kind::COLUMN, true, key);
}

linear_weight weight_binder::linear_vocab(const std::string& name, const std::vector<int64_t>& shape) {
  if (n_ranks_ == 1) return linear(name, shape, "", shard_kind::VOCAB);
  const tensor w = linear_matrix(name, shape);
  const int64_t V = w.rows(), share = (V + n_ranks_ - 1) / n_ranks_;
  const int64_t first = std::min(V, share * rank_), count = std::min(share, V - first);
  tensor scales;
  if (const tensor& s = src_.at(name).scales; !s.empty())
    scales = cut_vector(s, {{first, count}}, share - count, name + " scales");
  const std::string key = rows_key(source_key(name), {{first, count}});
  return prepare(name, cut(w, {{first, count}}, 0, w.cols(), share - count, name), {}, scales, shard_kind::VOCAB,
                 true, key.empty() ? key : key + " padded by " + std::to_string(share - count));
}

tensor weight_binder::param(const std::string& name, const std::vector<int64_t>& shape) {
  return ops::prepare_param_f32(ctx_, float_tensor(name, shape));
}

tensor weight_binder::table(const std::string& name, const std::vector<int64_t>& shape, op_id op) {
  const tensor t = src_.get(name, shape);
  require_kernel(op, name, t.type(), "a table");
  return ops::prepare_weight(ctx_, t);
}

const tensor& weight_binder::float_tensor(const std::string& name, const std::vector<int64_t>& shape) {
  held_ = src_.get(name, shape);
  if (!dtype_info(held_.type()).is_float)
    throw error(src_.at(name).file + ": tensor '" + name + "' has dtype " + dtype_name(held_.type()) +
                "; norm weights, biases and tables must be F32, F16 or BF16");
  return held_;
}

void weight_binder::require_kernel(op_id op, const std::string& name, dtype type, const char* role) const {
  const device dev = ctx_.dev();
  if (!kernel_registry::instance().has(op, dev.kind, type))
    throw error(src_.at(name).file + ": tensor '" + name + "' has dtype " + dtype_name(type) + ", which the " +
                dev.str() + " backend cannot run as " + role + " (no " + op_name(op) + " kernel for " +
                dtype_name(type) + " on " + dev.str() + ")");
}

}  // namespace autoglm

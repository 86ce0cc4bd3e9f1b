// model/whisper/encoder.cpp: the encoder forward pass over ops (see encoder.h).
#include "model/whisper/encoder.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "ops/ops.h"

namespace autoglm::whisper {

tensor encoder::encode(exec_context& ctx, const float* features) const {
  const int64_t N = cfg_.num_mel_bins, F = cfg_.n_frames(), S = cfg_.max_source_positions, D = cfg_.d_model;
  const int64_t FF = cfg_.encoder_ffn_dim;
  const int32_t heads = cfg_.encoder_heads, hd = cfg_.encoder_head_dim();
  const float eps = cfg_.layer_norm_eps;
  ctx.arena().reset();

  // Mel bins as rows on the host; the convolutions want time-major rows: a transposing copy on the device.
  const tensor mel = ops::to_device(ctx, tensor::view(features, dtype::F32, {N, F}));
  const tensor mel_t = tensor::strided(mel.data(), dtype::F32, {F, N}, {int64_t(sizeof(float)), F * int64_t(sizeof(float))},
                                       ctx.dev());
  tensor frames = ops::scratch(ctx, dtype::F32, {F, N});  // [F, N]
  ops::copy(ctx, mel_t, frames);

  // conv1: kernel 3, padding 1, stride 1 -> [F, D]; conv2: stride 2 -> [S, D]; GELU after each.
  tensor taps1 = ops::scratch(ctx, dtype::F32, {F, 3 * N});
  ops::im2col_1d(ctx, frames, 3, 1, 1, taps1);
  tensor h1 = ops::scratch(ctx, dtype::F32, {F, D});
  ops::linear(ctx, taps1, w_.conv1, h1);
  ops::gelu(ctx, h1);
  ops::dump(ctx, "encoder.conv1", h1);
  AG_CHECK(ops::conv1d_out_len(F, 3, 2, 1) == S, "encoder: the stride-2 convolution must give max_source_positions");
  tensor taps2 = ops::scratch(ctx, dtype::F32, {S, 3 * D});
  ops::im2col_1d(ctx, h1, 3, 2, 1, taps2);
  tensor x = ops::scratch(ctx, dtype::F32, {S, D});  // the residual stream
  ops::linear(ctx, taps2, w_.conv2, x);
  ops::gelu(ctx, x);
  ops::add(ctx, x, w_.embed_positions);
  ops::dump(ctx, "encoder.embeddings", x);

  tensor h = ops::scratch(ctx, dtype::F32, {S, D});
  tensor q = ops::scratch(ctx, dtype::F32, {S, D}), k = ops::scratch(ctx, dtype::F32, {S, D}),
         v = ops::scratch(ctx, dtype::F32, {S, D});
  tensor ffn = ops::scratch(ctx, dtype::F32, {S, FF});
  int32_t seg_host[2] = {0, int32_t(S)};
  const tensor segments = ops::to_device(ctx, tensor::view(seg_host, dtype::I32, {2}));
  const float scale = 1.0f / std::sqrt(float(hd));
  for (size_t il = 0; il < w_.layers.size(); ++il) {
    const encoder_layer_weights& L = w_.layers[il];
    ops::layer_norm(ctx, x, L.self_attn.norm_w, L.self_attn.norm_b, eps, h);
    ops::linear(ctx, h, L.self_attn.q_proj, q);
    ops::linear(ctx, h, L.self_attn.k_proj, k);
    ops::linear(ctx, h, L.self_attn.v_proj, v);
    ops::attention_dense(ctx, q, k, v, heads, hd, segments, scale, h);
    ops::linear(ctx, h, L.self_attn.out_proj, q);  // q's buffer reused for the projection
    ops::add(ctx, x, q);
    ops::layer_norm(ctx, x, L.ffn.norm_w, L.ffn.norm_b, eps, h);
    ops::linear(ctx, h, L.ffn.fc1, ffn);
    ops::gelu(ctx, ffn);
    ops::linear(ctx, ffn, L.ffn.fc2, h);
    ops::add(ctx, x, h);
    if (ctx.dump()) ops::dump(ctx, "encoder.layers." + std::to_string(il), x);
  }
  tensor out = ops::alloc_persistent(ctx, dtype::F32, {S, D});
  ops::layer_norm(ctx, x, w_.norm_w, w_.norm_b, eps, out);
  ops::dump(ctx, "encoder.out", out);
  return out;
}

}  // namespace autoglm::whisper

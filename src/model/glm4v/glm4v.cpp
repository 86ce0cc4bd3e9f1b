// model/glm4v/glm4v.cpp: see glm4v.h.
#include "model/glm4v/glm4v.h"

#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "formats/gguf_glm4v.h"
#include "formats/quantized_source.h"
#include "formats/safetensors.h"
#include "model/glm4v/rope_index.h"

namespace autoglm::glm4v {

namespace {

model_info make_info(const config& cfg) {
  model_info info;
  info.architecture = cfg.architecture;
  info.vocab_size = cfg.text.vocab_size;
  info.hidden_size = cfg.text.hidden_size;
  info.n_layers = cfg.text.n_layers;
  info.n_kv_heads = cfg.text.n_kv_heads;
  info.head_dim = cfg.text.head_dim;
  info.max_position_embeddings = cfg.text.max_position_embeddings;
  info.image_token_id = cfg.image_token_id;
  info.image_start_token_id = cfg.image_start_token_id;
  info.image_end_token_id = cfg.image_end_token_id;
  info.video_start_token_id = cfg.video_start_token_id;
  info.video_end_token_id = cfg.video_end_token_id;
  info.eos_token_ids = cfg.eos_token_ids;
  info.has_vision = cfg.vision.present;
  return info;
}

// The type each checkpoint tensor is held in under opt: for matrices what `autoglm quantize` stores in its GGUF
// file (glm4v_gguf::stored_type: the same choice, so the same bytes); 1-D tensors stay as stored, since the
// weight binding converts them to F32 as the GGUF file holds them.
quantized_source::policy quant_policy(const model_load_options& opt) {
  glm4v_gguf::write_options w;
  w.type = *opt.quant_type;
  w.keep = opt.quant_keep;
  return [w](const std::string& name, const std::vector<int64_t>& shape, dtype stored) {
    if (shape.size() <= 1) return stored;
    // I8 keeps a scale per row beside its matrix, which an embedding gather does not take: the token table stays
    // as stored unless a --keep pattern names a type for it.
    if (w.type == dtype::I8 && name == "model.language_model.embed_tokens.weight") {
      glm4v_gguf::write_options table = w;
      table.type = stored;
      return glm4v_gguf::stored_type(name, shape, table);
    }
    const dtype t = glm4v_gguf::stored_type(name, shape, w);
    // The I8 kernel quantizes activations in groups of 32 (quant_linear): other row lengths fall back to F16, as
    // any type's rows that are not whole blocks do.
    return t == dtype::I8 && shape.back() % 32 != 0 ? dtype::F16 : t;
  };
}

}  // namespace

conditional_generation::conditional_generation(const config& cfg, const tensor_source& src, exec_context& ctx,
                                               const text_shard& shard, bool fuse_qkv)
    : cfg_(cfg), info_(make_info(cfg)), text_(cfg.text, bind_text_weights(cfg, src, ctx, shard, fuse_qkv), shard) {
  if (cfg_.vision.present) vision_.emplace(cfg_.vision, bind_vision_weights(cfg_, src, ctx));
  // On the CPU the decoder reads its weights in place from the file mappings: map them in now, at load, rather than
  // one fault per 64 KiB inside the first request's prefill (3% of a 512-token 9B-dimension Q4_0 prefill on a 2-core
  // VM). Not the token table (a few rows per step) nor the vision tower (text-only use would hold it resident).
  if (ctx.dev().kind == device_kind::CPU) {
    const auto t0 = std::chrono::steady_clock::now();
    if (const size_t bytes = text_.prefault_weights())
      AG_LOG_INFO("decoder weights mapped in at load: {:.1f} MB in {:.2f} s", double(bytes) / 1e6,
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
}

std::unique_ptr<conditional_generation> conditional_generation::load(const std::string& model_dir,
                                                                     exec_context& ctx,
                                                                     const model_load_options& opt) {
  if (!opt.quant_type && !opt.quant_keep.empty())
    throw error("per-tensor quantization overrides (--quant-keep) need a quantization type (--quant)");
  const config cfg = config::load(model_dir);
  const text_shard shard = shard_text(cfg.text, opt.tp_rank, opt.tp_size);  // throws before any weight is read
  const bool fuse = opt.fuse_qkv.value_or(ctx.dev().kind != device_kind::CPU);
  // Weights in llama.cpp's GGUF layout instead of safetensors (a directory with *.gguf and no model.safetensors*):
  // the GGUF source serves the same checkpoint names and shapes (formats/gguf_glm4v.h).
  namespace fs = std::filesystem;
  if (!fs::exists(fs::path(model_dir) / "model.safetensors") &&
      !fs::exists(fs::path(model_dir) / "model.safetensors.index.json"))
    if (const std::unique_ptr<glm4v_gguf::source> gguf = glm4v_gguf::source::open_dir(model_dir)) {
      if (opt.quant_type)
        throw error(model_dir + " holds GGUF weights (" + gguf->location() +
                    "), stored in their final types already: quantizing at load (--quant) applies to Hugging Face "
                    "safetensors checkpoints. Load the GGUF files without --quant, or pass the safetensors directory");
      return std::make_unique<conditional_generation>(cfg, *gguf, ctx, shard, fuse);
    }
  // The prepared tensors keep their files mapped; the store itself is only needed while binding.
  const std::unique_ptr<tensor_store> store = tensor_store::open_dir(model_dir);
  if (!opt.quant_type) return std::make_unique<conditional_generation>(cfg, *store, ctx, shard, fuse);
  // Quantized into host memory on the context's threads; the store's views are read-only file mappings, so the
  // pages under each converted tensor can be given back.
  const auto t0 = std::chrono::steady_clock::now();
  const quantized_source q(*store, quant_policy(opt), ctx.pool(), /*release_base_pages=*/true);
  AG_LOG_INFO("quantized {} tensors to {} at load: {:.1f} MB -> {:.1f} MB in {:.2f} s", q.n_converted(),
              dtype_name(*opt.quant_type), double(q.bytes_before()) / 1e6, double(q.bytes_after()) / 1e6,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return std::make_unique<conditional_generation>(cfg, q, ctx, shard, fuse);
}

kv_layout conditional_generation::kv_shape() const {
  return {cfg_.text.n_layers, text_.shard().n_kv_heads, cfg_.text.head_dim};  // this rank's KV heads
}

tensor conditional_generation::forward_logits(exec_context& ctx, const forward_batch& batch,
                                              const std::vector<paged_kv_layer>& kv) const {
  return text_.forward(ctx, batch, kv);
}

std::unique_ptr<prepared_step> conditional_generation::prepare_step(exec_context& ctx, const forward_batch& batch,
                                                                    const std::vector<paged_kv_layer>& kv,
                                                                    int32_t context_bucket) const {
  return text_.prepare(ctx, batch, kv, context_bucket);
}

tensor conditional_generation::compute_step(exec_context& ctx, const prepared_step& step,
                                            const std::vector<paged_kv_layer>& kv) const {
  return text_.compute(ctx, step, kv);
}

tensor conditional_generation::encode_image(exec_context& ctx, const vision_input& image) const {
  if (!vision_) throw invalid_request("this model has no vision tower; images are not supported");
  return vision_->encode(ctx, image);
}

prompt_positions conditional_generation::compute_positions(const std::vector<int32_t>& prompt,
                                                           const std::vector<vision_input>& images) const {
  return compute_rope_positions(cfg_, prompt, images);
}

}  // namespace autoglm::glm4v

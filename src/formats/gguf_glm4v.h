// formats/gguf_glm4v.h: GLM-4.1V (Hugging Face Glm4vForConditionalGeneration) in llama.cpp's GGUF layout, both
// ways. Layout notes with sources: /work/notes/gguf_layout.md. In short, llama.cpp splits the model in two files:
//  - the text decoder, architecture "glm4": token_embd / blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output,
//    post_attention_norm, ffn_norm, ffn_up (the fused gate_up_proj), ffn_down, post_ffw_norm} / output_norm /
//    output, with glm4.rope.dimension_sections (M-RoPE) and the rows of attn_q / attn_k (weight and bias)
//    permuted within each head from HF's interleaved rotary pairs to NeoX halves, because ggml's M-RoPE only
//    rotates NeoX-style: new row j = old row 2j and new row rot/2 + j = old row 2j + 1 for j < rot/2 (rot =
//    head_dim * partial_rotary_factor); rows past rot stay;
//  - the vision tower + merger ("mmproj"), architecture "clip" with clip.projector_type "glm4v": v.* and mm.*,
//    the Conv3d patch embedding split into its two temporal frames (v.patch_embd.weight and .weight.1).
// The writer follows convert_hf_to_gguf.py (1-D tensors, norms and the convolutions in F32, the token list
// padded to vocab_size with [PADn], gpt2 BPE tokenizer with pre-tokenizer "glm4"); the reader is a
// tensor_source that serves the HF checkpoint names and shapes back, undoing the permutation and the split.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "formats/gguf.h"
#include "formats/tensor_source.h"

namespace autoglm {

class thread_pool;

namespace glm4v_gguf {

// HF checkpoint name <-> llama.cpp name. Text: "model.language_model.layers.3.mlp.down_proj.weight" <->
// "blk.3.ffn_down.weight", "lm_head.weight" <-> "output.weight". Vision: "model.visual.blocks.0.attn.qkv.weight"
// <-> "v.blk.0.attn_qkv.weight", ... (the patch embedding's weight is two GGUF tensors: not mapped here).
// Each returns "" for a name that is not part of that file.
std::string text_to_gguf(const std::string& hf);
std::string text_from_gguf(const std::string& gguf);
std::string vision_to_gguf(const std::string& hf);
std::string vision_from_gguf(const std::string& gguf);

// Reorders the rows of a q or k projection (weight rows or bias elements) of n_heads heads of head_dim rows, each
// row row_bytes long: to_neox = HF -> llama.cpp, else the inverse. src and dst must not overlap.
void permute_qk_rows(const uint8_t* src, uint8_t* dst, int64_t n_heads, int64_t head_dim, int64_t rot_dim,
                     size_t row_bytes, bool to_neox);

struct write_options {
  dtype type = dtype::F16;  // matrices; 1-D tensors are always F32
  // Overrides, first match wins: a pattern is matched against the HF name, '*' matching any run of characters
  // ("*embed_tokens*", "*.layers.0.*"); e.g. {"*embed_tokens*", F16} keeps the embedding in F16.
  std::vector<std::pair<std::string, dtype>> keep;
  std::string name;            // general.name (default: the directory's name)
  // Where tokenizer.json (and the chat template) come from; default: the model directory. Random-weight
  // checkpoints (`autoglm random-model`) have none, and llama.cpp needs a vocabulary to load a model.
  std::string tokenizer_dir;
  thread_pool* pool = nullptr;  // quantization threads
};

// One line per tensor written ("blk.0.attn_q.weight BF16 [128, 128] -> Q8_0"), for the CLI's log.
using write_log = std::function<void(const std::string&)>;

// Writes the text decoder of the HF directory `hf_dir` as llama.cpp's "glm4" GGUF; returns the bytes written.
uint64_t write_text(const std::string& hf_dir, const std::string& out_path, const write_options& opt,
                    const write_log& log = {});
// Writes the vision tower and merger as llama.cpp's mmproj GGUF (clip, projector glm4v).
uint64_t write_mmproj(const std::string& hf_dir, const std::string& out_path, const write_options& opt,
                      const write_log& log = {});

// The type a tensor of HF name `hf` and shape `shape` is stored as under `opt` (F32 for 1-D tensors and the
// convolutions; --keep overrides; a row that is not whole blocks of the type falls back as quant::fallback_type).
dtype stored_type(const std::string& hf, const std::vector<int64_t>& shape, const write_options& opt);

// The GGUF files of one model as a tensor_source with HF names and shapes: the text file and, when given, the
// mmproj file. attn_q / attn_k come back in HF row order (owned copies; every other tensor is a view of the
// mapping), the patch embedding as one Conv3d kernel [out, in, 2, p, p] (an owned copy).
class source : public tensor_source {
 public:
  static std::unique_ptr<source> open(const std::string& text_path, const std::string& mmproj_path = "");
  // The GGUF weights of a model directory: its *.gguf files, one text model and at most one mmproj (told apart
  // by general.architecture, so llama.cpp's file names work as they come). nullptr when DIR has no .gguf file;
  // throws when it has two text models or two mmproj files.
  static std::unique_ptr<source> open_dir(const std::string& dir);

  const std::string& location() const override { return location_; }
  const entry* find(const std::string& name) const override;
  std::vector<std::string> names() const override;
  void release(const std::string& name) const override;

  // config.json as Hugging Face writes it for this model, rebuilt from the metadata (text_config always,
  // vision_config when the mmproj file is open; special token ids looked up in the token list).
  const nlohmann::json& hf_config() const { return config_; }
  const gguf_file& text_file() const { return *text_; }
  const gguf_file* mmproj_file() const { return mmproj_.get(); }

 private:
  std::string location_;
  std::unique_ptr<gguf_file> text_, mmproj_;
  mutable std::map<std::string, entry> entries_;  // release() empties private copies
  nlohmann::json config_;
  static std::unique_ptr<source> from_files(std::unique_ptr<gguf_file> text, std::unique_ptr<gguf_file> mmproj);
  void load_text();
  void load_vision();
};

}  // namespace glm4v_gguf
}  // namespace autoglm

#!/usr/bin/env python3
"""tests/fuzz/make_gguf_seeds.py: writes the seed corpus of the gguf target, tests/fuzz/corpus/gguf/ (committed;
rerun after changing this file). Small valid GGUF files that reach every branch of the reader and of the GLM-4.1V
source: every metadata type (nested arrays too), block types, a custom alignment, a tiny "glm4" text model whose
q/k tensors take the M-RoPE permutation path, and a tiny "glm4v" mmproj with the split patch embedding. Standard
library only; the layout is the GGUF v3 spec (see /work/notes/gguf_layout.md)."""
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus", "gguf")

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?", U64: "<Q",
          I64: "<q", F64: "<d"}
# ggml type id -> (block elements, block bytes)
GGML = {0: (1, 4), 1: (1, 2), 2: (32, 18), 8: (32, 34), 12: (256, 144), 13: (256, 176), 14: (256, 210),
        24: (1, 1), 30: (1, 2), 6: (32, 22)}


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def value(t, v):
    """Encodes a value of type t (for ARRAY, v = (element type, [items]))."""
    if t == STRING:
        return gstr(v)
    if t == ARRAY:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(value(et, x) for x in items)
    return struct.pack(SCALAR[t], v)


def gguf(kv, tensors, alignment=32):
    """kv: [(key, type, value)]; tensors: [(name, ggml type, ne innermost first, bytes)]."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for key, t, v in kv:
        out += gstr(key) + struct.pack("<I", t) + value(t, v)
    offset, blobs = 0, []
    for name, ty, ne, data in tensors:
        elems, nbytes = GGML[ty]
        n = 1
        for d in ne:
            n *= d
        assert len(data) == n // elems * nbytes, name
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        out += struct.pack("<IQ", ty, offset)
        blobs.append(data)
        offset += (len(data) + alignment - 1) // alignment * alignment
    out += b"\0" * (-len(out) % alignment)
    for b in blobs:
        out += b + b"\0" * (-len(b) % alignment)
    return out


def f32s(n, scale=0.25):
    return struct.pack("<%df" % n, *[((i * 7) % 13 - 6) * scale for i in range(n)])


def write(name, data):
    os.makedirs(CORPUS, exist_ok=True)
    with open(os.path.join(CORPUS, name), "wb") as f:
        f.write(data)


def main():
    write("empty", gguf([], []))
    write("all_value_types", gguf([
        ("general.architecture", STRING, "llama"), ("a.u8", U8, 7), ("a.i8", I8, -7), ("a.u16", U16, 600),
        ("a.i16", I16, -600), ("a.u32", U32, 70000), ("a.i32", I32, -70000), ("a.f32", F32, 0.5), ("a.bool", BOOL, True),
        ("a.u64", U64, 1 << 40), ("a.i64", I64, -(1 << 40)), ("a.f64", F64, 2.5), ("a.str", STRING, "hé"),
        ("a.ints", ARRAY, (I32, [2, 3, 3, 0])), ("a.strs", ARRAY, (STRING, ["a", "Ġb", ""])),
        ("a.bools", ARRAY, (BOOL, [True, False])), ("a.floats", ARRAY, (F32, [0.5, 1.0])),
        ("a.nested", ARRAY, (ARRAY, [(U8, [1, 2]), (STRING, ["x"])])),
    ], [("f32", 0, [3, 2], f32s(6)), ("q8_0", 8, [32, 1], b"\x00\x3c" + bytes(range(32))),
        ("bf16", 30, [2], b"\x80\x3f\x00\x40")]))
    write("block_types", gguf([], [
        ("q4_0", 2, [32], bytes(18)), ("q4_k", 12, [256], bytes(144)), ("q5_k", 13, [256], bytes(176)),
        ("q6_k", 14, [256], bytes(210)), ("f16", 1, [4, 1, 1, 2], bytes(16)), ("i8", 24, [5], bytes(5)),
        ("q5_0", 6, [32], bytes(22)), ("empty", 0, [0, 3], b"")]))
    write("alignment_8", gguf([("general.alignment", U32, 8)], [("a", 24, [3], b"abc"), ("b", 24, [9], b"defghijkl")],
                              alignment=8))
    # A tiny GLM-4.1V text model: head_dim 4, rotary 4, M-RoPE sections [1, 1, 0, 0] (the permutation path).
    hidden, heads, kv_heads, vocab = 8, 2, 1, 6
    tokens = ["a", "b", "<|endoftext|>", "<|image|>", "<|begin_of_image|>", "<|end_of_image|>"]
    text_kv = [("general.architecture", STRING, "glm4"), ("glm4.block_count", U32, 1), ("glm4.context_length", U32, 64),
               ("glm4.embedding_length", U32, hidden), ("glm4.feed_forward_length", U32, 4),
               ("glm4.attention.head_count", U32, heads), ("glm4.attention.head_count_kv", U32, kv_heads),
               ("glm4.rope.dimension_sections", ARRAY, (I32, [1, 1, 0, 0])), ("glm4.rope.freq_base", F32, 10000.0),
               ("glm4.attention.layer_norm_rms_epsilon", F32, 1e-5), ("glm4.rope.dimension_count", U32, 4),
               ("tokenizer.ggml.model", STRING, "gpt2"), ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
               ("tokenizer.ggml.eos_token_id", U32, 2)]
    write("glm4_text", gguf(text_kv, [
        ("token_embd.weight", 0, [hidden, vocab], f32s(hidden * vocab)),
        ("blk.0.attn_norm.weight", 0, [hidden], f32s(hidden)),
        ("blk.0.attn_q.weight", 0, [hidden, heads * 4], f32s(hidden * heads * 4)),
        ("blk.0.attn_q.bias", 0, [heads * 4], f32s(heads * 4)),
        ("blk.0.attn_k.weight", 8, [32, kv_heads * 4], (b"\x00\x3c" + bytes(32)) * 4),
        ("blk.0.attn_k.bias", 0, [kv_heads * 4], f32s(kv_heads * 4)),
        ("blk.0.ffn_up.weight", 1, [hidden, 8], bytes(2 * hidden * 8)),
        ("output.weight", 0, [hidden, vocab], f32s(hidden * vocab))]))
    # A tiny GLM-4.1V mmproj: patch 2, 1 input channel, 2 output channels, the Conv3d split in two frames.
    write("glm4v_mmproj", gguf([
        ("general.architecture", STRING, "clip"), ("clip.projector_type", STRING, "glm4v"),
        ("clip.has_vision_encoder", BOOL, True), ("clip.use_silu", BOOL, True),
        ("clip.vision.block_count", U32, 1), ("clip.vision.embedding_length", U32, 2),
        ("clip.vision.feed_forward_length", U32, 4), ("clip.vision.projection_dim", U32, 8),
        ("clip.vision.attention.head_count", U32, 1), ("clip.vision.image_size", U32, 4),
        ("clip.vision.patch_size", U32, 2), ("clip.vision.image_mean", ARRAY, (F32, [0.5])),
        ("clip.vision.image_std", ARRAY, (F32, [0.25])), ("clip.vision.attention.layer_norm_epsilon", F32, 1e-5),
    ], [("v.patch_embd.weight", 0, [2, 2, 1, 2], f32s(8)), ("v.patch_embd.weight.1", 0, [2, 2, 1, 2], f32s(8, 0.5)),
        ("v.patch_embd.bias", 0, [2], f32s(2)), ("v.blk.0.attn_qkv.weight", 0, [2, 6], f32s(12)),
        ("mm.patch_merger.weight", 0, [2, 2, 2, 8], f32s(64))]))


if __name__ == "__main__":
    main()

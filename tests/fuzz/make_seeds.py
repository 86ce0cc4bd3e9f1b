#!/usr/bin/env python3
"""tests/fuzz/make_seeds.py: writes the seed corpora of tests/fuzz/corpus/<target>/ (committed; rerun after
changing this file). Seeds are small, valid (or nearly valid) inputs that reach deep into each parser: libFuzzer
mutates from them. Standard library only. Images come from tests/fixtures (the smaller ones) plus a few encoded
here (interlaced, 16-bit, palette PNGs); two-part inputs use the separator of tests/fuzz/fuzz_common.h."""
import base64
import json
import os
import shutil
import struct
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
SEP = "\n%%%%\n"


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------------------- safetensors
def safetensors(tensors, metadata=None, pad=0):
    """tensors: list of (name, dtype, shape, bytes). Offsets follow the list order."""
    header, off, blob = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dt, shape, data in tensors:
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data)
        blob += data
    h = json.dumps(header, separators=(",", ":")).encode() + b" " * pad
    return struct.pack("<Q", len(h)) + h + blob


def safetensors_seeds():
    f32 = struct.pack("<6f", *range(6))
    write("safetensors", "two_tensors", safetensors([("a.weight", "F32", [2, 3], f32), ("b", "BF16", [2], b"\x80\x3f\x00\x40")],
                                                    {"format": "pt"}))
    write("safetensors", "all_dtypes", safetensors([
        ("f16", "F16", [1], b"\x00\x3c"), ("i32", "I32", [1], b"\x01\x00\x00\x00"), ("i64", "I64", [1], b"\x02" + b"\x00" * 7),
        ("u8", "U8", [3], b"\x01\x02\x03"), ("i8", "I8", [1, 1], b"\xff")]))
    write("safetensors", "scalar_and_empty", safetensors([("s", "F32", [], b"\x00\x00\x80\x3f"), ("e", "F32", [0, 4], b"")]))
    write("safetensors", "padded_header", safetensors([("x", "U8", [4], b"abcd")], pad=7))
    write("safetensors", "empty_header", struct.pack("<Q", 2) + b"{}")
    # Offsets out of the list order (the data section must still be tiled exactly).
    h = json.dumps({"late": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]},
                    "early": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}).encode()
    write("safetensors", "out_of_order", struct.pack("<Q", len(h)) + h + b"wxyz")


# ---------------------------------------------------------------------------------------------- tokenizer
BYTES_TO_UNICODE = None


def byte_level_alphabet():
    """GPT-2's bytes -> printable characters table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def byte_level_tokenizer():
    alpha = byte_level_alphabet()
    vocab = {alpha[b]: b for b in range(256)}
    merges = []
    pairs = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("Ġ", "w"), ("o", "r"), ("Ġw", "or"), ("l", "d"),
             ("Ġwor", "ld"), ("i", "n"), ("Ġ", "in"), ("e", "r"), ("in", "g"), ("ä", "½"), ("Ġ", "Ġ")]
    for a, b in pairs:
        vocab.setdefault(a + b, len(vocab))
        merges.append(a + " " + b)
    added = [{"id": len(vocab) + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, c in enumerate(["<|endoftext|>", "[gMASK]", "<sop>", "<|user|>"])]
    added.append({"id": len(vocab) + 4, "content": "<tool>", "single_word": True, "lstrip": True, "rstrip": True,
                  "normalized": True, "special": False})
    return {
        "version": "1.0", "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
             "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "[gMASK]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"[gMASK]": {"id": "[gMASK]", "ids": [added[1]["id"]], "tokens": ["[gMASK]"]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def sentencepiece_tokenizer():
    """Llama/Gemma style: Metaspace-like normalizer, byte fallback, a decoder chain with Strip."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for piece in ["▁", "▁h", "▁he", "▁hel", "▁hell", "▁hello", "l", "o", "e", "h", "w", "r", "d", "▁w", "▁▁", "你", "好"]:
        vocab.setdefault(piece, len(vocab))
    merges = [["▁", "h"], ["▁h", "e"], ["▁he", "l"], ["▁hel", "l"], ["▁hell", "o"], ["▁", "w"], ["▁", "▁"]]
    return {
        "version": "1.0",
        "added_tokens": [{"id": 0, "content": "<unk>", "special": True}, {"id": 1, "content": "<s>", "special": True},
                         {"id": 2, "content": "</s>", "special": True}],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                           {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                                                    {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "byte_fallback": True, "fuse_unk": True,
                  "vocab": vocab, "merges": merges},
    }


def metaspace_tokenizer():
    """Metaspace pre-tokenizer + decoder, NFKC + Lowercase normalizers, Digits split, Bert post-processor."""
    vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "▁": 3, "a": 4, "b": 5, "1": 6, "2": 7, "▁a": 8, "ab": 9, "▁ab": 10}
    for c in "helowrdxz<>t你好|us":
        vocab.setdefault(c, len(vocab))
    return {
        "added_tokens": [{"id": 1, "content": "[CLS]", "special": True}, {"id": 2, "content": "[SEP]", "special": True}],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip", "left": True, "right": True}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, {"type": "WhitespaceSplit"},
            {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}]},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
        "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
        "model": {"type": "BPE", "unk_token": "[UNK]", "vocab": vocab, "merges": ["▁ a", "a b", "▁a b"]},
    }


def tokenizer_seeds():
    texts = {
        "text_english": "Hello world! It's 2024; the agent taps (x=540, y=1200).\n\nDone.",
        "text_chinese": "你好，世界！打开设置，然后点击“蓝牙”。",
        "text_special": "[gMASK]<sop><|system|>\nYou are an agent.<|user|>\nhi<|assistant|>\n<think></think>\n",
        "text_code": "def f(x):\n\treturn x ** 2  # square\n\n\n    \r\n",
        "text_emoji": "👍🏽 café naïve Ω≈ç√ ｆｕｌｌｗｉｄｔｈ 123456789",
        "text_spaces": "   a  b\t\tc\n \n  ",
    }
    for name, t in texts.items():
        write("tokenizer", name, t)
    for name, tok in [("json_byte_level", byte_level_tokenizer()), ("json_sentencepiece", sentencepiece_tokenizer()),
                      ("json_metaspace", metaspace_tokenizer())]:
        write("tokenizer", name, json.dumps(tok, ensure_ascii=False) + SEP + "hello world <|user|>你好 12 ab AB ▁x <tool> z")


# ---------------------------------------------------------------------------------------------- jinja
CHAT_CONTEXT = {
    "messages": [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image"}]},
        {"role": "assistant", "content": "<think>x</think>ok",
         "tool_calls": [{"type": "function", "function": {"name": "tap", "arguments": {"x": 1}}}]},
        {"role": "tool", "content": "done"},
        {"role": "user", "content": "again"},
    ],
    "tools": [{"type": "function", "function": {"name": "tap", "description": "d",
                                                "parameters": {"type": "object", "properties": {"x": {"type": "integer"}},
                                                               "required": ["x"]}}}],
    "add_generation_prompt": True, "enable_thinking": False, "bos_token": "<s>",
}

JINJA_SNIPPETS = {
    "loops": "{% for m in messages %}{{ loop.index }}/{{ loop.length }}{{ m.role }}{% if not loop.last %},{% endif %}"
             "{% else %}none{% endfor %}{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}"
             "{% for i in range(3) if i != 1 %}{{ i }}{{ loop.previtem | default('-') }}{% endfor %}",
    "macros": "{% macro m(a, b='x', *args) %}[{{ a }}{{ b }}{{ caller() if caller is defined }}]{% endmacro %}"
              "{{ m(1) }}{{ m(2, b=3) }}{% call m(4) %}inner{% endcall %}",
    "filters": "{{ messages | map(attribute='role') | join('|') | upper }} {{ 'a b c' | split(' ') | reverse | list }}"
               " {{ [3, 1, 2] | sort | first }} {{ {'b': 1, 'a': 2} | dictsort }} {{ '  x ' | trim | length }}"
               " {{ 7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }} {{ -1.5 | abs | round }} {{ 'x' * 3 }} {{ tools | tojson(indent=2) }}"
               " {{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ [1, 2, 1] | unique | list }}",
    "strings": "{{ 'Hello'[1:3] }}{{ 'abc'[::-1] }}{{ 'a,b'.split(',') }}{{ 'x'.startswith('x') }}"
               "{{ 'abc'.replace('b', 'B') }}{{ '%s-%d' % ('a', 3) }}{{ 'A b'.title() }}{{ 'q' ~ 1 ~ none }}"
               "{{ 'line1\\nline2'.splitlines() }}{{ ' pad '.strip() }}{{ 'abc'.find('c') }}",
    "namespace_set": "{% set ns = namespace(n=0, items=[]) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
                     "{% set _ = ns.items.append(m.role) %}{% endfor %}{{ ns.n }}{{ ns.items }}"
                     "{% set block_var %}captured {{ ns.n }}{% endset %}{{ block_var | trim }}",
    "tests_and_if": "{% if messages is defined and messages is iterable and messages[0] is mapping %}y{% elif x %}z"
                    "{% else %}n{% endif %}{{ 1 if none is none else 2 }}{{ 4 is even }}{{ 'a' in 'abc' }}"
                    "{{ x is undefined }}{{ 3 is divisibleby(3) }}{{ [] is sequence }}{{ 1 is number }}",
    "whitespace_raw": "{%- if true -%}\n  trimmed  \n{%- endif %}\n{# comment #}\n{% raw %}{{ not parsed }}{% endraw %}\n"
                      "  {%+ if true %}kept{% endif %}",
    "dicts": "{% set d = {'a': 1, 'b': [1, 2, {'c': none}]} %}{{ d.a }}{{ d['b'][2].c }}{{ d.items() | list }}"
             "{{ d.keys() | list }}{{ d.get('z', 'dflt') }}{% for k, v in d | items %}{{ k }}={{ v }};{% endfor %}",
    "errors": "{% if messages | length > 100 %}{{ raise_exception('too many messages') }}{% endif %}ok",
    "recursion": "{% macro r(n) %}{% if n > 0 %}({{ r(n - 1) }}){% endif %}{% endmacro %}{{ r(5) }}"
                 "{% for i in [[1, [2]], [3]] recursive %}{{ loop.depth }}{% if i is iterable %}{{ loop(i) }}{% endif %}{% endfor %}",
}


def jinja_seeds():
    ctx = json.dumps(CHAT_CONTEXT)
    for rel in ["tests/fixtures/tiny_glm4v/chat_template.jinja", "tests/template/features.jinja"]:
        with open(os.path.join(ROOT, rel)) as f:
            src = f.read()
        name = os.path.splitext(os.path.basename(rel))[0]
        write("jinja", name, src + SEP + ctx)
        write("jinja", name + "_default_context", src)
    for name, src in JINJA_SNIPPETS.items():
        write("jinja", name, src + SEP + ctx)
    # Escapes and numeric edge cases the lexer and builtins must refuse cleanly.
    write("jinja", "hex_escape_negative", '{{ "\\x-1" }}')
    write("jinja", "unicode_escape_out_of_range", '{{ "\\U7fffffff" }}')
    write("jinja", "map_attribute_index_overflow", "{{ messages|map(attribute='99999999999999999999')|list }}")
    write("jinja", "context_only", "{{ a.b[0] }}{{ c | tojson }}" + SEP + '{"a": {"b": ["\\u00e9"]}, "c": [1.5, -2, true, null]}')


# ---------------------------------------------------------------------------------------------- requests
PNG_1X1 = None  # filled by image_seeds


def request_seeds():
    data_uri = "data:image/png;base64," + base64.b64encode(PNG_1X1).decode()
    reqs = {
        "chat_simple": {"model": "autoglm", "messages": [{"role": "user", "content": "hi"}]},
        "chat_full": {"model": "autoglm", "messages": CHAT_CONTEXT["messages"][:1] + [
            {"role": "user", "content": [{"type": "text", "text": "what is on screen?"},
                                         {"type": "image_url", "image_url": {"url": data_uri, "detail": "high"}}]}],
                      "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 64, "temperature": 0.7,
                      "top_p": 0.9, "top_k": 20, "min_p": 0.05, "repetition_penalty": 1.1, "frequency_penalty": 0.5,
                      "presence_penalty": -0.5, "seed": 42, "stop": ["</answer>", "\n\n"], "stop_token_ids": [1, 2],
                      "logprobs": True, "top_logprobs": 5, "n": 2, "user": "u1", "skip_special_tokens": False},
        "chat_tools": {"messages": CHAT_CONTEXT["messages"], "tools": CHAT_CONTEXT["tools"], "tool_choice": "auto",
                       "parallel_tool_calls": False, "chat_template_kwargs": {"enable_thinking": False, "extra": [1]},
                       "response_format": {"type": "json_object"}, "logit_bias": {"17": -100},
                       "max_completion_tokens": 10},
        "chat_guide_image": {"messages": [{"role": "user", "content": "tap"}], "image": data_uri, "query": "where?",
                             "return_reasoning": True, "enable_thinking": True},
        "completion_text": {"model": "autoglm", "prompt": "Once upon a time", "max_tokens": 16, "echo": True,
                            "logprobs": 2, "stop": "\n"},
        "completion_tokens": {"prompt": [[1, 2, 3], [4, 5]], "n": 3, "ignore_eos": True},
        "completion_batch": {"prompt": ["a", "b"], "temperature": 0, "seed": 18446744073709551615},
        "tokenize_prompt": {"model": "autoglm", "prompt": "hello", "add_special_tokens": False},
        "tokenize_messages": {"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": False,
                              "tools": CHAT_CONTEXT["tools"]},
        "detokenize": {"model": "autoglm", "tokens": [1, 2, 3, 2147483647]},
    }
    for name, body in reqs.items():
        write("request", name, json.dumps(body, ensure_ascii=False))
    write("request", "numbers_edge", '{"messages":[{"role":"user","content":"\\ud83d\\ude00"}],"n":1.0,"max_tokens":3.0,'
                                     '"temperature":2e0,"top_k":-1,"seed":-1,"x":1e308,"y":-0.0}')


# ---------------------------------------------------------------------------------------------- images
def png(width, height, color_type, bit_depth, rows, interlace=0, extra_chunks=()):
    """rows: raw scanline bytes without filter bytes (non-interlaced) or the already filtered stream (interlaced)."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    raw = rows if interlace else b"".join(b"\x00" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for tag, data in extra_chunks:
        out += chunk(tag, data)
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def adam7(width, height, bpp, pixel):
    """Filtered (filter 0) interlaced stream for a generated image; pixel(x, y) -> bytes."""
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    out = b""
    for x0, y0, dx, dy in passes:
        xs = list(range(x0, width, dx))
        if not xs:
            continue
        for y in range(y0, height, dy):
            out += b"\x00" + b"".join(pixel(x, y) for x in xs)
    return out


def image_seeds():
    global PNG_1X1
    src = os.path.join(ROOT, "tests", "fixtures", "images_ref", "images")
    for name in ["one_1x1.png", "tiny_20x30.png", "palette_trns_64x48.png", "la_60x45.png", "gray16_50x40.png",
                 "jpeg_gray_q85_96x64.jpg", "webp_lossy_160x90.webp", "palette_150x99.png", "odd_100x37.png",
                 "webp_rgba_lossless_70x50.webp", "jpeg_q90_200x150.jpg"]:
        shutil.copy(os.path.join(src, name), os.path.join(CORPUS, "image", name))
    with open(os.path.join(src, "one_1x1.png"), "rb") as f:
        PNG_1X1 = f.read()
    write("image", "rgba16_interlaced_9x7.png",
          png(9, 7, 6, 16, adam7(9, 7, 8, lambda x, y: struct.pack(">HHHH", x * 7000, y * 9000, 30000, (x + y) * 4000)), interlace=1))
    write("image", "gray2_17x3.png", png(17, 3, 0, 2, [bytes([0b00011011] * 5)] * 3))
    write("image", "palette4_trns_5x5.png", png(5, 5, 3, 4, [bytes([0x01, 0x23, 0x40])] * 5,
                                                extra_chunks=[(b"PLTE", bytes(range(15))), (b"tRNS", b"\x00\x80")]))
    write("image", "rgb_gamma_4x2.png", png(4, 2, 2, 8, [bytes(range(12)), bytes(range(100, 112))],
                                            extra_chunks=[(b"gAMA", struct.pack(">I", 45455)), (b"sBIT", b"\x08\x08\x08")]))
    # 8-bit RGBA with every filter type (media/png_fast.cpp's path; the rows' filter bytes cycle 0-4).
    rows = [bytes((x * 37 + y * 11 + c * 5) & 0xff for x in range(8) for c in range(4)) for y in range(5)]
    filtered = b"".join(bytes([y % 5]) + r for y, r in enumerate(rows))
    ihdr = struct.pack(">IIBBBBB", 8, 5, 8, 6, 0, 0, 0)
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff)
    write("image", "rgba8_filters_8x5.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
          chunk(b"IDAT", zlib.compress(filtered)) + chunk(b"IEND", b""))
    write("image", "data_uri_png", "data:image/png;base64," + base64.b64encode(PNG_1X1).decode())
    write("image", "data_uri_params", "data:image/png;name=x.png;base64," + base64.urlsafe_b64encode(PNG_1X1).decode().rstrip("="))
    write("image", "gif_header", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
    write("image", "bmp_header", b"BM" + b"\x00" * 52)


# ---------------------------------------------------------------------------------------------- http
def http_seeds():
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})
    reqs = {
        "post_content_length": "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                               "Authorization: Bearer sk-test\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
        "post_chunked_trailer": "POST /v1/completions HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                                "Trailer: X-Check\r\n\r\n5\r\n{\"a\":\r\n3;ext=1\r\n1}\n\r\n0\r\nX-Check: 1\r\n\r\n",
        "get_health_pipelined": "GET /health HTTP/1.1\r\nHost: a\r\n\r\nHEAD /v1/models HTTP/1.1\r\nHost: a\r\n"
                                "Connection: close\r\n\r\n",
        "http10_keepalive": "GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "expect_continue": "POST /tokenize HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 17\r\n\r\n"
                           "{\"prompt\": \"hi\"}\n",
        "options_cors": "OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: a\r\nOrigin: http://x\r\n"
                        "Access-Control-Request-Method: POST\r\n\r\n",
        "te_identity": "POST /v1/completions HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\n{}",
        "folded_header": "GET / HTTP/1.1\r\nHost: a\r\nX-Long: part1\r\n part2\r\n\r\n",
    }
    for name, r in reqs.items():
        write("http", name, r)


if __name__ == "__main__":
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    os.makedirs(os.path.join(CORPUS, "image"))
    safetensors_seeds()
    tokenizer_seeds()
    jinja_seeds()
    image_seeds()
    request_seeds()
    http_seeds()
    for t in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, t))
        size = sum(os.path.getsize(os.path.join(CORPUS, t, f)) for f in files)
        print("%-12s %3d files %7d bytes" % (t, len(files), size))

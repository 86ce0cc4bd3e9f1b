#!/usr/bin/env python3
"""bench/peer/hf_cuda.py: the transformers peer of `autoglm bench --device cuda:0`, run in the same device call.

Loads a checkpoint (`autoglm random-model` writes one with the real 9B dimensions) as
Glm4vForConditionalGeneration in bf16 on cuda:0 and times, with CUDA events:
  - prefill of N random tokens (one forward pass, eager attention as shipped by default: sdpa),
  - batch-1 greedy decode per token (generate with the dynamic cache, eager), after a prefill of N tokens,
  - the vision encoder on a 1080x2400 screenshot's patch grid (random pixels; cost does not depend on values),
  - one phone-agent step (as `autoglm bench-agent`): a 1,500-token system prompt, the screenshot, 40 tokens, a
    100-token answer; transformers has no cross-request prefix cache, so every step prefills all of it,
  - with --static: decode and the agent step again with the static KV cache (generate compiles the decode step on
    its first call, which is not timed).
Writes JSON (medians and spread).
Usage: hf_cuda.py MODEL_DIR OUT.json [--contexts 512,2048] [--decode 32] [--static] [--skip-eager] [--vision-only]
"""
import argparse
import json
import statistics
import time

import torch


def timed(fn, reps, warm=1):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        out.append(a.elapsed_time(b))
    return {"median_ms": statistics.median(out), "min_ms": min(out), "max_ms": max(out), "reps": reps}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--contexts", default="512,2048")
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--static", action="store_true", help="generate with cache_implementation='static'")
    ap.add_argument("--skip-eager", action="store_true", help="only the static-cache measurements")
    ap.add_argument("--vision-only", action="store_true", help="only the vision encoder (eager)")
    ap.add_argument("--system-tokens", type=int, default=1500)
    ap.add_argument("--text-tokens", type=int, default=40)
    ap.add_argument("--answer-tokens", type=int, default=100)
    args = ap.parse_args()

    import transformers
    from transformers import Glm4vForConditionalGeneration

    t0 = time.time()
    model = Glm4vForConditionalGeneration.from_pretrained(args.model, dtype=torch.bfloat16, device_map="cuda:0")
    model.eval()
    load_s = time.time() - t0
    cfg = model.config
    vocab = cfg.text_config.vocab_size
    res = {"transformers": transformers.__version__, "torch": torch.__version__,
           "device": torch.cuda.get_device_name(0), "load_s": load_s,
           "attn_implementation": getattr(cfg, "_attn_implementation", None), "prefill": {}, "decode": {}}
    g = torch.Generator().manual_seed(0)
    gen_kw = {"cache_implementation": "static"} if args.static else {}
    res["cache"] = "static" if args.static else "dynamic"
    vc = cfg.vision_config
    p, m = vc.patch_size, vc.spatial_merge_size
    f = p * m
    h, w = round(2400 / f) * f, round(1080 / f) * f
    gh, gw = h // p, w // p
    npatch = gh * gw
    pix = torch.randn(npatch, vc.in_channels * vc.temporal_patch_size * p * p, generator=g).to("cuda:0", torch.bfloat16)
    thw = torch.tensor([[1, gh, gw]], device="cuda:0")
    with torch.inference_mode():
        for n in ([] if args.vision_only else [int(x) for x in args.contexts.split(",")]):
            ids = torch.randint(0, vocab - 64, (1, n), generator=g).cuda()
            res["prefill"][str(n)] = timed(lambda: model(input_ids=ids, use_cache=True, logits_to_keep=1), args.reps)
            # Decode: generate N prompt + D new tokens, minus the prefill, per new token.
            def gen():
                model.generate(input_ids=ids, max_new_tokens=args.decode, min_new_tokens=args.decode,
                               do_sample=False, use_cache=True, **gen_kw)
            total = timed(gen, max(1, args.reps - 1))
            per_tok = (total["median_ms"] - res["prefill"][str(n)]["median_ms"]) / args.decode
            res["decode"][str(n)] = {"generate_total": total, "ms_per_token": per_tok,
                                     "tokens_per_s": 1000.0 / per_tok if per_tok > 0 else None}
            print(n, res["prefill"][str(n)], res["decode"][str(n)], flush=True)

        if not args.skip_eager:
            visual = model.model.visual
            res["vision_1080x2400"] = {"grid": [1, gh, gw], "image_tokens": npatch // (m * m),
                                       **timed(lambda: visual(pix, grid_thw=thw), args.reps)}
            print("vision", res["vision_1080x2400"], flush=True)

        if not args.vision_only:
            # The phone-agent step: everything prefilled (no prefix cache across requests in transformers). Its
            # pixel values are made on the GPU above: the image processor's host time is not in it.
            def rand_text(k):
                return torch.randint(0, vocab - 64, (k,), generator=g).tolist()
            n_img = npatch // (m * m)
            toks = (rand_text(args.system_tokens) + [cfg.image_start_token_id] + [cfg.image_token_id] * n_img +
                    [cfg.image_end_token_id] + rand_text(args.text_tokens))
            ids = torch.tensor([toks], device="cuda:0")
            mm = (ids == cfg.image_token_id).long()
            img_kw = {"pixel_values": pix, "image_grid_thw": thw, "mm_token_type_ids": mm}
            first = timed(lambda: model(input_ids=ids, use_cache=True, logits_to_keep=1, **img_kw), args.reps)
            step = timed(lambda: model.generate(input_ids=ids, max_new_tokens=args.answer_tokens,
                                                min_new_tokens=args.answer_tokens, do_sample=False, use_cache=True,
                                                **img_kw, **gen_kw), max(1, args.reps - 1))
            res["agent_step"] = {"prompt_tokens": len(toks), "image_tokens": n_img,
                                 "answer_tokens": args.answer_tokens, "ttft": first, "total": step}
            print("agent step", res["agent_step"], flush=True)
    res["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 1e9
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""scripts/cuda_headline.py: the figures of one GPU check in a few lines (scripts/cuda_check.sh prints them last, so
a device call's output tail carries them even when its result files do not come back).

    python3 scripts/cuda_headline.py OUT_DIR

Reads what is there of OUT_DIR/{summary,model_bench,vision_bench,agent_bench,hf_peer_static,hf_vision}.json and the
failures of OUT_DIR/test_cuda.log; prints autoglm's decode / prefill / vision / agent-step figures, transformers'
beside them where it ran, the failed steps and the failing tests with their messages.
"""
import json
import os
import re
import sys


def load(out, name):
    path = os.path.join(out, name)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: cuda_headline.py OUT_DIR")
    out = sys.argv[1]
    summary = load(out, "summary.json") or {}
    failed = [k for k, v in summary.get("steps", {}).items() if v.get("status") != "pass"]
    print("headline: steps failed:", ", ".join(failed) if failed else "none")

    mb = load(out, "model_bench.json")
    hf = load(out, "hf_peer_static.json") or load(out, "hf_static.json")
    if mb:
        bw = mb.get("device_copy_bandwidth_GBps")
        floor = mb.get("decode_floor_ms_per_token")
        print(f"headline: copy {fmt(bw, 0)} GB/s, decode floor {fmt(floor, 2)} ms/token")
        for r in mb.get("results", []):
            c = str(r.get("context"))
            peer = (hf or {}).get("decode", {}).get(c, {}).get("tokens_per_s")
            peer_pf = (hf or {}).get("prefill", {}).get(c, {}).get("median_ms")
            print(f"headline: context {c}: decode {fmt(r.get('kv_cache_tokens_per_s'))} tokens/s "
                  f"(transformers {fmt(peer)}), prefill {fmt(r.get('prefill_ms'))} ms (transformers {fmt(peer_pf)})")
    vb = load(out, "vision_bench.json")
    hv = load(out, "hf_vision.json")
    if vb:
        for r in vb.get("results", []):
            peer = None
            if hv and r.get("width") == 1080 and r.get("height") == 2400:
                peer = hv.get("vision_1080x2400", {}).get("median_ms")
            print(f"headline: vision {r.get('width')}x{r.get('height')}: encode {fmt(r.get('encode_ms'))} ms, "
                  f"preprocess {fmt(r.get('preprocess_ms'))} ms (transformers encode {fmt(peer)})")
    ab = load(out, "agent_bench.json")
    if ab:
        peer = (hf or {}).get("agent_step", {})
        print(f"headline: agent step: first token {fmt(ab.get('ttft_ms'))} ms {ab.get('ttft_ms_min_max')}, total "
              f"{fmt(ab.get('total_ms'))} ms {ab.get('total_ms_min_max')} (transformers "
              f"{fmt(peer.get('ttft', {}).get('median_ms'))} / {fmt(peer.get('total', {}).get('median_ms'))})")

    # gtest failures with the lines that say why (assertion messages, exceptions).
    try:
        with open(os.path.join(out, "test_cuda.log"), errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return
    shown_to = 0  # lines before this index were printed with an earlier message
    for i, line in enumerate(lines):
        if i < shown_to:
            continue
        if "Failure" in line or re.search(r"C\+\+ exception|what\(\)|check failed", line):
            print("headline: test_cuda:", " | ".join(l.strip() for l in lines[i:i + 3])[:600])
            shown_to = i + 3
        elif line.startswith("[  FAILED  ]") and "listed below" not in line and "ms)" in line:
            print("headline: test_cuda:", line.strip())


if __name__ == "__main__":
    main()

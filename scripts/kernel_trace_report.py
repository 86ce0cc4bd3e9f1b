#!/usr/bin/env python3
"""scripts/kernel_trace_report.py: where a decode step's wall time goes, from a kernel trace written by
bench/cuda_trace (libautoglm_kernel_trace.so) around `autoglm bench --fake-context` on the GPU machine:

    kernel_trace_report.py TRACE.csv [--steps N] [--step-kernel-grid G] [--layers L]

A step ends with its lm_head GEMV: the kernel with the largest grid (or --step-kernel-grid). The last N steps
(default 8) are read. On the main stream (the one with the most kernels), each kernel's share of the step is what
it adds to the timeline: end - max(start, end of the kernel before it), so the shares and the idle gaps between
kernels add up to the step's wall time; a kernel launched as a programmatic dependent starts before the previous
one ends, so its duration overstates it and its share does not. Kernels on other streams (prefetch hints) are
listed by duration only. With --layers L, a kernel that runs k x L times per step (k > 1: o_proj and down are the
same GEMV on the same grid) is split into k rows by its order within the layer (#0, #1, ...).
"""
import argparse
import collections
import csv
import re


def short(name):
    """The kernel's name and template arguments, without return type, namespaces, casts or parameters."""
    name = re.sub(r"\(anonymous namespace\)::|autoglm::cuda::|^void ", "", name)
    name = re.sub(r"\((autoglm::)?dtype\)", "dtype", name)  # enum template arguments print as casts
    return name.split("(")[0][:70]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--step-kernel-grid", type=int, default=0)
    ap.add_argument("--layers", type=int, default=0)
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.trace)))
    for r in rows:
        r["start"], r["end"] = int(r["start_ns"]), int(r["end_ns"])
        r["grid"] = int(r["grid_x"]) * int(r["grid_y"]) * int(r["grid_z"])
        r["key"] = (short(r["name"]), r["grid_x"] + "x" + r["grid_y"] + "x" + r["grid_z"])
    rows.sort(key=lambda r: r["start"])
    main_stream = collections.Counter(r["stream"] for r in rows).most_common(1)[0][0]
    main = [r for r in rows if r["stream"] == main_stream]
    side = [r for r in rows if r["stream"] != main_stream]
    step_grid = a.step_kernel_grid or max(r["grid"] for r in main)
    ends = [i for i, r in enumerate(main) if r["grid"] == step_grid]
    if len(ends) < 2:
        raise SystemExit("kernel_trace_report: fewer than two steps in the trace")
    n = min(a.steps, len(ends) - 1)
    first = ends[-n - 1] + 1  # the kernel after the step before the last n
    last = ends[-1]
    if a.layers > 0:
        # Per step, the i-th launch of a key that runs k x layers times is instance i % k of its layer.
        launches = collections.Counter(r["key"] for r in main[first:last + 1])  # over the n steps
        seen = collections.Counter()  # this step's launches so far, per key
        for i, r in enumerate(main[first:last + 1]):
            if i > 0 and main[first + i - 1]["grid"] == step_grid:
                seen.clear()
            base = r["key"]
            k_per_layer = launches[base] // (n * a.layers)
            if k_per_layer > 1 and launches[base] == k_per_layer * a.layers * n:
                r["key"] = (f"{base[0]} #{seen[base] % k_per_layer}", base[1])
                seen[base] += 1
    share = collections.defaultdict(float)
    dur = collections.defaultdict(float)
    gap_before = collections.defaultdict(float)
    count = collections.Counter()
    prev_end = main[first - 1]["end"]
    idle = 0.0
    for r in main[first:last + 1]:
        k = r["key"]
        count[k] += 1
        dur[k] += r["end"] - r["start"]
        s = max(r["start"], prev_end)
        share[k] += max(0, r["end"] - s)
        g = max(0, r["start"] - prev_end)
        gap_before[k] += g
        idle += g
        prev_end = max(prev_end, r["end"])
    wall = main[last]["end"] - main[first - 1]["end"]
    print(f"main stream {main_stream}: {n} steps, {wall / n / 1e3:.1f} us per step "
          f"({sum(share.values()) / n / 1e3:.1f} us kernel shares + {idle / n / 1e3:.1f} us idle)")
    print(f"{'kernel':70s} {'grid':>12s} {'/step':>6s} {'mean us':>8s} {'share us/step':>14s} {'idle before':>12s}")
    for k in sorted(share, key=lambda k: -share[k]):
        print(f"{k[0]:70s} {k[1]:>12s} {count[k] / n:6.1f} {dur[k] / count[k] / 1e3:8.2f} "
              f"{share[k] / n / 1e3:14.1f} {gap_before[k] / n / 1e3:12.2f}")
    t0, t1 = main[first - 1]["end"], main[last]["end"]
    side_in = [r for r in side if t0 <= r["start"] < t1]
    if side_in:
        sd = collections.defaultdict(list)
        for r in side_in:
            sd[r["key"]].append(r["end"] - r["start"])
        print("other streams (not in the shares):")
        for k, v in sorted(sd.items(), key=lambda kv: -sum(kv[1])):
            print(f"  {k[0]:68s} {k[1]:>12s} {len(v) / n:6.1f} {sum(v) / len(v) / 1e3:8.2f}")


if __name__ == "__main__":
    main()

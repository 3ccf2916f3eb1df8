#!/usr/bin/env python3
"""Markdown tables from a criterion run of benches/alloc_free.rs.

usage: report.py [CRITERION_DIR] [BASELINE...] [--log LOG...]

CRITERION_DIR defaults to $CARGO_TARGET_DIR/criterion (or target/criterion). With no
BASELINE the latest run ("new") is read. With several (runs saved with
`-- --save-baseline NAME`), each cell is the median of the runs' medians and the table
also shows the min..max of those medians, since the two-thread cases vary with the
machine's load.

--log reads the "contended" lines the bench prints for each two-thread case (later lines
win) and adds the table of medians over the samples whose threads were hardly preempted,
with the share of preempted time over all samples.
"""

import json
import os
import statistics
import sys
from pathlib import Path

COUNTS = [2, 64, 4096, 65536]
CONTENDERS = [
    "ksalloc-magazine",
    "ksalloc",
    "ksalloc-armed",
    "model-ksalloc-magazine",
    "model-ksalloc",
    "freelist",
    "tagged-stack",
    "spinlock-list",
    "mutex-vec",
    "arrayqueue",
    "heap",
    "local-stack",
]
BREAKDOWN = [
    "tagged-stack",
    "freelist",
    "ksalloc",
    "bench-with-processor-only",
    "ksalloc-magazine",
    "ksalloc-magazine-burst4",
    "ksalloc-magazine-burst8",
    "model-with-processor-only",
    "model-ksalloc-armed",
]
# The two ksalloc paths the ratio tables put over the baselines.
SUBJECTS = ["ksalloc", "ksalloc-magazine"]
BASELINES = ["tagged-stack", "freelist", "spinlock-list", "mutex-vec", "arrayqueue", "heap", "local-stack"]


def median_ns(root, group, name, frames, baseline):
    path = root / group / name / str(frames) / baseline / "estimates.json"
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except FileNotFoundError:
        return None


def cell(root, baselines, group, name, frames):
    values = [v for b in baselines if (v := median_ns(root, group, name, frames, b)) is not None]
    if not values:
        return None, None
    return statistics.median(values), (min(values), max(values))


def fmt(ns):
    return "—" if ns is None else (f"{ns:.2f}" if ns < 10 else f"{ns:.1f}" if ns < 100 else f"{ns:.0f}")


def fmt_cell(value, spread, many):
    if value is None:
        return "—"
    if not many:
        return fmt(value)
    return f"{fmt(value)} ({fmt(spread[0])}..{fmt(spread[1])})"


def pair_table(root, baselines, group, title):
    many = len(baselines) > 1
    if all(cell(root, baselines, group, n, c)[0] is None for n in CONTENDERS for c in COUNTS):
        return  # not in these runs
    print(f"#### {title}\n")
    print("| contender | " + " | ".join(f"{c} frames" for c in COUNTS) + " | max/min over counts |")
    print("|---|" + "---:|" * (len(COUNTS) + 1))
    for name in CONTENDERS:
        cells = [cell(root, baselines, group, name, c) for c in COUNTS]
        values = [v for v, _ in cells if v is not None]
        flat = f"{max(values) / min(values):.2f}" if values else "—"
        print(f"| {name} | " + " | ".join(fmt_cell(v, s, many) for v, s in cells) + f" | {flat} |")
    print()
    for subject in SUBJECTS:
        ratio_table(
            f"Ratio {subject} / contender ({group}; > 1 means {subject} is slower)",
            lambda name, c: (cell(root, baselines, group, subject, c)[0], cell(root, baselines, group, name, c)[0]),
        )


def ratio_table(title, pair):
    """One row per baseline: numerator / denominator from `pair(name, frames)`."""
    print(f"{title}:\n")
    print("| contender | " + " | ".join(f"{c} frames" for c in COUNTS) + " |")
    print("|---|" + "---:|" * len(COUNTS))
    for name in BASELINES:
        row = []
        for c in COUNTS:
            top, bottom = pair(name, c)
            row.append("—" if top is None or bottom is None else f"{top / bottom:.2f}")
        print(f"| {name} | " + " | ".join(row) + " |")
    print()


def breakdown_table(root, baselines, found):
    many = len(baselines) > 1
    print("#### Breakdown at 64 frames (ns per pair)\n")
    print("| step | 1 thread | 2 threads (criterion) | 2 threads (contended samples) |")
    print("|---|---:|---:|---:|")
    for name in BREAKDOWN:
        one = cell(root, baselines, "pair_1thread", name, 64)
        two = cell(root, baselines, "pair_2threads", name, 64)
        clean = found.get(f"pair_2threads/{name}/64")
        clean = fmt(clean[3]) if clean and clean[1] else "—"
        print(f"| {name} | {fmt_cell(*one, many)} | {fmt_cell(*two, many)} | {clean} |")
    print()


def handoff_table(root, baselines):
    many = len(baselines) > 1
    print("#### ALLOC-pend -> free -> completion hand-off (ns per pair)\n")
    print("| case | 2 frames | 65536 frames |")
    print("|---|---:|---:|")
    for name in [
        "ksalloc-pend-handoff",
        "ksalloc-method-ready",
        "model-ksalloc-pend-handoff",
        "model-irp-complete-only",
        "model-ksalloc-method-ready",
    ]:
        cells = [cell(root, baselines, "handoff", name, c) for c in (2, 65536)]
        print(f"| {name} | " + " | ".join(fmt_cell(v, s, many) for v, s in cells) + " |")
    print()


def read_contended(logs):
    """id -> (wait %, clean samples, all samples, clean median ns) from bench logs."""
    found = {}
    for log in logs:
        with open(log) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 8 and parts[0] == "contended":
                    clean, total = parts[5].split("/")
                    if int(total) == 0:
                        continue  # a case the filter left out
                    found[parts[1]] = (float(parts[3].rstrip("%")), int(clean), int(total), float(parts[7]))
    return found


def contended_table(found):
    print("#### Two threads, contended samples only (ns per pair, per thread)\n")
    print("Median over the samples in which both threads were preempted for < 1% of their")
    print("time; in brackets: clean samples / all samples, and the preempted share overall.\n")
    print("| contender | " + " | ".join(f"{c} frames" for c in COUNTS) + " |")
    print("|---|" + "---:|" * len(COUNTS))
    for name in CONTENDERS + ["ksalloc-magazine-burst4", "ksalloc-magazine-burst8"]:
        row = []
        for c in COUNTS:
            v = found.get(f"pair_2threads/{name}/{c}")
            if v is None:
                row.append("—")
            else:
                wait, clean, total, ns = v
                row.append(f"{fmt(ns) if clean else 'n/a'} ({clean}/{total}, {wait:.0f}%)")
        if any(r != "—" for r in row):
            print(f"| {name} | " + " | ".join(row) + " |")
    print()
    def clean_ns(name, c):
        v = found.get(f"pair_2threads/{name}/{c}")
        return v[3] if v and v[1] else None

    for subject in SUBJECTS:
        # Throughput is the inverse of time: contender time over ours.
        ratio_table(
            f"Throughput ratio {subject} : contender, contended samples (> 1 means {subject} does more pairs per second)",
            lambda name, c: (clean_ns(name, c), clean_ns(subject, c)),
        )


def main():
    args = sys.argv[1:]
    logs = []
    if "--log" in args:
        at = args.index("--log")
        logs = args[at + 1 :]
        args = args[:at]
    if args and Path(args[0]).is_dir():
        root = Path(args.pop(0))
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", "target"))
        root = target / "criterion"
    baselines = args or ["new"]
    print(f"<!-- criterion medians from {root}, runs: {', '.join(baselines)} -->\n")
    pair_table(root, baselines, "pair_1thread", "One thread (ns per allocate+free pair)")
    pair_table(
        root,
        baselines,
        "pair_2threads",
        "Two threads on one pool (ns per pair, per thread; aggregate pairs/s = 2 / time)",
    )
    found = read_contended(logs)
    if found:
        contended_table(found)
    breakdown_table(root, baselines, found)
    handoff_table(root, baselines)


if __name__ == "__main__":
    main()

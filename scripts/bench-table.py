#!/usr/bin/python3
"""Turns veil_ckks_bench JSON output (--benchmark_out=FILE --benchmark_out_format=json)
into the markdown tables of docs/benchmarks.md.

Usage: scripts/bench-table.py FILE.json [FILE2.json ...]
"""
import json
import sys


def fmt_ms(ns):
    ms = ns / 1e6
    return f"{ms:.3f}" if ms < 1 else f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def main(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for b in data["benchmarks"]:
            if b.get("run_type") == "aggregate":
                continue
            name = b["name"]
            parts = name.split("/")
            op, log_n, threads = parts[0], parts[1], parts[2]
            unit = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
            rows.append((op, int(log_n), int(threads), b["real_time"] * unit, b))
    print("| benchmark | N | threads | time (ms) | log QP | 128-bit | dnum | sizes |")
    print("|---|---|---|---|---|---|---|---|")
    for op, log_n, threads, ns, b in rows:
        sizes = ", ".join(f"{k} {b[k] / 1024:.0f} KiB" for k in sorted(b) if k.endswith("_bytes"))
        secure = "yes" if b.get("secure") == 1 else "no"
        print(f"| {op} | 2^{log_n} | {threads} | {fmt_ms(ns)} | {int(b.get('log_qp', 0))} | {secure} "
              f"| {int(b.get('dnum', 0))} | {sizes} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])

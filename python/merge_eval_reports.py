#!/usr/bin/python3
"""Merge the JSON reports of a `veil eval` run split with --skip/--count into one.

A fully encrypted CIFAR-10 residual network takes about a minute per image, so a run over
hundreds of images is split into parts (`veil eval --skip K -n M --report part.json`) that
may run in different sessions. This checks that the parts evaluate the same model in the
same mode on the same data, with no record twice, and sums them: accuracy both ways,
agreement, the largest logit error, and time per image weighted by each part's count.

    python/merge_eval_reports.py part1.json part2.json [--out all.json]
"""
import argparse
import json
import os
import sys

SAME = ("model", "dataset", "data", "mode", "exact_only")
# `veil` writes the data folder as it was given or resolved: relative to the checkout
# (../shared/data/cifar10) or absolute. Parts agree when both name the same folder.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def same_value(key, a, b):
    if key == "data" and isinstance(a, str) and isinstance(b, str):
        return os.path.realpath(os.path.join(ROOT, a)) == os.path.realpath(os.path.join(ROOT, b))
    return a == b


def merge(reports):
    if not reports:
        raise ValueError("no reports given")
    first = reports[0]
    for r in reports[1:]:
        for key in SAME:
            if not same_value(key, r.get(key), first.get(key)):
                raise ValueError(f"reports differ in {key}: {first.get(key)!r} and {r.get(key)!r}")
    merged = {key: first.get(key) for key in SAME}
    for key in ("records", "labels", "predictions", "plaintext_predictions"):
        merged[key] = [v for r in reports for v in r[key]]
    seen = set()
    for i in merged["records"]:
        if i in seen:
            raise ValueError(f"record {i} is in more than one report")
        seen.add(i)
    n = len(merged["records"])
    lab, enc, plain = merged["labels"], merged["predictions"], merged["plaintext_predictions"]
    merged["count"] = n
    merged["parts"] = len(reports)
    merged["encrypted_accuracy"] = sum(p == y for p, y in zip(enc, lab)) / n
    merged["plaintext_accuracy"] = sum(p == y for p, y in zip(plain, lab)) / n
    merged["agreement"] = sum(a == b for a, b in zip(enc, plain)) / n
    merged["agree"] = sum(a == b for a, b in zip(enc, plain))
    merged["max_logit_error"] = max(r["max_logit_error"] for r in reports)
    if all("seconds_per_image" in r for r in reports):
        spi = [r["seconds_per_image"] for r in reports]
        if all(isinstance(s, dict) for s in spi):  # hybrid: per stage
            merged["seconds_per_image"] = {
                k: sum(s[k] * r["count"] for s, r in zip(spi, reports)) / n for k in spi[0]}
        else:
            merged["seconds_per_image"] = sum(s * r["count"] for s, r in zip(spi, reports)) / n
    return merged


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reports", nargs="+", help="JSON reports of `veil eval --report`")
    ap.add_argument("--out", help="write the merged report here")
    a = ap.parse_args(argv)
    try:
        reports = [json.load(open(p)) for p in a.reports]
        m = merge(reports)
    except (OSError, ValueError, KeyError) as e:
        print(f"merge_eval_reports: {e}", file=sys.stderr)
        return 1
    print(f"{m['model']} ({m['mode']} mode), {m['count']} records in {m['parts']} parts")
    print(f"  plaintext accuracy  {100 * m['plaintext_accuracy']:.2f}%")
    print(f"  encrypted accuracy  {100 * m['encrypted_accuracy']:.2f}%")
    print(f"  agreement           {100 * m['agreement']:.2f}% ({m['agree']} of {m['count']})")
    print(f"  max logit error     {m['max_logit_error']:.2e}")
    if "seconds_per_image" in m:
        print(f"  seconds per image   {m['seconds_per_image']}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(m, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

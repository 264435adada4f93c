#!/usr/bin/python3
"""Print a markdown results table from the model cards (models/*.json)."""
import argparse
import glob
import json
import os

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", default=os.path.join(REPO, "models"), help="directory of cards")
    a = p.parse_args()
    print("| model | dataset | test acc. | exact-subset acc. | activation | linear / poly layers | max input range (fit B) | epochs | train time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in sorted(glob.glob(os.path.join(a.models, "*.json"))):
        c = json.load(open(path))
        if "test_accuracy" not in c:
            continue
        ex = c.get("exact_subset_accuracy")
        exs = "-" if ex is None else f"{ex * 100:.2f}% (n={c['exact_subset_n']})"
        act = c["activation"]
        # Wall time of every epoch as logged (training and its test pass); a run resumed
        # across sessions lost its step-time total once, the epoch log did not.
        wall = sum(e.get("seconds", 0) for e in c.get("history", [])) or c["train_seconds"]
        print(f"| {c['name']} | {c['dataset']} | {c['test_accuracy'] * 100:.2f}% | "
              f"{exs} | "
              f"deg {act['degree']} {act['kind']}{' (trainable)' if act['trainable_coefficients'] else ''} | "
              f"{c['linear_layers']} / {c['poly_layers']} | {c['max_input_range']:.2f} ({act['fit_range']:g}) | "
              f"{c['epochs_run']} | {wall / 60:.0f} min |")


if __name__ == "__main__":
    main()

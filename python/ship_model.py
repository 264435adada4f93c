#!/usr/bin/python3
"""Ship a training run as one of veil's models.

Copies a run's ONNX file and card (RUN.onnx and RUN.json, as python/train.py writes them)
to models/NAME.onnx and models/NAME.json under the shipped name: the ONNX file's
veil.model metadata and the card's name and onnx_file become NAME, and the card's
trained_as names the run. It then writes the model's reference logits on its dataset's 16
shipped test samples (models/samples/NAME-first16-logits.json), with python/check_onnx.py's
reference interpreter; tests/nn/plain_eval_test.cpp compares veil's plain evaluation of
the shipped model against them.

  /usr/bin/python3 python/ship_model.py train/cifar10-resnet20-w24kd --as cifar10-resnet20 \\
      --trained-as "width 24, 30 epochs distilled from train/cifar10-resnet20-relu-w32ft.pt"

The models it replaces are overwritten; git keeps them.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import onnx  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# The 16 test samples of each dataset, relative to the repository (what the logits file
# records and the C++ test reads).
SAMPLES = {
    "mnist": "models/samples/mnist-test-first16-images-idx3-ubyte",
    "fashion-mnist": "models/samples/fashion-test-first16-images-idx3-ubyte",
    "cifar10": "models/samples/cifar10-test-first16-exact.bin",
}


def ship(run: str, name: str, trained_as: str, models_dir: str) -> dict:
    """Writes models_dir/NAME.onnx, NAME.json and samples/NAME-first16-logits.json;
    returns the paths written. Raises ValueError naming what is wrong."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", name):
        raise ValueError(f"--as {name!r}: a model name is lower-case letters, digits, '-' and '.'")
    run = run[:-5] if run.endswith(".onnx") or run.endswith(".json") else run
    onnx_in, card_in = run + ".onnx", run + ".json"
    for path in (onnx_in, card_in):
        if not os.path.isfile(path):
            raise ValueError(f"{path} does not exist (a run is the ONNX file and card train.py wrote)")
    with open(card_in) as f:
        card = json.load(f)
    if card.get("teacher_only"):
        raise ValueError(f"{card_in} is a distillation teacher's card (true ReLU), not a veil model")
    model = onnx.load(onnx_in)
    meta = {p.key: p for p in model.metadata_props}
    if "veil.model" not in meta or "veil.dataset" not in meta:
        raise ValueError(f"{onnx_in} has no veil.model / veil.dataset metadata: not a veil export")
    dataset = meta["veil.dataset"].value
    if card.get("dataset") != dataset:
        raise ValueError(f"{card_in} is for {card.get('dataset')!r}, {onnx_in} for {dataset!r}")
    if dataset not in SAMPLES:
        raise ValueError(f"no shipped test samples for dataset {dataset!r}")
    # A run whose export did not reproduce torch (a diverged range calibration leaves NaN
    # in the file and no diff in the card) must not become a shipped model.
    diff = card.get("onnx_vs_torch_max_abs_diff")
    if not isinstance(diff, (int, float)) or not math.isfinite(diff) or diff > 1e-3:
        raise ValueError(f"{card_in}: onnx_vs_torch_max_abs_diff is {diff!r}, so {onnx_in} does not "
                         "reproduce the trained network; re-export the run (its training command with --resume "
                         "re-exports a finished schedule)")
    for node in model.graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.FLOAT and not math.isfinite(a.f):
                raise ValueError(f"{onnx_in}: node {node.name} has {a.name} = {a.f}; re-export the run")
    meta["veil.model"].value = name
    card.update(name=name, onnx_file=name + ".onnx", trained_as=trained_as)

    os.makedirs(os.path.join(models_dir, "samples"), exist_ok=True)
    out = dict(onnx=os.path.join(models_dir, name + ".onnx"), card=os.path.join(models_dir, name + ".json"),
               logits=os.path.join(models_dir, "samples", name + "-first16-logits.json"))
    onnx.save(model, out["onnx"])
    with open(out["card"], "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    # Run from the repository so the logits file names the samples by their path there (and
    # the model by its file name, NAME.onnx).
    subprocess.run([sys.executable, os.path.join(REPO, "python", "check_onnx.py"), os.path.abspath(out["onnx"]),
                    SAMPLES[dataset], "--logits-out", os.path.abspath(out["logits"])],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="the run's files without extension, e.g. train/cifar10-resnet20-w24kd")
    p.add_argument("--as", dest="name", required=True, help="the shipped model's name, e.g. cifar10-resnet20")
    p.add_argument("--trained-as", required=True, help="what the card's trained_as says about the run")
    p.add_argument("--models-dir", default=os.path.join(REPO, "models"), help="where to ship (default: models/)")
    a = p.parse_args()
    try:
        out = ship(a.run, a.name, a.trained_as, a.models_dir)
    except ValueError as e:
        raise SystemExit(f"ship_model.py: {e}")
    for k in ("onnx", "card", "logits"):
        print(f"wrote {out[k]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Apply veil's exact range calibration to an exported model (see veil_tools/calibrate.py).

Rescales every BatchNormalization -> veil::Poly pair whose measured input_range exceeds
fit_range so that it no longer does, checks that the logits are unchanged on test images
(numpy interpreter), and updates the model card's per-layer ranges. train.py does this
itself for models with trainable coefficients; this tool is for files exported without it.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import copy  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402

from veil_tools import calibrate as C  # noqa: E402
from veil_tools import data as D  # noqa: E402
from veil_tools import export as E  # noqa: E402
from veil_tools import onnx_ref  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="ONNX file (rewritten in place unless --out)")
    p.add_argument("--card", help="model card JSON to update")
    p.add_argument("--out", help="write the calibrated model here")
    p.add_argument("--data", help="data directory for the check")
    p.add_argument("--check-images", type=int, default=200)
    a = p.parse_args()
    m = onnx.load(a.model)
    before = copy.deepcopy(m)
    recs = C.calibrate(m)
    onnx.checker.check_model(m)
    E.check_format(m)
    meta = {q.key: q.value for q in m.metadata_props}
    ds = meta["veil.dataset"]
    _, test = D.load(ds, a.data)
    x, _ = next(iter(D.Batches(test.subset(a.check_images), ds, a.check_images)))
    y0 = onnx_ref.run(before, x.numpy())["logits"]
    y1 = onnx_ref.run(m, x.numpy())["logits"]
    diff = float(np.abs(y0 - y1).max())
    if diff > 1e-4 * max(1.0, float(np.abs(y0).max())):
        raise SystemExit(f"calibration changed the logits by {diff}")
    onnx.save(m, a.out or a.model)
    for r in recs:
        print(f"{r['node']}: range {r['range_before']:.4f} -> {r.get('range_after', r['range_before']):.4f} (scale {r['scale']:.6f})")
    print(f"max logit change {diff:.3g}; wrote {a.out or a.model}")
    if a.card:
        card = json.load(open(a.card))
        nodes = E.poly_nodes(m)
        for layer, nd, r in zip(card["layers"], nodes, recs):
            layer["input_range_measured"] = layer.get("input_range_measured", layer["input_range"])
            layer["input_range"] = nd["input_range"]
            layer["calibration_scale"] = layer.get("calibration_scale", 1.0) * r["scale"]
            layer["coefficients_folded"] = nd["coefficients"]
            layer["inside_fit_range"] = bool(nd["input_range"] <= nd["fit_range"] * (1 + 1e-6))
        card["max_input_range"] = max(l_["input_range"] for l_ in card["layers"])
        card["range_calibrated"] = True
        card["calibration_note"] = ("calibrated after training with python/calibrate_onnx.py "
                                    f"(max logit change {diff:.3g} on {a.check_images} test images)")
        with open(a.card, "w") as f:
            json.dump(card, f, indent=2)
        print(f"updated {a.card}")


if __name__ == "__main__":
    main()

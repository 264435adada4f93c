#!/usr/bin/python3
"""Check a veil ONNX model and run it with the numpy reference interpreter.

Runs onnx.checker and veil's format check, lists the Poly nodes (degree, fit range,
measured input range), and evaluates the model on sample inputs: an IDX image file (with
its labels file next to it), a CIFAR-binary file, or PNG files. Prints predictions and,
with --logits-out, writes reference logits as JSON (useful to test the C++ engine).
"""
import argparse
import json
import os
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import onnx  # noqa: E402

from veil_tools import data as D  # noqa: E402
from veil_tools import export as E  # noqa: E402
from veil_tools import onnx_ref  # noqa: E402


def read_png(path):
    """Minimal PNG reader for 8-bit grayscale / RGB, non-interlaced (what make_samples writes)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        tag = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        if tag == b"IHDR":
            hdr = body
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    w, h = int.from_bytes(hdr[0:4], "big"), int.from_bytes(hdr[4:8], "big")
    depth, color, interlace = hdr[8], hdr[9], hdr[12]
    if depth != 8 or color not in (0, 2) or interlace:
        raise ValueError("only 8-bit grayscale/RGB non-interlaced PNGs")
    ch = 1 if color == 0 else 3
    raw = zlib.decompress(idat)
    stride = w * ch
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        cur = np.zeros(stride, dtype=np.int32)
        for i in range(stride):
            a = cur[i - ch] if i >= ch else 0
            b = prev[i]
            c = prev[i - ch] if i >= ch else 0
            if ft == 0:
                p = 0
            elif ft == 1:
                p = a
            elif ft == 2:
                p = b
            elif ft == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[i] = (line[i] + p) & 0xFF
        out[y] = cur
        prev = cur
    img = out.reshape(h, w, ch).transpose(2, 0, 1)
    return img


def load_inputs(paths, shape):
    xs, ys = [], []
    for p in paths:
        if p.endswith(".png"):
            xs.append(read_png(p)[None])
            ys.append(None)
        elif "images-idx3" in p:
            x = D.read_idx(p)
            xs.append(x[:, None])
            lab = p.replace("images-idx3", "labels-idx1")
            ys += list(D.read_idx(lab)) if os.path.exists(lab) else [None] * len(x)
        else:
            x, y = D.read_cifar_bin(p)
            xs.append(x)
            ys += list(y)
    x = np.concatenate(xs)
    if tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"inputs have shape {x.shape[1:]}, model expects {shape}")
    return x, ys


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="ONNX file")
    p.add_argument("inputs", nargs="*", help="PNG / IDX images / CIFAR-binary files")
    p.add_argument("--logits-out", help="write {file, logits, predictions, labels} JSON here")
    a = p.parse_args()
    m = onnx.load(a.model)
    onnx.checker.check_model(m)
    E.check_format(m)
    meta = {q.key: q.value for q in m.metadata_props}
    print(f"{a.model}: onnx.checker OK, veil format OK")
    for k in sorted(meta):
        print(f"  {k} = {meta[k]}")
    for n in E.poly_nodes(m):
        print(f"  Poly {n['node']}: degree {n['degree']} base {n['base']} fit_range {n['fit_range']:g} "
              f"input_range {n['input_range']:.4f}")
    if not a.inputs:
        return 0
    shape = [int(s) for s in meta["veil.input_shape"].split(",")]
    mean = np.array([float(v) for v in meta["veil.normalize.mean"].split(",")]).reshape(1, -1, 1, 1)
    std = np.array([float(v) for v in meta["veil.normalize.std"].split(",")]).reshape(1, -1, 1, 1)
    classes = meta["veil.classes"].split(",")
    x8, labels = load_inputs(a.inputs, shape)
    x = ((x8 / 255.0 - mean) / std).astype(np.float32)
    logits = onnx_ref.run(m, x)["logits"]
    pred = logits.argmax(1)
    ok = [int(p_ == l) for p_, l in zip(pred, labels) if l is not None]
    for i, (pp, l) in enumerate(zip(pred, labels)):
        print(f"  [{i}] predicted {pp} ({classes[pp]})" + ("" if l is None else f", label {l}"))
    if ok:
        print(f"  accuracy on these inputs: {sum(ok)}/{len(ok)}")
    if a.logits_out:
        with open(a.logits_out, "w") as f:
            json.dump(dict(model=os.path.basename(a.model), inputs=a.inputs,
                           logits=logits.tolist(), predictions=pred.tolist(),
                           labels=[None if l is None else int(l) for l in labels]), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

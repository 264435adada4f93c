"""Write sample inputs for the C++ side and the docs (``python/make_samples.py``).

For MNIST / Fashion-MNIST: PNGs (8-bit grayscale, 28x28) of the first test images and an
IDX pair with the first N test images and labels. For CIFAR-10: PNGs (8-bit RGB, 32x32)
and a CIFAR-binary file with the first N *exact* test records (exact_mask byte = 1).
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from typing import List

import numpy as np

from . import data as D


def write_png(path: str, img: np.ndarray):
    """img: uint8 [H, W] (grayscale) or [H, W, 3] (RGB)."""
    img = np.ascontiguousarray(img, dtype=np.uint8)
    h, w = img.shape[:2]
    color = 0 if img.ndim == 2 else 2
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(tag, payload):
        c = struct.pack(">I", len(payload)) + tag + payload
        return c + struct.pack(">I", zlib.crc32(tag + payload) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def make(dataset: str, out_dir: str, data_dir=None, n_png: int = 4, n_bin: int = 16) -> List[str]:
    os.makedirs(out_dir, exist_ok=True)
    _, test = D.load(dataset, data_dir)
    classes = D.INFO[dataset]["classes"]
    prefix = {"mnist": "mnist", "fashion-mnist": "fashion", "cifar10": "cifar10"}[dataset]
    written = []
    x = test.x.numpy()
    y = test.y.numpy()
    if dataset == "cifar10":
        idx = np.nonzero(test.exact.numpy())[0]
    else:
        idx = np.arange(len(y))
    for i in idx[:n_png]:
        lab = int(y[i])
        name = f"{prefix}-{i}-label{lab}" + ("" if dataset == "mnist" else f"-{_slug(classes[lab])}") + ".png"
        img = x[i, 0] if x.shape[1] == 1 else x[i].transpose(1, 2, 0)
        write_png(os.path.join(out_dir, name), img)
        written.append(name)
    sel = idx[:n_bin]
    if dataset == "cifar10":
        name = f"{prefix}-test-first{n_bin}-exact.bin"
        rec = np.concatenate([y[sel].astype(np.uint8)[:, None], x[sel].reshape(len(sel), -1)], axis=1)
        rec.astype(np.uint8).tofile(os.path.join(out_dir, name))
        written.append(name)
    else:
        for kind, arr in (("images-idx3-ubyte", x[sel, 0]), ("labels-idx1-ubyte", y[sel].astype(np.uint8))):
            name = f"{prefix}-test-first{n_bin}-{kind}"
            D.write_idx(os.path.join(out_dir, name), arr)
            written.append(name)
    return written

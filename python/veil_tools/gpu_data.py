"""Compact CIFAR-10 file for the GPU run (scripts/train-gpu.sh).

The CIFAR batches are 136 MB as .bin.xz, too big to travel with the code to the device
machine (64 MiB in all). This module re-encodes the 60,000 images as baseline JPEG (4:4:4,
quality 90 by default) and stores them in one uncompressed ``.npz``:

* ``header``: the bytes every image shares (SOI ... SOS header). With a fixed quality,
  no Huffman optimisation and a fixed size, PIL writes identical quantisation and Huffman
  tables for every 32x32 image, and at this size those tables (623 bytes) are larger than
  the entropy-coded data itself, so they are stored once; ``build`` checks that they are
  identical.
* ``{train,test}_offsets`` (int64, n + 1), ``{train,test}_scan`` (uint8): each image's
  entropy-coded segment; image i is ``header + scan[off[i]:off[i+1]] + EOI``.
* ``{train,test}_labels`` (uint8), ``{train,test}_exact`` (bool: the exact_mask of veil's
  reconstructed copy, see ../shared/data/cifar10/README.md beside the checkout), ``meta`` (JSON text).

Decoding: torchvision.io.decode_jpeg on the GPU (batched, torchvision >= 0.19) when a GPU
is there, else PIL in a process pool.
"""

from __future__ import annotations

import io
import json
import os
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from . import data as D

SOS, EOI = b"\xff\xda", b"\xff\xd9"


def _split(jpeg: bytes) -> Tuple[bytes, bytes]:
    """(header up to and including the SOS segment, entropy-coded data without EOI)."""
    i = jpeg.find(SOS)
    if i < 0 or not jpeg.endswith(EOI):
        raise ValueError("not a baseline JPEG with one scan")
    end = i + 2 + int.from_bytes(jpeg[i + 2:i + 4], "big")
    return jpeg[:end], jpeg[end:-2]


def encode(x: np.ndarray, quality: int) -> Tuple[bytes, List[bytes]]:
    """x: uint8 [N, 3, 32, 32] -> (shared header, per-image scans)."""
    from PIL import Image
    header, scans = None, []
    for im in x.transpose(0, 2, 3, 1):
        b = io.BytesIO()
        Image.fromarray(im).save(b, format="JPEG", quality=quality, subsampling=0,
                                 optimize=False, progressive=False)
        h, s = _split(b.getvalue())
        if header is None:
            header = h
        elif h != header:
            raise ValueError("JPEG headers differ between images; cannot share one header")
        scans.append(s)
    return header, scans


def build(src: str, out: str, quality: int = 90) -> dict:
    train, test = D.load("cifar10", src)
    arrays: Dict[str, np.ndarray] = {}
    header = None
    for name, split in (("train", train), ("test", test)):
        h, scans = encode(split.x.numpy(), quality)
        if header is not None and h != header:
            raise ValueError("train and test JPEG headers differ")
        header = h
        lens = np.array([len(s) for s in scans], dtype=np.int64)
        arrays[f"{name}_offsets"] = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        arrays[f"{name}_scan"] = np.frombuffer(b"".join(scans), dtype=np.uint8)
        arrays[f"{name}_labels"] = split.y.numpy().astype(np.uint8)
        arrays[f"{name}_exact"] = split.exact.numpy().astype(bool)
    meta = dict(format="veil-cifar10-jpeg/1", quality=quality, subsampling="4:4:4",
                source=os.path.abspath(src), train_n=len(train), test_n=len(test))
    arrays["header"] = np.frombuffer(header, dtype=np.uint8)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    return meta


def load_jpegs(path: str) -> dict:
    """{"meta", "train": (list of JPEG bytes, labels, exact), "test": (...)}."""
    z = np.load(path)
    header = z["header"].tobytes()
    out = {"meta": json.loads(z["meta"].tobytes().decode())}
    for name in ("train", "test"):
        off, scan = z[f"{name}_offsets"], z[f"{name}_scan"].tobytes()
        jpegs = [header + scan[off[i]:off[i + 1]] + EOI for i in range(len(off) - 1)]
        out[name] = (jpegs, torch.from_numpy(z[f"{name}_labels"].astype(np.int64)),
                     torch.from_numpy(z[f"{name}_exact"].astype(bool)))
    return out


def _pil_decode(jpegs: List[bytes]) -> np.ndarray:
    from PIL import Image
    return np.stack([np.asarray(Image.open(io.BytesIO(j)).convert("RGB")) for j in jpegs])


def decode_cpu(jpegs: List[bytes], workers: Optional[int] = None) -> torch.Tensor:
    """PIL decode, ``workers`` processes (default: all cores) -> uint8 [N, 3, 32, 32]."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(jpegs) < 2000:
        x = _pil_decode(jpegs)
    else:
        import multiprocessing as mp
        chunk = (len(jpegs) + workers * 4 - 1) // (workers * 4)
        parts = [jpegs[i:i + chunk] for i in range(0, len(jpegs), chunk)]
        with mp.get_context("fork").Pool(workers) as pool:
            x = np.concatenate(pool.map(_pil_decode, parts))
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def decode_gpu(jpegs: List[bytes], device, chunk: int = 10000) -> torch.Tensor:
    """Batched nvJPEG decode (torchvision >= 0.19) -> uint8 [N, 3, 32, 32] on ``device``."""
    from torchvision.io import ImageReadMode, decode_jpeg
    out = []
    for i in range(0, len(jpegs), chunk):
        data = [torch.frombuffer(bytearray(j), dtype=torch.uint8) for j in jpegs[i:i + chunk]]
        imgs = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        out.append(torch.stack(imgs))
    return torch.cat(out)


def decode(jpegs: List[bytes], device, log=print) -> torch.Tensor:
    """GPU decode where possible, else PIL; returns uint8 [N, 3, 32, 32] on ``device``."""
    t = time.time()
    device = torch.device(device)
    if device.type == "cuda":
        try:
            x = decode_gpu(jpegs, device)
            torch.cuda.synchronize(device)
            log(f"decoded {len(jpegs)} JPEGs on {device} in {time.time() - t:.1f} s")
            return x
        except Exception as e:  # noqa: BLE001 - any failure: fall back to the CPU
            log(f"GPU JPEG decode failed ({type(e).__name__}: {e}); decoding with PIL")
            t = time.time()
    x = decode_cpu(jpegs).to(device)
    log(f"decoded {len(jpegs)} JPEGs with PIL ({os.cpu_count()} cores) in "
        f"{time.time() - t:.1f} s")
    return x


def psnr(a: torch.Tensor, b: torch.Tensor) -> Tuple[float, float]:
    """(mean absolute error in grey levels, PSNR in dB) between uint8 image tensors."""
    d = a.double() - b.double()
    mse = float(d.pow(2).mean())
    return float(d.abs().mean()), (10 * np.log10(255.0 ** 2 / mse) if mse > 0 else float("inf"))

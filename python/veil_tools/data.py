"""Data set loaders (no torchvision download; local files only).

MNIST / Fashion-MNIST: IDX files, raw or gzip (``train-images-idx3-ubyte[.gz]`` ...).
CIFAR-10: binary batches (``data_batch_{1..5}.bin``, ``test_batch.bin``), raw or ``.xz``,
with optional ``*.exact_mask.u8`` files (veil's reconstructed copy, see
../shared/data/cifar10/README.md beside the checkout).

Everything is held in memory as uint8 tensors; normalisation and augmentation happen per
batch in ``Batches``.
"""

from __future__ import annotations

import gzip
import lzma
import os
import struct
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch

MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                   "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"]

INFO = {
    "mnist": dict(shape=(1, 28, 28), mean=[0.1307], std=[0.3081], classes=MNIST_CLASSES,
                  default_dir="data/mnist"),
    "fashion-mnist": dict(shape=(1, 28, 28), mean=[0.2860], std=[0.3530],
                          classes=FASHION_CLASSES,
                          default_dir="/usr/share/datasets/fashion-mnist"),
    "cifar10": dict(shape=(3, 32, 32), mean=[0.4914, 0.4822, 0.4465],
                    std=[0.2470, 0.2435, 0.2616], classes=CIFAR_CLASSES,
                    default_dir="data/cifar10"),
}
# Fallback locations searched when --data is not given: the working directory's data/,
# then the checkout's (where scripts/setup.sh puts MNIST), Debian's Fashion-MNIST, and the
# shared CIFAR-10 copy beside the checkout. Nothing names one machine's folders.
_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SEARCH = {
    "mnist": ["data/mnist", os.path.join(_REPO, "data", "mnist")],
    "fashion-mnist": ["/usr/share/datasets/fashion-mnist", "data/fashion-mnist",
                      os.path.join(_REPO, "data", "fashion-mnist")],
    "cifar10": ["data/cifar10", os.path.join(_REPO, "data", "cifar10"),
                os.path.join(_REPO, "..", "shared", "data", "cifar10")],
}


def _open(path: str):
    for ext, opener in (("", open), (".gz", gzip.open), (".xz", lzma.open)):
        if os.path.exists(path + ext):
            return opener(path + ext, "rb")
    raise FileNotFoundError(f"{path}[.gz|.xz] not found")


def _exists(path: str) -> bool:
    return any(os.path.exists(path + e) for e in ("", ".gz", ".xz"))


def read_idx(path: str) -> np.ndarray:
    with _open(path) as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(dims).copy()


def write_idx(path: str, arr: np.ndarray):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x08, arr.ndim))
        f.write(struct.pack(">" + "I" * arr.ndim, *arr.shape))
        f.write(arr.tobytes())


def read_cifar_bin(path: str) -> Tuple[np.ndarray, np.ndarray]:
    with _open(path) as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8)
    rec = raw.reshape(-1, 3073)
    return rec[:, 1:].reshape(-1, 3, 32, 32).copy(), rec[:, 0].astype(np.int64)


def find_dir(dataset: str, data_dir: Optional[str]) -> Optional[str]:
    """Return a directory holding ``dataset`` or None."""
    cands = [data_dir] if data_dir else []
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.abspath(os.path.join(here, "..", ".."))
    for c in SEARCH[dataset]:
        cands.append(c if os.path.isabs(c) else os.path.join(repo, c))
    for d in cands:
        if d is None:
            continue
        probe = "t10k-labels-idx1-ubyte" if dataset != "cifar10" else "test_batch.bin"
        if _exists(os.path.join(d, probe)):
            return d
    return None


@dataclass
class Split:
    x: torch.Tensor          # uint8 [N, C, H, W]
    y: torch.Tensor          # int64 [N]
    exact: Optional[torch.Tensor] = None   # bool [N] (CIFAR only)

    def __len__(self):
        return len(self.y)

    def subset(self, n: int) -> "Split":
        return Split(self.x[:n], self.y[:n], None if self.exact is None else self.exact[:n])


def load(dataset: str, data_dir: Optional[str] = None) -> Tuple[Split, Split]:
    d = find_dir(dataset, data_dir)
    if d is None:
        raise FileNotFoundError(f"no {dataset} files found (looked in {data_dir or SEARCH[dataset]})")
    if dataset in ("mnist", "fashion-mnist"):
        out = []
        for pre in ("train", "t10k"):
            x = read_idx(os.path.join(d, f"{pre}-images-idx3-ubyte"))
            y = read_idx(os.path.join(d, f"{pre}-labels-idx1-ubyte"))
            out.append(Split(torch.from_numpy(x).unsqueeze(1),
                             torch.from_numpy(y.astype(np.int64))))
        return out[0], out[1]
    xs, ys, ms = [], [], []
    for i in range(1, 6):
        x, y = read_cifar_bin(os.path.join(d, f"data_batch_{i}.bin"))
        xs.append(x), ys.append(y)
        ms.append(_mask(os.path.join(d, f"data_batch_{i}.exact_mask.u8"), len(y)))
    train = Split(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)),
                  torch.from_numpy(np.concatenate(ms)))
    x, y = read_cifar_bin(os.path.join(d, "test_batch.bin"))
    test = Split(torch.from_numpy(x), torch.from_numpy(y),
                 torch.from_numpy(_mask(os.path.join(d, "test_batch.exact_mask.u8"), len(y))))
    return train, test


def _mask(path: str, n: int) -> np.ndarray:
    if os.path.exists(path):
        m = np.fromfile(path, dtype=np.uint8)
        if len(m) == n:
            return m.astype(bool)
    return np.ones(n, dtype=bool)


class Batches:
    """Iterates (normalised float batch, labels); optional crop/flip augmentation."""

    def __init__(self, split: Split, dataset: str, batch_size: int, shuffle: bool = False,
                 augment: str = "none", seed: int = 0, max_batches: Optional[int] = None):
        self.split, self.bs, self.shuffle = split, batch_size, shuffle
        self.augment = augment
        self.gen = torch.Generator().manual_seed(seed)
        info = INFO[dataset]
        self.mean = torch.tensor(info["mean"]).view(1, -1, 1, 1)
        self.std = torch.tensor(info["std"]).view(1, -1, 1, 1)
        self.max_batches = max_batches

    def __len__(self):
        n = (len(self.split) + self.bs - 1) // self.bs
        return n if self.max_batches is None else min(n, self.max_batches)

    def __iter__(self):
        return self.iterate(self.epoch_order())

    def epoch_order(self) -> torch.Tensor:
        """The sample order of the next epoch (draws from ``gen`` when shuffling)."""
        n = len(self.split)
        return torch.randperm(n, generator=self.gen) if self.shuffle else torch.arange(n)

    def iterate(self, order: torch.Tensor, start: int = 0):
        """Batches ``start``, ``start + 1``, ... of an epoch in ``order``. Resuming mid-epoch
        needs the epoch's order, the batch index and ``gen``'s state at that point (the
        augmentation draws from ``gen`` batch by batch)."""
        for i in range(start, len(self)):
            idx = order[i * self.bs:(i + 1) * self.bs]
            x = self.split.x[idx].float().div_(255.0)
            if self.augment != "none":
                x = self._augment(x)
            yield (x - self.mean) / self.std, self.split.y[idx]

    def _augment(self, x):
        n, c, h, w = x.shape
        pad = 4 if self.augment == "crop-flip" else 2
        if self.augment in ("crop-flip", "shift"):
            xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
            dx = torch.randint(0, 2 * pad + 1, (n,), generator=self.gen)
            dy = torch.randint(0, 2 * pad + 1, (n,), generator=self.gen)
            rows = (dy.view(n, 1) + torch.arange(h).view(1, h))        # [n, h]
            cols = (dx.view(n, 1) + torch.arange(w).view(1, w))        # [n, w]
            bidx = torch.arange(n).view(n, 1, 1)
            xp = xp.permute(0, 2, 3, 1)                                # n, H, W, c
            x = xp[bidx, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)
        if self.augment == "crop-flip":
            flip = torch.rand(n, generator=self.gen) < 0.5
            x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
        return x.contiguous()

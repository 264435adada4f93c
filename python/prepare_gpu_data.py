#!/usr/bin/python3
"""Build the compact CIFAR-10 file for the GPU run (see veil_tools/gpu_data.py) and check
that it round-trips: decode every image again and compare with the original batches."""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from veil_tools import data as D  # noqa: E402
from veil_tools import gpu_data as G  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--src", default=os.path.join(REPO, "..", "shared", "data", "cifar10"),
                   help="CIFAR-10 binary batches (raw or .xz)")
    p.add_argument("--out", default=os.path.join(REPO, "gpu-data", "cifar10-jpeg.npz"))
    p.add_argument("--quality", type=int, default=90, help="JPEG quality (4:4:4)")
    p.add_argument("--check-only", action="store_true", help="only the round-trip check")
    p.add_argument("--workers", type=int, default=None, help="PIL decode processes")
    a = p.parse_args(argv)
    if not a.check_only:
        t = time.time()
        meta = G.build(a.src, a.out, a.quality)
        print(f"wrote {a.out}: {os.path.getsize(a.out) / 2**20:.2f} MiB, "
              f"{meta['train_n']} + {meta['test_n']} images, quality {a.quality}, "
              f"{time.time() - t:.1f} s", flush=True)
    t = time.time()
    z = G.load_jpegs(a.out)
    t_read = time.time() - t
    train, test = D.load("cifar10", a.src)
    for name, split in (("train", train), ("test", test)):
        jpegs, labels, exact = z[name]
        t = time.time()
        x = G.decode_cpu(jpegs, a.workers)
        dt = time.time() - t
        assert x.shape == split.x.shape, (x.shape, split.x.shape)
        assert (labels == split.y).all() and (exact == split.exact).all()
        mae, psnr = G.psnr(x, split.x)
        print(f"{name}: {len(jpegs)} images decoded with PIL in {dt:.1f} s; labels and exact "
              f"mask identical; mean abs error {mae:.3f} grey levels, PSNR {psnr:.2f} dB, "
              f"max abs error {int((x.int() - split.x.int()).abs().max())}", flush=True)
    print(f"file read + JPEG reassembly {t_read:.1f} s; size "
          f"{os.path.getsize(a.out) / 2**20:.2f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Write sample inputs (PNG, IDX pair, CIFAR binary) to models/samples/."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from veil_tools import samples  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist", "cifar10"],
                   choices=["mnist", "fashion-mnist", "cifar10"])
    p.add_argument("--data", default=None, help="data directory (only with one data set)")
    p.add_argument("--out", default=os.path.join(REPO, "models", "samples"))
    p.add_argument("--png", type=int, default=4, help="PNGs per data set")
    p.add_argument("--bin", type=int, default=16, help="records in the IDX / CIFAR-binary file")
    a = p.parse_args()
    for ds in a.datasets:
        for f in samples.make(ds, a.out, a.data, a.png, a.bin):
            print(os.path.join(a.out, f))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Export a training checkpoint (python/train.py --checkpoint) to a veil ONNX model.

For looking at a model while its training continues (timings, the hybrid mode's scales):
loads the EMA weights when the checkpoint has them (else the raw ones), re-estimates the
BN statistics on augmented training batches where that helps, as train.py does at the
end, exports,
calibrates the activation ranges and verifies the ONNX file against torch.

  /usr/bin/python3 python/export_checkpoint.py train/cifar10-resnet20.pt out.onnx
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import onnx  # noqa: E402
import torch  # noqa: E402

from veil_tools import calibrate as C  # noqa: E402
from veil_tools import data as D  # noqa: E402
from veil_tools import export as E  # noqa: E402
from veil_tools import nets as N  # noqa: E402
from veil_tools import train as T  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="file written by train.py --checkpoint")
    p.add_argument("out", help="ONNX file to write")
    p.add_argument("--name", default=None, help="model name in the metadata (default: <preset>-epoch<K>)")
    p.add_argument("--data", default=None, help="data directory (default: as train.py)")
    p.add_argument("--raw", action="store_true", help="export the raw weights, not the EMA")
    a = p.parse_args()
    ck = torch.load(a.checkpoint, map_location="cpu", weights_only=False)
    targs = ck["args"] if isinstance(ck.get("args"), dict) else vars(ck["args"])
    cfg = T.resolve(argparse.Namespace(**targs))
    act = N.make_act_factory(cfg["act"], cfg["degree"], cfg["bound"], cfg["trainable"], cfg["clamp"])
    model = cfg["net"](act, cfg["width"])
    use_ema = "ema" in ck and not a.raw
    model.load_state_dict(ck["ema"] if use_ema else ck["model"])
    train, test = D.load(cfg["dataset"], a.data)
    if use_ema:
        loader = D.Batches(train, cfg["dataset"], 500, shuffle=True, augment=cfg["augment"], seed=1)
        model = T.better_bn(model, loader, D.Batches(train, cfg["dataset"], 500))
    model.eval()
    name = a.name or f"{targs['model']}-epoch{ck['epoch']}"
    m = E.export(model, a.out, cfg["dataset"], {"veil.model": name})
    if cfg["trainable"]:
        C.calibrate(m)
        onnx.save(m, a.out)
    x = next(iter(D.Batches(test.subset(8), cfg["dataset"], 8)))[0]
    diff = E.verify(model, m, x)
    ev = T.evaluate(model, D.Batches(test, cfg["dataset"], 500), "cpu", test.exact)
    print(f"{name}: test accuracy {ev['accuracy'] * 100:.2f}% ({'EMA' if use_ema else 'raw'} weights, "
          f"epoch {ck['epoch']}); onnx diff {diff:.2e}; wrote {a.out}")


if __name__ == "__main__":
    main()

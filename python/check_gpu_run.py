#!/usr/bin/python3
"""Check a GPU run of scripts/train-gpu.sh here, on the CPU, and publish it.

Reads the run folder (model.pt.partNN: the weights in parts; cifar10-resnet18.json: the
card written on the GPU), evaluates the weights on the full original CIFAR-10 test set
(accuracy and exact-subset accuracy), extends the activation ranges measured on the GPU
(training + JPEG test images) by those of the original test images, exports the ONNX with
veil's exporter, verifies it against torch with the numpy interpreter, and writes
<out>/<name>.onnx and <out>/<name>.json (the GPU card with the CPU figures).
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from veil_tools import data as D  # noqa: E402
from veil_tools import export as E  # noqa: E402
from veil_tools import nets as N  # noqa: E402
from veil_tools import train as T  # noqa: E402
from veil_tools import train_gpu as TG  # noqa: E402
from veil_tools.polyact import polyacts, track_range  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="folder with model.pt.partNN (and the GPU card)")
    p.add_argument("--data", default=None, help="CIFAR-10 batches (default: the usual places)")
    p.add_argument("--out", default=os.path.join(REPO, "models"))
    p.add_argument("--name", default=TG.PRESET)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--test-limit", type=int, default=None, help="first N test images only")
    p.add_argument("--verify-samples", type=int, default=16)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.time()

    st = TG.load_parts(a.run, "model.pt")
    cfg = N.PRESETS[st.get("preset", TG.PRESET)]
    gargs = st.get("args", {})
    act = N.make_act_factory(cfg["act"], cfg["degree"], cfg["bound"], cfg["trainable"],
                             gargs.get("clamp", cfg.get("clamp")))
    model = cfg["net"](act, st.get("width")).eval()
    model.load_state_dict(st["model"])
    gpu_ranges = [float(m.max_abs) for m in polyacts(model)]

    _, test = D.load("cifar10", a.data)
    if a.test_limit:
        test = test.subset(a.test_limit)
    loader = D.Batches(test, "cifar10", 500)
    with track_range(model, reset=False) as acts:   # keep the GPU-measured maxima
        ev = T.evaluate(model, loader, "cpu", test.exact)
    cpu_ranges = [float(m.max_abs) for m in acts]
    print(f"test accuracy {ev['accuracy']:.2%} on {ev['n']} images (exact subset "
          f"{ev['exact_accuracy']:.2%} of {ev['exact_n']}); {time.time() - t0:.0f} s", flush=True)

    os.makedirs(a.out, exist_ok=True)
    onnx_path = os.path.join(a.out, f"{a.name}.onnx")
    m = E.export(model, onnx_path, "cifar10", {"veil.model": a.name})
    xv = next(iter(D.Batches(test.subset(a.verify_samples), "cifar10", a.verify_samples)))[0]
    diff = E.verify(model, m, xv)
    layers = T.layer_cards(m, acts, cpu_ranges)
    for entry, g in zip(layers, gpu_ranges):
        entry["input_range_gpu"] = g

    card_path = os.path.join(a.run, f"{TG.PRESET}.json")
    card = json.load(open(card_path)) if os.path.exists(card_path) else {}
    gpu_test = card.get("test_accuracy", st.get("test_accuracy_gpu"))
    card.update(
        name=a.name, dataset="cifar10",
        dataset_note=("CIFAR-10 (reconstructed copy): exact_subset_accuracy is on the test "
                      "records whose exact_mask byte is 1"),
        test_accuracy=ev["accuracy"], test_n=ev["n"],
        exact_subset_accuracy=ev.get("exact_accuracy"), exact_subset_n=ev.get("exact_n"),
        layers=layers, max_input_range=max(l_["input_range"] for l_ in layers),
        poly_layers=len(layers), onnx_file=os.path.basename(onnx_path),
        onnx_vs_torch_max_abs_diff=diff,
        parameters=sum(q.numel() for q in model.parameters()),
        checked_on_cpu=dict(script="python/check_gpu_run.py", torch_version=torch.__version__,
                            gpu_test_accuracy_on_jpeg_test_images=gpu_test,
                            test_images="original CIFAR-10 test batch",
                            seconds=round(time.time() - t0, 1)))
    card.setdefault("training_command", st.get("command"))
    card.setdefault("history", st.get("history"))
    card.pop("error", None)
    with open(os.path.join(a.out, f"{a.name}.json"), "w") as f:
        json.dump(T._strict_json(card), f, indent=2, allow_nan=False)
    print(f"{a.name}: test accuracy {ev['accuracy'] * 100:.2f}% (GPU, JPEG test images: "
          f"{gpu_test if gpu_test is None else round(gpu_test * 100, 2)}%); max input range "
          f"{card['max_input_range']:.3f} (fit range {layers[0]['fit_range']:g}); onnx diff "
          f"{diff:.2e}; wrote {onnx_path} and {a.name}.json in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

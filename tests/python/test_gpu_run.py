"""The GPU run's pieces on the CPU: the shared-header JPEG data format round-trips, and
scripts/train-gpu.sh's driver (--smoke) trains, writes its weights in parts and a card,
and python/check_gpu_run.py re-exports and verifies the result."""
import json
import os
import sys

import numpy as np
import pytest
import torch

from veil_tools import gpu_data as G
from veil_tools import train_gpu as TG

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DATA = os.path.join(REPO, "gpu-data", "cifar10-jpeg.npz")


def _smooth_images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g)
    x = torch.nn.functional.interpolate(low, size=(32, 32), mode="bilinear", align_corners=False)
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


def test_jpeg_shared_header_round_trip(tmp_path):
    x = _smooth_images(40)
    header, scans = G.encode(x.numpy(), quality=90)
    assert len(scans) == 40 and header.startswith(b"\xff\xd8")
    # the shared header is larger than a scan: storing it once is what makes the file small
    assert len(header) > np.mean([len(s) for s in scans]) / 2
    jpegs = [header + s + G.EOI for s in scans]
    y = G.decode_cpu(jpegs, workers=1)
    assert y.shape == x.shape and y.dtype == torch.uint8
    mae, psnr = G.psnr(y, x)
    assert mae < 4.0 and psnr > 33.0, (mae, psnr)
    # a corrupted scan decodes to something else (the check can fail)
    bad = G.decode_cpu([header + scans[1] + G.EOI], workers=1)
    assert not torch.equal(bad[0], y[0])


def test_parts_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(TG, "PART_BYTES", 1000)
    obj = {"w": torch.arange(1000, dtype=torch.float32), "n": 3}
    names = TG.save_parts(obj, str(tmp_path), "model.pt")
    assert len(names) >= 4 and all(os.path.getsize(tmp_path / n) <= 1000 for n in names)
    back = TG.load_parts(str(tmp_path), "model.pt")
    assert torch.equal(back["w"], obj["w"]) and back["n"] == 3


@pytest.mark.skipif(not os.path.exists(DATA), reason="gpu-data/cifar10-jpeg.npz missing "
                    "(scripts/prepare-gpu-data.sh)")
def test_gpu_script_smoke_and_checker(tmp_path):
    run = tmp_path / "run"
    card = TG.main(["--out", str(run), "--smoke", "--max-steps", "2", "--batch-size", "32",
                    "--threads", "1", "--recal-batches", "2", "--verify-samples", "2"])
    assert "error" not in card, card.get("error")
    assert card["onnx_vs_torch_max_abs_diff"] < 1e-4 and card["poly_layers"] == 17
    assert card["steps_run"] == 2 and card["activation"]["clamp"] == 4.5
    assert (run / "model.pt.part00").exists() and (run / "cifar10-resnet18.json").exists()
    sys.path.insert(0, os.path.join(REPO, "python"))
    import check_gpu_run
    from veil_tools import data as D
    if D.find_dir("cifar10", None) is None:
        pytest.skip("cifar10 batches not found for the checker")
    out = tmp_path / "models"
    assert check_gpu_run.main([str(run), "--out", str(out), "--threads", "1",
                               "--test-limit", "200", "--verify-samples", "2"]) == 0
    checked = json.loads((out / "cifar10-resnet18.json").read_text())
    assert checked["test_n"] == 200 and checked["poly_layers"] == 17
    assert (out / "cifar10-resnet18.onnx").exists()
    # ranges only grow: GPU maxima kept, CPU test images added
    for layer in checked["layers"]:
        assert layer["input_range"] >= layer["input_range_gpu"] - 1e-6

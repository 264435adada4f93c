"""Smoke run of every training preset: train a few batches, export, check, verify."""
import json
import os

import numpy as np
import onnx
import pytest
import torch

from veil_tools import data as D
from veil_tools import export as E
from veil_tools import onnx_ref
from veil_tools import train as T

PRESETS = {
    # name: extra args (narrow widths keep the CIFAR smoke runs fast on 2 cores)
    "mnist-cryptonets": [],
    "mnist-delphi": [],
    "fashion-delphi": [],
    "cifar10-shallow": ["--width", "8"],
    "cifar10-resnet20": ["--width", "4"],
    "cifar10-resnet18": ["--width", "8", "--mixup", "0.2", "--erasing", "0.5", "--ema", "0.9",
                         "--trivialaugment"],
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_smoke_train_export_verify(name, tmp_path):
    dataset = T.N.PRESETS[name]["dataset"]
    if D.find_dir(dataset, None) is None:
        pytest.skip(f"{dataset} files not found (run scripts/setup.sh / see data README)")
    card = T.main(["--model", name, "--smoke", "--out", str(tmp_path), "--no-progress",
                   "--threads", "1"] + PRESETS[name])
    onnx_path = tmp_path / f"{name}.onnx"
    card_path = tmp_path / f"{name}.json"
    assert onnx_path.exists() and card_path.exists()
    on_disk = json.loads(card_path.read_text())
    assert on_disk["name"] == name and on_disk["smoke"] is True
    m = onnx.load(str(onnx_path))
    onnx.checker.check_model(m)
    E.check_format(m)
    # every PolyAct became one Poly node with its measured range
    polys = E.poly_nodes(m)
    assert len(polys) == len(card["layers"]) > 0
    for p, layer in zip(polys, card["layers"]):
        assert abs(p["input_range"] - layer["input_range"]) < 1e-5
        assert p["input_range"] > 0
    # numpy interpreter vs torch on real test images (independent of train.py's own check)
    _, test = D.load(dataset, None)
    x, _ = next(iter(D.Batches(test.subset(6), dataset, 6)))
    got = onnx_ref.run(m, x.numpy())["logits"]
    assert got.shape == (6, 10)
    # train.main already compared the interpreter with torch (export.verify raises
    # AssertionError beyond 1e-4); check the recorded difference as well
    assert card["onnx_vs_torch_max_abs_diff"] < 1e-4
    assert np.all(np.isfinite(got))
    if dataset == "cifar10":
        assert card["exact_subset_accuracy"] is not None and card["exact_subset_n"] > 0
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["veil.dataset"] == dataset


def test_cli_help():
    with pytest.raises(SystemExit) as e:
        T.main(["--help"])
    assert e.value.code == 0


def test_a_presets_trivialaugment_can_be_turned_off():
    """The cifar10-resnet18 preset turns TrivialAugment on; --no-trivialaugment turns it
    off (the CPU schedule's choice), and --trivialaugment on for any preset."""
    base = ["--model", "cifar10-resnet18"]
    assert T.resolve(T.build_parser().parse_args(base))["trivialaugment"] is True
    assert T.resolve(T.build_parser().parse_args(base + ["--no-trivialaugment"]))["trivialaugment"] is False
    shallow = ["--model", "cifar10-shallow"]
    assert T.resolve(T.build_parser().parse_args(shallow))["trivialaugment"] is False
    assert T.resolve(T.build_parser().parse_args(shallow + ["--trivialaugment"]))["trivialaugment"] is True

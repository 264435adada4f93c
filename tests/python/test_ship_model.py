"""python/ship_model.py: a run shipped under another name keeps its weights and reference
logits, renames its metadata and card, and refuses what is not a veil model's run."""
import json
import os
import shutil

import onnx
import pytest
import ship_model as S

from conftest import REPO


def _run(tmp_path, model="mnist-cryptonets"):
    """A shipped model's files copied as if a training run had written them."""
    run = tmp_path / "train" / "run-x"
    run.parent.mkdir()
    shutil.copy(os.path.join(REPO, "models", model + ".onnx"), str(run) + ".onnx")
    shutil.copy(os.path.join(REPO, "models", model + ".json"), str(run) + ".json")
    return str(run)


def test_shipped_model_is_renamed_and_keeps_its_logits(tmp_path):
    run = _run(tmp_path)
    out = S.ship(run, "mnist-renamed", "run-x: a test", str(tmp_path / "models"))
    meta = {p.key: p.value for p in onnx.load(out["onnx"]).metadata_props}
    assert meta["veil.model"] == "mnist-renamed"
    assert meta["veil.dataset"] == "mnist"
    with open(out["card"]) as f:
        card = json.load(f)
    assert card["name"] == "mnist-renamed" and card["onnx_file"] == "mnist-renamed.onnx"
    assert card["trained_as"] == "run-x: a test"
    with open(out["logits"]) as f:
        got = json.load(f)
    with open(os.path.join(REPO, "models", "samples", "mnist-cryptonets-first16-logits.json")) as f:
        ref = json.load(f)
    # The same weights on the same 16 samples, named as the C++ test reads them.
    assert got["model"] == "mnist-renamed.onnx"
    assert got["inputs"] == ref["inputs"]
    assert got["predictions"] == ref["predictions"]
    assert len(got["logits"]) == 16
    for g, r in zip(got["logits"], ref["logits"]):
        assert g == pytest.approx(r, abs=1e-9)


def test_what_is_not_a_model_run_is_refused(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(ValueError, match="a model name is"):
        S.ship(run, "Bad Name", "x", str(tmp_path / "models"))
    with pytest.raises(ValueError, match="does not exist"):
        S.ship(run + "-missing", "ok-name", "x", str(tmp_path / "models"))
    card = json.load(open(run + ".json"))
    card["teacher_only"] = True
    json.dump(card, open(run + ".json", "w"))
    with pytest.raises(ValueError, match="teacher"):
        S.ship(run, "ok-name", "x", str(tmp_path / "models"))
    card.pop("teacher_only")
    card["dataset"] = "cifar10"
    json.dump(card, open(run + ".json", "w"))
    with pytest.raises(ValueError, match="is for 'cifar10'"):
        S.ship(run, "ok-name", "x", str(tmp_path / "models"))
    assert not (tmp_path / "models" / "ok-name.onnx").exists()


def test_an_export_that_does_not_reproduce_torch_is_refused(tmp_path):
    run = _run(tmp_path)
    card = json.load(open(run + ".json"))
    for bad in (None, float("nan"), 0.5):
        card["onnx_vs_torch_max_abs_diff"] = bad
        json.dump(card, open(run + ".json", "w"))
        with pytest.raises(ValueError, match="does not reproduce the trained network"):
            S.ship(run, "ok-name", "x", str(tmp_path / "models"))
    card["onnx_vs_torch_max_abs_diff"] = 1e-6
    json.dump(card, open(run + ".json", "w"))
    m = onnx.load(run + ".onnx")
    poly = next(n for n in m.graph.node if n.op_type == "Poly")
    next(a for a in poly.attribute if a.name == "input_range").f = float("nan")
    onnx.save(m, run + ".onnx")
    with pytest.raises(ValueError, match="input_range = nan"):
        S.ship(run, "ok-name", "x", str(tmp_path / "models"))
    assert not (tmp_path / "models" / "ok-name.onnx").exists()

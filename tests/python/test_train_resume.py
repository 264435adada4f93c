"""--resume continues bit for bit: an interrupted and resumed run ends with exactly the
weights (model, EMA, optimiser state) of an uninterrupted one, and checkpoints in the
pre-resume format (epoch ends only, no RNG states) still load."""
import math

import pytest
import torch

from veil_tools import data as D
from veil_tools import train as T

# mnist-cryptonets: 640 images, batch 128 -> 5 steps an epoch, 3 epochs. MixUp, erasing and
# EMA make every RNG (numpy, the augmentation generator, the loader's generator) matter.
MNIST = ["--model", "mnist-cryptonets", "--train-limit", "640", "--epochs", "3"]
RNG_HEAVY = ["--mixup", "0.2", "--erasing", "0.5", "--ema", "0.9"]
# cifar10-resnet20 smoke (4 batches, 1 epoch): TrivialAugment draws from torch's global RNG
CIFAR = ["--model", "cifar10-resnet20", "--smoke", "--width", "4", "--trivialaugment",
         "--mixup", "0.2", "--erasing", "0.5"]


_LOADED = {}
_real_load = D.load


@pytest.fixture(autouse=True)
def _cached_data(monkeypatch):
    """Read each data set once per module (CIFAR's .xz batches take ~20 s): the runs only
    read the splits."""
    def load(dataset, data_dir=None):
        key = (dataset, data_dir)
        if key not in _LOADED:
            _LOADED[key] = _real_load(dataset, data_dir)
        return _LOADED[key]
    monkeypatch.setattr(T.D, "load", load)


def _run(args, tmp, tag, extra=()):
    ck = tmp / f"{tag}.pt"
    return T.main(list(args) + ["--checkpoint", str(ck), "--out", str(tmp / tag),
                                "--no-progress", "--threads", "1"] + list(extra)), ck


def _load(path):
    return T._load_checkpoint(str(path), "cpu")


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _assert_same_run(ck_a, ck_b):
    a, b = _load(ck_a), _load(ck_b)
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"]
    _assert_same_state(a["model"], b["model"])
    if "ema" in a:
        _assert_same_state(a["ema"], b["ema"])
    sa, sb = a["opt"]["state"], b["opt"]["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        for name, v in sa[k].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(sb[k][name])), (k, name)
    drop = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert drop(a["history"]) == drop(b["history"])


def _need(dataset):
    if D.find_dir(dataset, None) is None:
        pytest.skip(f"{dataset} files not found")


@pytest.mark.parametrize("args,stop", [(MNIST + RNG_HEAVY, 7), (CIFAR, 2), (CIFAR + ["--bf16"], 2)],
                         ids=["mnist-mid-epoch", "cifar-trivialaugment", "cifar-bf16"])
def test_resume_mid_epoch_is_bit_identical(args, stop, tmp_path):
    _need(T.N.PRESETS[args[1]]["dataset"])
    card_a, ck_a = _run(args, tmp_path, "a")
    # checkpoint after every step as well (time-based checkpoints must not perturb the run)
    res, ck_b = _run(args, tmp_path, "b", ["--stop-after-steps", str(stop),
                                           "--checkpoint-minutes", "1e-9"])
    assert res == {"stopped_at_step": stop}
    mid = _load(ck_b)
    assert mid["step"] == stop and mid["pos"] > 0 and "rng" in mid
    # the interrupted state differs from the final one (the test can fail)
    assert not all(torch.equal(v, _load(ck_a)["model"][k]) for k, v in mid["model"].items())
    card_b, _ = _run(args, tmp_path, "b", ["--resume"])
    _assert_same_run(ck_a, ck_b)
    assert card_a["test_accuracy"] == card_b["test_accuracy"]
    # the card's times cover the whole schedule, the steps before the interruption too
    end = _load(ck_b)
    assert end["t_train"] > mid["t_train"] > 0
    assert card_b["train_seconds"] == round(end["t_train"], 1)
    assert card_b["epochs_wall_seconds"] == round(sum(h["seconds"] for h in end["history"]), 1)


def test_resume_from_old_format_checkpoint(tmp_path):
    """Epoch-end checkpoints written before mid-epoch resume existed (no pos/rng/order)."""
    _need("mnist")
    _run(MNIST, tmp_path, "a")
    res, ck_b = _run(MNIST, tmp_path, "b", ["--stop-after-steps", "5"])  # = end of epoch 1
    assert res == {"stopped_at_step": 5}
    ck = _load(ck_b)
    assert ck["pos"] == 0 and ck["epoch"] == 1
    old = {k: ck[k] for k in ("model", "opt", "epoch", "step", "history", "gen", "args",
                              "t_train")}
    torch.save(old, ck_b)
    # no MixUp/erasing: the loader's generator (saved in the old format) is the only RNG
    # drawn from, so even the old format resumes exactly
    _run(MNIST, tmp_path, "b")  # implicit resume (checkpoint exists)
    _assert_same_run(tmp_path / "a.pt", ck_b)


def test_resume_requires_checkpoint(tmp_path):
    with pytest.raises(SystemExit):
        T.main(MNIST + ["--resume", "--checkpoint", str(tmp_path / "none.pt"),
                        "--out", str(tmp_path), "--no-progress", "--threads", "1"])


def test_bf16_trains_differently_exports_float32_and_keeps_its_precision(tmp_path):
    """--bf16 changes the arithmetic of training (so the two runs differ), the export is the
    float32 network (verified against torch as usual), and a checkpoint resumes only in the
    precision it was written in, with an error that says so."""
    _need("cifar10")
    card32, ck32 = _run(CIFAR, tmp_path, "f32")
    card16, ck16 = _run(CIFAR + ["--bf16"], tmp_path, "b16")
    assert card16["hyperparameters"]["precision"].startswith("bf16")
    assert "precision" not in card32["hyperparameters"]
    a, b = _load(ck32)["model"], _load(ck16)["model"]
    assert not all(torch.equal(a[k], b[k].contiguous()) for k in a)
    assert all(b[k].dtype == a[k].dtype for k in a)
    assert card16["onnx_vs_torch_max_abs_diff"] < 1e-3
    res, ck = _run(CIFAR + ["--bf16"], tmp_path, "mix", ["--stop-after-steps", "2"])
    assert res == {"stopped_at_step": 2}
    with pytest.raises(SystemExit, match="--bf16"):
        _run(CIFAR, tmp_path, "mix", ["--resume"])


def test_compact_checkpoint_is_half_the_size_and_resumes_closely(tmp_path):
    """--compact-checkpoint (for keeping a long run in git between sessions): float16
    weights and EMA, bfloat16 optimiser buffers (Adam's here); a run resumed from it ends near the uninterrupted one."""
    _need("mnist")
    args = MNIST + ["--ema", "0.9"]
    _run(args, tmp_path, "a")
    small = tmp_path / "small.pt"
    res, ck_b = _run(args, tmp_path, "b", ["--stop-after-steps", "7",
                                           "--compact-checkpoint", str(small)])
    assert res == {"stopped_at_step": 7}
    full, compact = _load(ck_b), _load(small)
    assert compact["compact"] and not full.get("compact")
    assert (compact["step"], compact["pos"]) == (full["step"], full["pos"])
    half = [(full[p], compact[p], torch.float16, 1e-3) for p in ("model", "ema")]
    half += [(full["opt"]["state"][i], compact["opt"]["state"][i], torch.bfloat16, 8e-3)
             for i in full["opt"]["state"]]
    for f, c, dtype, rtol in half:
        for k, v in f.items():
            if torch.is_tensor(v) and v.is_floating_point():
                assert c[k].dtype == (dtype if v.dim() >= 2 else v.dtype), k
                assert torch.allclose(c[k].float(), v.float(), rtol=rtol, atol=1e-6), k
    assert small.stat().st_size < 0.55 * ck_b.stat().st_size
    # resume from the compact copy in place of the full checkpoint
    ck_b.write_bytes(small.read_bytes())
    _run(args, tmp_path, "b", ["--resume"])
    a, b = _load(tmp_path / "a.pt"), _load(ck_b)
    assert b["step"] == a["step"] and not b.get("compact")
    keys = [k for k, v in a["model"].items() if v.is_floating_point()]
    assert all(b["model"][k].dtype == a["model"][k].dtype for k in keys)
    drift = math.sqrt(sum(float((b["model"][k] - a["model"][k]).norm()) ** 2 for k in keys)
                      / sum(float(a["model"][k].norm()) ** 2 for k in keys))
    assert 0 < drift < 0.01, drift

"""Models written the ordinary PyTorch way, exported by stock torch.onnx.export, imported by veil.

Each zoo model writes the common layers one of the standard ways (nn.Sequential, module and
functional forms; avg_pool2d's Pad, F.pad, x.view(n, -1), torch.flatten, x.reshape,
x.mean over H and W, MatMul + Add, grouped and depthwise Conv, Dropout, affine maps by
constants, polynomial activations written with Mul/Add). Every model is exported at
several opsets with plain torch.onnx.export (never veil's exporter) and evaluated by
veil (build/tests/veil_onnx_check): the imported graph and the lowered network must match
torch in the clear, and the encrypted evaluation (128-bit CKKS, latency mode) must match
it within CKKS precision. The `veil` command itself imports one of them end to end.
"""
import json
import os
import re
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("VEIL_BUILD_DIR", os.path.join(REPO, "build"))
CHECK = os.path.join(BUILD, "tests", "veil_onnx_check")
VEIL = os.path.join(BUILD, "veil")

# torch 1.13 exports opsets 7..17; the zoo covers the range torch users meet.
OPSETS = [op for op in (11, 13, 17) if op <= torch.onnx._constants.ONNX_MAX_OPSET]

# The exporter's tracer and constant-folding notes are not what these tests check.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def needs(path):
    if not os.path.exists(path):
        pytest.skip(f"{path} is not built (cmake --build build --target veil veil_onnx_check)")


class Square(nn.Module):
    def forward(self, x):
        return x * x


class Quad(nn.Module):
    """a*x*x + b*x + c, written with Mul/Add as a user would."""

    def forward(self, x):
        return 0.25 * x * x + 0.5 * x + 0.125


def sequential():
    # nn.Sequential with modules; AvgPool2d exports a zero-width Pad before AveragePool.
    return nn.Sequential(
        nn.Conv2d(1, 4, 5, stride=2, padding=1), Square(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


class Functional(nn.Module):
    """Functional forms: F.conv2d-style modules, F.avg_pool2d, x.view(n, -1), x @ W + b."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3)
        self.c2 = nn.Conv2d(4, 6, 3, stride=2)
        self.w = nn.Parameter(torch.randn(6 * 6 * 6, 10) * 0.05)
        self.b = nn.Parameter(torch.randn(10) * 0.1)

    def forward(self, x):
        h = self.c1(x)
        x = F.avg_pool2d(0.25 * h ** 2 + 0.5 * h, 2)
        x = self.c2(x)
        x = x * x
        x = x.view(x.size(0), -1)
        return x @ self.w + self.b


class Padded(nn.Module):
    """Pads: avg_pool2d with padding (count_include_pad), ZeroPad2d and F.pad before Conv,
    a non-zero constant pad, a pool with count_include_pad=False and no padding."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 3, 3)
        self.c2 = nn.Conv2d(3, 4, 3)
        self.c3 = nn.Conv2d(4, 4, 3)
        self.pad = nn.ZeroPad2d((1, 2, 0, 1))
        self.fc = nn.Linear(4 * 3 * 5, 10)

    def forward(self, x):
        x = F.avg_pool2d(self.c1(x), 3, stride=2, padding=1)       # 26 -> 13
        x = self.c2(self.pad(x * x))                                # 14x16 -> 12x14
        x = F.pad(x, (1, 1, 1, 1), value=0.5)                       # 14x16
        x = F.avg_pool2d(self.c3(x), 2, count_include_pad=False)    # 12x14 -> 6x7
        x = F.avg_pool2d(F.pad(x * x, (1, 2, 1, 0)), 2)             # 7x10 -> 3x5
        return self.fc(torch.flatten(x, 1))


class Grouped(nn.Module):
    """Grouped and depthwise Conv, BatchNorm, x.reshape(n, -1)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, stride=2)
        self.g = nn.Conv2d(4, 8, 3, groups=2)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 5 * 5, 10)
        self.act = Quad()

    def forward(self, x):
        x = self.act(self.c1(x))
        x = self.bn(self.dw(self.g(x)))
        x = F.avg_pool2d(self.act(x), 2)
        return self.fc(x.reshape(x.shape[0], -1))


class MeanPool(nn.Module):
    """Global average pooling as x.mean((2, 3)) and as AdaptiveAvgPool2d(1)."""

    def __init__(self, adaptive):
        super().__init__()
        self.adaptive = adaptive
        self.c1 = nn.Conv2d(1, 6, 5, stride=2)
        self.c2 = nn.Conv2d(6, 12, 3)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        x = self.c2(self.c1(x) ** 2)
        x = x * x
        x = self.gap(x).flatten(1) if self.adaptive else x.mean((2, 3))
        return self.fc(x)


class Affine(nn.Module):
    """Affine maps by constants around linear layers, Dropout, Identity, a per-channel scale."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, stride=2)
        self.drop = nn.Dropout(0.3)
        self.scale = nn.Parameter(torch.rand(4, 1, 1) + 0.5)
        self.shift = nn.Parameter(torch.randn(1, 4, 1, 1) * 0.1)
        self.fc1 = nn.Linear(4 * 6 * 6, 16)
        self.fc2 = nn.Linear(16, 10)
        self.id = nn.Identity()

    def forward(self, x):
        x = (x - 0.1307) / 0.3081                    # normalisation written in forward
        x = self.c1(x) / 2 - 0.5                   # folded into the conv
        x = F.avg_pool2d(-(x * x), 2)
        x = x * self.scale + self.shift              # per channel: a batch norm
        x = self.drop(self.id(torch.flatten(x, 1)))
        x = self.fc1(x) * 3.0
        return self.fc2(x * x)


class Residual(nn.Module):
    """x + conv(act(conv(x))), then global average pooling."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.c1 = nn.Conv2d(8, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x * x
        h = self.c1(x)
        x = x + self.c2(h * h)
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


class PreActDown(nn.Module):
    """A pre-activation downsampling block (He et al. 2016): bn, act, then a strided 3x3 conv
    branch and a strided 1x1 projection shortcut of the same pre-activated input."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.c1 = nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.shortcut = nn.Conv2d(4, 8, 1, stride=2, bias=False)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        o = self.bn1(x)
        o = o * o
        h = self.bn2(self.c1(o))
        x = self.c2(h * h) + self.shortcut(o)
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


ZOO = {
    "sequential": sequential,
    "functional": Functional,
    "padded": Padded,
    "grouped": Grouped,
    "mean": lambda: MeanPool(False),
    "adaptive": lambda: MeanPool(True),
    "affine": Affine,
    "residual": Residual,
    "preact": PreActDown,
}


def build(name):
    torch.manual_seed(sum(map(ord, name)))
    m = ZOO[name]()
    for mod in m.modules():  # give the batch norms non-trivial statistics
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
    return m.eval()


def export(model, path, opset, constant_folding=True):
    torch.onnx.export(model, torch.rand(1, 1, 28, 28), path, opset_version=opset,
                      do_constant_folding=constant_folding,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})


def images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g)  # pixel / 255, as veil feeds a stock model


def reference(model, x):
    import copy
    with torch.no_grad():
        return copy.deepcopy(model).double()(x.double()).numpy()


def veil_check(tmp_path, model_path, x, encrypted=False):
    inputs = tmp_path / "inputs.f32"
    x.numpy().astype("<f4").tofile(inputs)
    args = [CHECK, str(model_path), str(inputs)] + (["--encrypted"] if encrypted else [])
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    result = json.loads(out.stdout)
    assert "error" not in result, result["error"]
    return result


def rel_err(got, want):
    got, want = np.asarray(got), np.asarray(want)
    return float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want)))))


# Each opset, and one export without torch's constant folding (more Constant, Shape and
# Transpose nodes left for veil to fold).
VARIANTS = [(op, True) for op in OPSETS] + [(OPSETS[-1], False)]


@pytest.mark.parametrize("opset,folding", VARIANTS, ids=[f"opset{op}{'' if f else '-nofold'}"
                                                         for op, f in VARIANTS])
@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_imports_and_matches_torch_in_the_clear(tmp_path, name, opset, folding):
    needs(CHECK)
    model = build(name)
    path = tmp_path / f"{name}-{opset}.onnx"
    export(model, str(path), opset, folding)
    x = images(3)
    want = reference(model, x)
    result = veil_check(tmp_path, path, x)
    # float32 constants in the file against torch in double: about 1e-7 relative.
    assert rel_err(result["graph"], want) < 1e-5
    assert rel_err(result["network"], want) < 1e-5
    if name in ("residual", "preact"):
        assert "Add" in result["nodes"]  # the skip connection is an edge of the graph


# One opset per model keeps the encrypted part short (each run generates keys).
@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_matches_torch_encrypted(tmp_path, name):
    needs(CHECK)
    model = build(name)
    opset = OPSETS[sorted(ZOO).index(name) % len(OPSETS)]
    path = tmp_path / f"{name}.onnx"
    export(model, str(path), opset)
    x = images(2, seed=1)
    want = reference(model, x)
    result = veil_check(tmp_path, path, x, encrypted=True)
    assert "encrypted_error" not in result, result["encrypted_error"]
    assert rel_err(result["encrypted"], want) < 1e-3  # CKKS at scale 2^40: ~1e-5
    assert (np.argmax(result["encrypted"], 1) == np.argmax(want, 1)).all()


def test_veil_command_runs_a_stock_export(tmp_path):
    """What a user does: export with torch, then `veil plan` and `veil infer` on an image."""
    needs(VEIL)
    from PIL import Image
    model = build("sequential")
    path = tmp_path / "user-model.onnx"
    export(model, str(path), 13)
    png = os.path.join(REPO, "models", "samples", "mnist-0-label7.png")
    pixels = np.asarray(Image.open(png).convert("L"), dtype=np.float64) / 255.0
    want = reference(model, torch.from_numpy(pixels)[None, None].float())[0]
    plan = subprocess.run([VEIL, "plan", "--model", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert plan.returncode == 0, plan.stderr
    infer = subprocess.run([VEIL, "infer", "--model", str(path), "--input", png, "--top", "10"],
                           capture_output=True, text=True, timeout=300)
    assert infer.returncode == 0, infer.stderr
    assert f"class: {int(np.argmax(want))} " in infer.stdout
    scores = dict(re.findall(r"\s(\d) (-?\d+\.\d+)", infer.stdout.split("top-10:")[1].splitlines()[0]))
    got = np.array([float(scores[str(k)]) for k in range(10)])
    assert rel_err(got, want) < 1e-2


def test_residual_export_runs_in_the_hybrid_mode(tmp_path):
    """A stock export of a residual network, through the hybrid mode (HE preprocessing and
    secret-shared online stage): its activation ranges come from calibration images, and
    the class must be torch's on sample images."""
    needs(VEIL)
    from PIL import Image
    model = build("residual")
    path = tmp_path / "residual.onnx"
    export(model, str(path), 13)
    calib = os.path.join(REPO, "models", "samples", "mnist-test-first16-images-idx3-ubyte")
    for name in ["mnist-0-label7.png", "mnist-1-label2.png", "mnist-2-label1.png"]:
        png = os.path.join(REPO, "models", "samples", name)
        pixels = np.asarray(Image.open(png).convert("L"), dtype=np.float64) / 255.0
        want = reference(model, torch.from_numpy(pixels)[None, None].float())[0]
        out = subprocess.run([VEIL, "infer", "--model", str(path), "--mode", "hybrid",
                              "--calibration", calib, "--input", png],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert f"class: {int(np.argmax(want))} " in out.stdout, (out.stdout, want)

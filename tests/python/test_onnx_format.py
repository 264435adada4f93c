"""ONNX export format and the numpy reference interpreter."""
import numpy as np
import onnx
import pytest
import torch
from torch import nn

from veil_tools import export as E
from veil_tools import onnx_ref
from veil_tools.polyact import PolyAct, track_range


class Tiny(nn.Module):
    """Exercises depthwise conv, strides/pads, avgpool, residual Add, GAP, Gemm, Poly."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.a1 = PolyAct([0.1, 0.5, 0.2], 4.0, "relu", trainable_coefficients=True)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.a2 = PolyAct([0.73, 0.5, 0.09, 0.0, -0.0007], 6.0, "softplus")
        self.pool = nn.AvgPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        h = self.a1(self.bn1(self.c1(x)))
        h = h + self.a2(self.bn2(self.dw(h)))
        h = self.gap(self.pool(h))
        return self.fc(torch.flatten(h, 1))


def _trained_tiny():
    torch.manual_seed(0)
    m = Tiny()
    m.train()
    for _ in range(3):
        m(torch.randn(16, 3, 32, 32))
    with torch.no_grad():
        m.a1.s.fill_(1.3)
        m.a2.b.fill_(0.2)
    m.eval()
    with track_range(m):
        m(torch.randn(16, 3, 32, 32))
    return m


def test_export_contract_and_interpreter(tmp_path):
    m = _trained_tiny()
    path = str(tmp_path / "tiny.onnx")
    proto = E.export(m, path, "cifar10")
    loaded = onnx.load(path)
    onnx.checker.check_model(loaded)
    ops = {(n.domain, n.op_type) for n in loaded.graph.node}
    assert ("veil", "Poly") in ops
    assert ("", "BatchNormalization") in ops          # BN is not folded by the export
    assert ("", "Add") in ops
    assert all(d == "veil" or t in E.ALLOWED_OPS for d, t in ops)
    assert {o.domain: o.version for o in loaded.opset_import} == {"": 13, "veil": 1}
    meta = {p.key: p.value for p in loaded.metadata_props}
    assert meta["veil.dataset"] == "cifar10" and meta["veil.input_shape"] == "3,32,32"
    assert meta["veil.version"] == "1" and len(meta["veil.classes"].split(",")) == 10
    assert len(meta["veil.normalize.mean"].split(",")) == 3
    polys = E.poly_nodes(loaded)
    assert len(polys) == 2
    assert np.allclose(polys[0]["coefficients"], m.a1.folded_coefficients(), atol=1e-6)
    assert abs(polys[0]["input_range"] - float(m.a1.max_abs)) < 1e-5
    assert polys[1]["fit_range"] == 6.0 and polys[1]["base"] == "softplus"
    # dynamic batch + interpreter vs torch
    for n in (1, 5):
        x = torch.randn(n, 3, 32, 32)
        assert E.verify(m, loaded, x) < 1e-4


def test_interpreter_detects_wrong_model(tmp_path):
    m = _trained_tiny()
    proto = E.export(m, str(tmp_path / "t.onnx"), "cifar10")
    # corrupt a Poly coefficient: verify must fail
    for n in proto.graph.node:
        if n.op_type == "Poly":
            for a in n.attribute:
                if a.name == "coefficients":
                    a.floats[1] += 0.5
            break
    with pytest.raises(AssertionError):
        E.verify(m, proto, torch.randn(4, 3, 32, 32))


def test_format_check_rejects_relu():
    class R(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x):
            return torch.relu(self.fc(torch.flatten(x, 1)))

    with pytest.raises(ValueError, match="Relu"):
        E.export(R().eval(), "/dev/null", "mnist")


def test_conv_reference_matches_torch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 9, 11))
    w = rng.standard_normal((6, 2, 3, 5))
    b = rng.standard_normal(6)
    got = onnx_ref.conv(x, w, b, strides=(2, 1), pads=(1, 2, 0, 1), group=2)
    xt = torch.nn.functional.pad(torch.tensor(x), (2, 1, 1, 0))
    ref = torch.nn.functional.conv2d(xt, torch.tensor(w), torch.tensor(b), stride=(2, 1), groups=2)
    assert np.allclose(got, ref.numpy(), atol=1e-10)


def test_range_calibration_is_exact_and_in_range(tmp_path):
    from veil_tools import calibrate as C

    m = _trained_tiny()
    proto = E.export(m, str(tmp_path / "t.onnx"), "cifar10")
    # pretend the first activation saw inputs up to 2.5 x its fit range
    node = next(n for n in proto.graph.node if n.op_type == "Poly")
    for a in node.attribute:
        if a.name == "input_range":
            a.f = 10.0
    import copy
    before = copy.deepcopy(proto)
    recs = C.calibrate(proto)
    assert abs(recs[0]["scale"] - 0.4) < 1e-6 and recs[0]["range_after"] == pytest.approx(4.0)
    assert recs[1]["scale"] == 1.0                       # the second was inside already
    onnx.checker.check_model(proto)
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    y0 = onnx_ref.run(before, x)["logits"]
    y1 = onnx_ref.run(proto, x)["logits"]
    assert np.abs(y0 - y1).max() < 1e-5 * max(1.0, np.abs(y0).max())
    assert E.poly_nodes(proto)[0]["input_range"] == pytest.approx(4.0)

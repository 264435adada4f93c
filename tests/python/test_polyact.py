"""PolyAct module: folding, trainability, and the range penalty on held-out data."""
import math

import pytest
import torch
from torch import nn

from veil_tools import activations as A
from veil_tools.polyact import (PolyAct, enable_penalty, measure_ranges, range_penalty,
                                track_range)


def test_folded_coefficients_match_forward():
    torch.manual_seed(0)
    act = PolyAct(A.PRISM_POLYS["prism"], 6.0, "softplus")
    with torch.no_grad():
        act.s.fill_(1.7)
        act.b.fill_(-0.3)
    x = torch.linspace(-6, 6, 101)
    c = act.folded_coefficients()
    y = sum(ck * x ** k for k, ck in enumerate(c))
    assert torch.allclose(act(x), y, atol=1e-5)
    assert abs(c[0] - (1.7 * 0.738099333 - 0.3)) < 1e-6


def test_trainable_flags():
    fixed = PolyAct([0, 0, 1], 4.0, "square")
    train = PolyAct([0, 0, 1], 4.0, "square", trainable_coefficients=True)
    names_fixed = {n for n, _ in fixed.named_parameters()}
    names_train = {n for n, _ in train.named_parameters()}
    assert names_fixed == {"s", "b"}
    assert names_train == {"coefficients", "s", "b"}


def test_track_range():
    act = PolyAct([0, 0, 1], 4.0)
    with track_range(act):
        act(torch.tensor([0.5, -3.25, 1.0]))
        act(torch.tensor([2.0]))
    assert float(act.max_abs) == 3.25
    act(torch.tensor([10.0]))          # not tracking any more
    assert float(act.max_abs) == 3.25


def _synthetic(penalty: float, seed: int, B: float = 2.0, margin: float = 0.4):
    """Small classification task whose first layer starts with large pre-activations."""
    g = torch.Generator().manual_seed(seed)
    xtr = torch.rand(2000, 8, generator=g) * 2 - 1
    xte = torch.rand(1000, 8, generator=g) * 2 - 1
    f = lambda x: ((x[:, 0] * x[:, 1] + x[:, 2]) > 0).long()  # noqa: E731
    ytr, yte = f(xtr), f(xte)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32),
                          PolyAct(A.fit("relu", 2, B, "lsq", n=2001).coefficients, B, "relu",
                                  trainable_coefficients=True),
                          nn.Linear(32, 2))
    with torch.no_grad():
        model[0].weight.mul_(5.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    enable_penalty(model, penalty > 0, "mean+max", margin)
    steps, total = 0, 30 * 20
    for _ in range(30):
        perm = torch.randperm(2000, generator=g)
        for i in range(0, 2000, 100):
            for grp in opt.param_groups:
                grp["lr"] = 1e-2 * 0.5 * (1 + math.cos(math.pi * steps / total))
            idx = perm[i:i + 100]
            loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            loss = loss + penalty * range_penalty(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
    enable_penalty(model, False)
    held_out = measure_ranges(model, [[(xte, yte)]])[0]
    with torch.no_grad():
        acc = float((model(xte).argmax(1) == yte).float().mean())
    return held_out, acc


@pytest.mark.parametrize("seed", [0, 1])
def test_range_penalty_keeps_heldout_inside_interval(seed):
    B = 2.0
    free, acc_free = _synthetic(0.0, seed, B)
    pen, acc_pen = _synthetic(1.0, seed, B)
    assert free > 2 * B, f"without penalty the range should blow up (got {free})"
    assert pen <= B, f"with penalty the held-out range {pen} must stay inside [-{B}, {B}]"
    assert acc_pen > 0.9 and acc_free > 0.9


def test_penalty_value():
    act = PolyAct([0, 0, 1], 2.0)
    enable_penalty(act, True, "mean", 0.0)
    act(torch.tensor([[1.0, 3.0], [-4.0, 0.0]]))
    # excesses: 0, 1, 2, 0 -> mean of squares = 5/4
    assert abs(float(range_penalty(act)) - 1.25) < 1e-6
    enable_penalty(act, True, "mean+max", 0.0)
    act(torch.tensor([[1.0, 3.0], [-4.0, 0.0]]))
    # per-channel max |x|: 4, 3 -> excess 2, 1 -> mean of squares 2.5
    assert abs(float(range_penalty(act)) - (1.25 + 2.5)) < 1e-6


@pytest.mark.parametrize("shape", [(8, 16, 32, 32), (6, 24, 5, 5), (3, 7, 3, 3)])
def test_channels_last_penalty_and_bf16_input_match_the_plain_path(shape):
    """--bf16 trains channels-last under autocast: the penalty's per-channel maxima take a
    blocked reduction there (4-pixel rows, or 1 where N*H*W is not a multiple of 4), and a
    bfloat16 input is evaluated in float32. Both must agree with the plain NCHW path, the
    gradient included."""
    torch.manual_seed(0)
    x = (torch.randn(shape) * 3).requires_grad_(True)
    # a distinct extreme per channel, so the max's gradient has one owner per channel
    with torch.no_grad():
        for c in range(shape[1]):
            x[c % shape[0], c, c % shape[2], 0] = 9.0 + c
    xl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    act = PolyAct([0.1, 0.5, 0.3], 2.0)
    enable_penalty(act, True, "mean+max", 0.0)
    y = act(x)
    pen = range_penalty(act)
    yl = act(xl)
    pen_l = range_penalty(act)
    assert torch.allclose(y, yl) and torch.allclose(pen, pen_l, rtol=1e-6)
    (pen + y.sum()).backward()
    (pen_l + yl.sum()).backward()
    assert torch.allclose(x.grad, xl.grad, rtol=1e-5, atol=1e-7)
    yb = act(x.detach().to(torch.bfloat16))
    assert yb.dtype == torch.float32
    assert torch.allclose(yb, act(x.detach().to(torch.bfloat16).float()))


def test_measure_ranges_leaves_out_diverged_inputs():
    # x -> x^2 -> x^2: inputs within [-1.5, 1.5] stay within 2.25 at the second
    # activation; 1e30 overflows float32 there, so its output is inf.
    model = nn.Sequential(PolyAct([0, 0, 1], 2.0), PolyAct([0, 0, 1], 4.0))
    xa = torch.tensor([[0.5], [-1.5]])
    xb = torch.tensor([[1.0], [1e30]])
    r = measure_ranges(model, [[(xa, None)], [(xb, None)]])
    assert r == [1.5, 2.25]
    assert r.excluded == [0, 1]
    assert [float(a.max_abs) for a in model] == [1.5, 2.25]   # what the export writes
    # A finite but runaway input (beyond 100 x the fit range) is left out too...
    assert measure_ranges(model, [[(torch.tensor([[1.0], [300.0]]), None)]]).excluded == [1]
    # ...and none at all when every input behaves.
    ok = measure_ranges(model, [[(torch.tensor([[1.0], [-3.0]]), None)]])
    assert ok == [3.0, 9.0] and ok.excluded == [0]

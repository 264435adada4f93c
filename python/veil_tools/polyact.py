"""PolyAct: ``y = s * p(x) + b`` (PRISM's modular polynomial activation) for PyTorch.

* ``p`` has fixed (buffer) or trainable (parameter) coefficients, ascending powers.
* ``s`` and ``b`` are trainable scalars per instance (fold into the exported node).
* ``fit_range`` B: the interval [-B, B] the polynomial was fitted on. ``range_penalty``
  returns mean(relu(|x| - B)^2) of the last pre-activations, to be added to the loss.
* ``track_range`` context: records the largest |pre-activation| seen (``max_abs``).
* At ONNX export time (``export_mode``) the forward pass emits one ``veil::Poly`` node.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, List, Optional, Sequence

import torch
from torch import nn


class _PolyFunction(torch.autograd.Function):
    """Evaluates a folded polynomial; exports as one ``veil::Poly`` node."""

    @staticmethod
    def forward(ctx, x, coefficients, input_range, fit_range, base):  # noqa: D401
        y = torch.zeros_like(x)
        for c in reversed(coefficients):
            y = y * x + c
        return y

    @staticmethod
    def symbolic(g, x, coefficients, input_range, fit_range, base):
        out = g.op("veil::Poly", x,
                   coefficients_f=[float(c) for c in coefficients],
                   input_range_f=float(input_range),
                   fit_range_f=float(fit_range),
                   base_s=str(base))
        out.setType(x.type())
        return out


class PolyAct(nn.Module):
    def __init__(self, coefficients: Sequence[float], fit_range: float, base: str = "poly",
                 trainable_coefficients: bool = False, scale_shift: bool = True,
                 clamp: Optional[float] = None):
        super().__init__()
        c = torch.tensor([float(v) for v in coefficients], dtype=torch.float32)
        if trainable_coefficients:
            self.coefficients = nn.Parameter(c)
        else:
            self.register_buffer("coefficients", c)
        if scale_shift:
            self.s = nn.Parameter(torch.ones(()))
            self.b = nn.Parameter(torch.zeros(()))
        else:
            self.register_buffer("s", torch.ones(()))
            self.register_buffer("b", torch.zeros(()))
        self.fit_range = float(fit_range)
        self.base = base
        self.clamp = clamp                     # training-time clamp (PRISM used +-4.5)
        self.register_buffer("max_abs", torch.zeros(()))  # measured max |input|
        self.tracking = False
        self.last_input_max = None  # per input of the last tracked batch (measure_ranges)
        self.export_mode = False
        self.keep_penalty = False
        self.penalty_kind = "mean+max"  # or "mean"
        self.penalty_margin = 0.0       # penalise beyond (1 - margin) * fit_range
        self._penalty = None

    @property
    def degree(self) -> int:
        return int(self.coefficients.numel()) - 1

    def folded_coefficients(self) -> List[float]:
        """coefficients of s * p(x) + b (what the ONNX node stores)."""
        c = (self.s.detach() * self.coefficients.detach()).double().tolist()
        c[0] += float(self.b.detach())
        return [float(v) for v in c]

    def forward(self, x):
        if x.dtype == torch.bfloat16:
            # under --bf16 autocast: the polynomial, its range statistics and penalty in
            # float32 (torch's bfloat16 element-wise kernels are slower on the CPU, and
            # the ranges are what calibration and the encrypted plan rely on)
            x = x.float()
        if self.tracking:
            a = x.detach().abs()
            self.last_input_max = a.reshape(a.shape[0] if a.ndim else 1, -1).amax(1)
            self.max_abs = torch.maximum(self.max_abs, self.last_input_max.max().to(self.max_abs))
        if self.export_mode:
            return _PolyFunction.apply(x, self.folded_coefficients(),
                                       float(self.max_abs), self.fit_range, self.base)
        if self.keep_penalty:
            self._penalty = self.penalty(x)
        if self.clamp is not None and self.training:
            x = x.clamp(-self.clamp, self.clamp)
        # s * p(x) + b with s and b folded into the coefficients first (scalar work), then
        # Horner: one multiply and one add per degree over the tensor instead of the two
        # extra passes for s and b (CPU training is bound by such element-wise passes).
        c = self.s * self.coefficients
        c0 = c[0] + self.b
        n = c.numel()
        if n == 1:
            return torch.zeros_like(x) + c0
        y = x * c[n - 1]
        for k in range(n - 2, 0, -1):
            y = (y + c[k]) * x
        return y + c0

    def penalty(self, x):
        """Range penalty of a batch of pre-activations x ([N, C, ...]).

        mean(relu(|x| - T)^2), plus (kind "mean+max") the mean over channels of
        relu(max_batch |x_c| - T)^2, which targets the extremes that decide the measured
        range. T = (1 - margin) * fit_range: the margin leaves room for held-out inputs,
        whose extremes exceed those of a training batch.
        """
        t = (1.0 - self.penalty_margin) * self.fit_range
        a = x.abs()
        pen = (a - t).clamp_min(0).square().mean()
        if self.penalty_kind == "mean+max":
            # the largest |x| of each channel (dimension 1), reduced in place: no transposed copy
            if a.ndim == 4 and a.is_contiguous(memory_format=torch.channels_last):
                # (--bf16 trains channels-last, where [N*H*W, C] is a free view. torch
                # reduces its columns slowly when rows are short (C = 16: 6 ms against 0.2
                # for NCHW), so rows of 4 pixels are reduced first: 0.1 ms.)
                c = a.shape[1]
                rows = a.permute(0, 2, 3, 1).reshape(-1, c)
                k = 4 if rows.shape[0] % 4 == 0 else 1
                per_channel = rows.reshape(-1, k * c).amax(dim=0).view(k, c).amax(dim=0)
            elif a.ndim > 1:
                per_channel = a.amax(dim=tuple(d for d in range(a.ndim) if d != 1))
            else:
                per_channel = a.amax().view(1)
            pen = pen + (per_channel - t).clamp_min(0).square().mean()
        return pen

    def extra_repr(self):
        return (f"degree={self.degree}, base={self.base}, fit_range={self.fit_range}, "
                f"trainable={isinstance(self.coefficients, nn.Parameter)}")


def polyacts(model: nn.Module) -> List[PolyAct]:
    return [m for m in model.modules() if isinstance(m, PolyAct)]


def enable_penalty(model: nn.Module, on: bool = True, kind: Optional[str] = None,
                   margin: Optional[float] = None):
    """Make every PolyAct compute its range penalty in forward (see PolyAct.penalty)."""
    if kind is not None and kind not in ("mean", "mean+max"):
        raise ValueError(f"unknown penalty kind {kind!r}")
    for m in polyacts(model):
        m.keep_penalty = on
        m._penalty = None
        if kind is not None:
            m.penalty_kind = kind
        if margin is not None:
            m.penalty_margin = float(margin)


def range_penalty(model: nn.Module) -> torch.Tensor:
    """Sum over PolyAct layers of mean(relu(|x| - B)^2) from the last forward pass."""
    terms = [m._penalty for m in polyacts(model) if m._penalty is not None]
    if not terms:
        return torch.zeros(())
    return torch.stack(terms).sum()


@contextlib.contextmanager
def track_range(model: nn.Module, reset: bool = True):
    acts = polyacts(model)
    for m in acts:
        if reset:
            m.max_abs.zero_()
        m.tracking = True
    try:
        yield acts
    finally:
        for m in acts:
            m.tracking = False


@contextlib.contextmanager
def export_mode(model: nn.Module):
    acts = polyacts(model)
    for m in acts:
        m.export_mode = True
    try:
        yield acts
    finally:
        for m in acts:
            m.export_mode = False


class MeasuredRanges(list):
    """measure_ranges' result: one range per PolyAct, plus ``excluded``, the number of
    inputs left out of the ranges as diverged, one count per loader."""

    excluded: List[int]


# An input diverges when the network's output on it is not finite, or when some
# pre-activation exceeds this many times its layer's fit range: a chain of squares then
# grows without bound (one CIFAR-10 training image went 4.9, 6.5, 16, 34, 407, ... to
# inf through a width-32 ResNet-20 whose other 59,999 images stayed within 4.6).
DIVERGED_FACTOR = 100.0


@torch.no_grad()
def measure_ranges(model: nn.Module, loaders: Iterable, device="cpu",
                   diverged_factor: float = DIVERGED_FACTOR) -> MeasuredRanges:
    """Largest |pre-activation| of every PolyAct over all inputs of all loaders that do not
    diverge (see DIVERGED_FACTOR), also stored in each PolyAct's ``max_abs`` (what the
    export writes as ``input_range``).

    A diverged input has no meaningful output in plaintext either, and one such input
    would otherwise set every later layer's range to inf or nan, which calibration then
    spreads to the whole export; leaving it out keeps the ranges those of the inputs the
    network computes. ``excluded`` says how many were left out, for the card."""
    was_training = model.training
    model.eval()
    acts = polyacts(model)
    limits = torch.tensor([diverged_factor * a.fit_range for a in acts])
    best = torch.zeros(len(acts))
    excluded = []
    # PolyAct's own tracking records each input's largest |x| (last_input_max)
    with track_range(model):
        for loader in loaders:
            n_out = 0
            for xb, _ in loader:
                for a in acts:
                    a.last_input_max = None
                out = model(xb.to(device)).float().cpu()
                if not acts:
                    continue
                r = torch.stack([a.last_input_max.cpu() if a.last_input_max is not None
                                 else torch.zeros(out.shape[0]) for a in acts], 1).nan_to_num(float("inf"))
                ok = torch.isfinite(out.reshape(out.shape[0], -1)).all(1) & (r <= limits).all(1)
                n_out += int((~ok).sum())
                if ok.any():
                    best = torch.maximum(best, r[ok].amax(0))
            excluded.append(n_out)
    model.train(was_training)
    for a, v in zip(acts, best):
        a.max_abs.fill_(float(v))
    result = MeasuredRanges(float(v) for v in best)
    result.excluded = excluded
    return result

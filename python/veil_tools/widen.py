"""Function-preserving widening of a trained network (Net2WiderNet: Chen, Goodfellow and
Shlens, "Net2Net: accelerating learning via knowledge transfer", ICLR 2016).

A narrow checkpoint becomes the starting point of a wider network of the same family
(``train.py --init CK --widen``): the wider network computes the same function, so its
training starts from the narrow one's accuracy instead of from chance.

Every channel space of c channels that grows to c' > c maps new channel j to old channel
j mod c. A tensor dimension that produces channels (a convolution's or linear layer's
output rows, batch-norm vectors) copies the old channel's slice; a dimension that consumes
them (a convolution's or linear layer's input columns) copies it and divides by the number
of copies, so that the next layer's sums are unchanged. The mapping depends on c alone,
which keeps every producer and consumer of a channel space -- including the residual
stream, which several layers write and read -- consistent without knowing the graph.
Polynomial activations act element-wise with per-layer scalars, so copies of a channel
stay copies through them, and batch norm normalises each copy alike.

Copies would receive identical gradients and never part, so the incoming weights of the
new copies get Gaussian noise of ``noise`` times the tensor's standard deviation (the
original channels keep their weights exactly); with noise 0 the function is preserved
exactly, which tests/python/test_widen.py checks.
"""

from __future__ import annotations

from typing import Dict

import torch


def _mapping(c_old: int, c_new: int):
    idx = torch.arange(c_new) % c_old
    counts = torch.bincount(idx, minlength=c_old).to(torch.float32)
    return idx, counts


def widen_state(old: Dict[str, torch.Tensor], new: Dict[str, torch.Tensor], noise: float = 0.0,
                generator: torch.Generator | None = None) -> Dict[str, torch.Tensor]:
    """The state dict ``new`` (whose shapes it takes) filled from the narrower ``old``.

    Raises ValueError naming the tensor when the two are not the same family: a missing or
    extra key, a different rank, or a dimension that shrinks.
    """
    missing = sorted(set(new) - set(old))
    extra = sorted(set(old) - set(new))
    if missing or extra:
        raise ValueError(f"widen: the checkpoint is not this network's family (missing "
                         f"{missing[:3]}, unexpected {extra[:3]})")
    out = {}
    for key, target in new.items():
        t = old[key]
        if t.shape == target.shape:
            out[key] = t.clone()
            continue
        if t.dim() != target.dim() or any(a > b for a, b in zip(t.shape, target.shape)):
            raise ValueError(f"widen: {key} is {tuple(t.shape)} in the checkpoint and "
                             f"{tuple(target.shape)} here; widening only grows channels")
        w = t.to(torch.float32)
        if t.dim() in (2, 4) and t.shape[1] != target.shape[1]:
            # consumed channels: copy and share the weight among the copies
            idx, counts = _mapping(t.shape[1], target.shape[1])
            scale = (1.0 / counts[idx]).view(1, -1, *([1] * (t.dim() - 2)))
            w = w[:, idx] * scale
        if t.dim() >= 1 and t.shape[0] != target.shape[0]:
            # produced channels: copy; the new copies' incoming weights get the noise
            c_old = t.shape[0]
            idx, _ = _mapping(c_old, target.shape[0])
            w = w[idx]  # advanced indexing copies: the noise below leaves `t` alone
            if noise > 0 and t.dim() in (2, 4) and w.numel() > 1:
                sd = float(t.to(torch.float32).std())
                eps = torch.randn(w[c_old:].shape, generator=generator) * (noise * sd)
                w[c_old:] += eps
        if tuple(w.shape) != tuple(target.shape):
            raise ValueError(f"widen: {key} cannot grow from {tuple(t.shape)} to "
                             f"{tuple(target.shape)} (only the first two dimensions are channels)")
        out[key] = w.to(target.dtype)
    return out

"""Range calibration: an exact rescaling that brings every Poly input inside its fit range.

For a ``BatchNormalization -> veil::Poly`` pair whose measured ``input_range`` R exceeds
``fit_range`` B, with k = B / R:

    BN scale  -> k * scale,    BN bias -> k * bias          (so x' = k x, |x'| <= B)
    Poly c_j  -> c_j / k^j                                  (so p'(x') = p(x))
    input_range -> k * R = B

The network computes exactly the same function (up to float rounding), but every
pre-activation the data produced now lies in [-B, B]. This is meant for polynomials with
*trained* coefficients, which approximate nothing and only need bounded inputs; for a
fixed fit (e.g. PRISM's Softplus polynomial) it would hide inputs outside the fitted
interval, so the training driver applies it only with ``--trainable-coeffs``.
"""

from __future__ import annotations

from typing import List

import numpy as np
import onnx
from onnx import numpy_helper


def _init(g, name):
    for i in g.initializer:
        if i.name == name:
            return i
    return None


def calibrate(m: onnx.ModelProto, margin: float = 0.0) -> List[dict]:
    """Rescale in place; returns one record per Poly node (scale 1.0 where untouched)."""
    g = m.graph
    producers = {o: n for n in g.node for o in n.output}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    out = []
    for n in g.node:
        if not (n.domain == "veil" and n.op_type == "Poly"):
            continue
        attrs = {a.name: a for a in n.attribute}
        R, B = attrs["input_range"].f, attrs["fit_range"].f
        rec = dict(node=n.name, range_before=float(R), scale=1.0)
        target = B * (1.0 - margin)
        bn = producers.get(n.input[0])
        if R > target and R > 0 and bn is not None and bn.op_type == "BatchNormalization" \
                and len(consumers.get(n.input[0], [])) == 1:
            k = target / R
            for slot in (1, 2):
                # the exporter de-duplicates equal initializers: give this BN its own copy
                users = sum(i == bn.input[slot] for c in g.node for i in c.input)
                src = _init(g, bn.input[slot])
                if src is not None and users > 1:
                    new = onnx.TensorProto()
                    new.CopyFrom(src)
                    new.name = f"{bn.name}.calibrated.{slot}"
                    g.initializer.append(new)
                    bn.input[slot] = new.name
            sc, bi = _init(g, bn.input[1]), _init(g, bn.input[2])
            if sc is not None and bi is not None:
                sc.CopyFrom(numpy_helper.from_array(
                    (numpy_helper.to_array(sc).astype(np.float64) * k).astype(np.float32), sc.name))
                bi.CopyFrom(numpy_helper.from_array(
                    (numpy_helper.to_array(bi).astype(np.float64) * k).astype(np.float32), bi.name))
                coeffs = [float(c) / k ** j for j, c in enumerate(attrs["coefficients"].floats)]
                del attrs["coefficients"].floats[:]
                attrs["coefficients"].floats.extend(coeffs)
                attrs["input_range"].f = float(R * k)
                rec.update(scale=float(k), range_after=float(R * k))
        out.append(rec)
    return out

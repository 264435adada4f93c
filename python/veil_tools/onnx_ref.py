"""A small numpy interpreter for veil's ONNX op subset (onnxruntime is not available).

Supported: Conv, Gemm, MatMul, BatchNormalization, AveragePool, GlobalAveragePool,
Flatten, Reshape, Add, Mul, Identity, Constant, and the custom veil::Poly node
(plus Relu, for tests only).
"""

from __future__ import annotations

from typing import Dict, Union

import numpy as np
import onnx
from onnx import numpy_helper


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _windows(x, kh, kw, sh, sw, dh=1, dw=1):
    """x [N,C,H,W] (already padded) -> [N,C,OH,OW,kh,kw] view."""
    ek_h, ek_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    v = np.lib.stride_tricks.sliding_window_view(x, (ek_h, ek_w), axis=(2, 3))
    return v[:, :, ::sh, ::sw, ::dh, ::dw]


def conv(x, w, b=None, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1):
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    outs = []
    mg = m // group
    for g in range(group):
        win = _windows(xp[:, g * cg:(g + 1) * cg], kh, kw, strides[0], strides[1],
                       dilations[0], dilations[1])
        outs.append(np.einsum("nchwij,mcij->nmhw", win, w[g * mg:(g + 1) * mg], optimize=True))
    y = np.concatenate(outs, axis=1)
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return y


def avgpool(x, kernel, strides, pads=(0, 0, 0, 0), count_include_pad=0):
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    s = _windows(xp, kernel[0], kernel[1], strides[0], strides[1]).sum(axis=(-1, -2))
    if count_include_pad or not any(pads):
        return s / (kernel[0] * kernel[1])
    ones = np.pad(np.ones((1, 1) + x.shape[2:]), ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    cnt = _windows(ones, kernel[0], kernel[1], strides[0], strides[1]).sum(axis=(-1, -2))
    return s / cnt


def poly(x, coefficients):
    y = np.zeros_like(x)
    for c in reversed(coefficients):
        y = y * x + c
    return y


def run(model: Union[str, onnx.ModelProto], inputs: Union[np.ndarray, Dict[str, np.ndarray]],
        dtype=np.float64) -> Dict[str, np.ndarray]:
    """Evaluate the graph; returns {output name: array}. Computes in ``dtype``."""
    if isinstance(model, str):
        model = onnx.load(model)
    g = model.graph
    env: Dict[str, np.ndarray] = {}
    for init in g.initializer:
        env[init.name] = numpy_helper.to_array(init)
    init_names = set(env)
    real_inputs = [i.name for i in g.input if i.name not in init_names]
    if isinstance(inputs, np.ndarray):
        inputs = {real_inputs[0]: inputs}
    for k, v in inputs.items():
        env[k] = np.asarray(v, dtype=dtype)

    def f(a):
        return a.astype(dtype) if a.dtype.kind == "f" else a

    for node in g.node:
        a = _attrs(node)
        ins = [env[i] if i else None for i in node.input]
        op = (node.domain, node.op_type)
        if op == ("veil", "Poly"):
            y = poly(ins[0], [float(c) for c in a["coefficients"]])
        elif node.domain not in ("", "ai.onnx"):
            raise NotImplementedError(f"{node.domain}::{node.op_type}")
        elif node.op_type == "Conv":
            k = ins[1].shape[2:]
            y = conv(ins[0], f(ins[1]), None if len(ins) < 3 else f(ins[2]),
                     a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0]),
                     a.get("dilations", [1, 1]), a.get("group", 1))
            if "auto_pad" in a and a["auto_pad"] not in (b"NOTSET", "NOTSET"):
                raise NotImplementedError("Conv auto_pad")
            del k
        elif node.op_type == "Gemm":
            A_, B_ = ins[0], f(ins[1])
            if a.get("transA", 0):
                A_ = A_.T
            if a.get("transB", 0):
                B_ = B_.T
            y = a.get("alpha", 1.0) * (A_ @ B_)
            if len(ins) > 2 and ins[2] is not None:
                y = y + a.get("beta", 1.0) * f(ins[2])
        elif node.op_type == "MatMul":
            y = ins[0] @ f(ins[1])
        elif node.op_type == "BatchNormalization":
            x, sc, bi, mu, var = ins[0], f(ins[1]), f(ins[2]), f(ins[3]), f(ins[4])
            shp = (1, -1) + (1,) * (x.ndim - 2)
            eps = a.get("epsilon", 1e-5)
            y = (x - mu.reshape(shp)) / np.sqrt(var.reshape(shp) + eps) * sc.reshape(shp) + bi.reshape(shp)
        elif node.op_type == "AveragePool":
            if a.get("ceil_mode", 0):
                raise NotImplementedError("AveragePool ceil_mode")
            y = avgpool(ins[0], a["kernel_shape"], a.get("strides", [1, 1]),
                        a.get("pads", [0, 0, 0, 0]), a.get("count_include_pad", 0))
        elif node.op_type == "GlobalAveragePool":
            y = ins[0].mean(axis=(2, 3), keepdims=True)
        elif node.op_type == "Flatten":
            ax = a.get("axis", 1)
            y = ins[0].reshape(int(np.prod(ins[0].shape[:ax])), -1)
        elif node.op_type == "Reshape":
            shape = [int(s) for s in ins[1]]
            shape = [ins[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
            y = ins[0].reshape(shape)
        elif node.op_type == "Add":
            y = ins[0] + f(ins[1])
        elif node.op_type == "Mul":
            y = ins[0] * f(ins[1])
        elif node.op_type == "Identity":
            y = ins[0]
        elif node.op_type == "Constant":
            y = numpy_helper.to_array(a["value"]) if "value" in a else np.array(a.get("value_float"))
        elif node.op_type == "Relu":
            y = np.maximum(ins[0], 0)
        else:
            raise NotImplementedError(f"op {node.op_type} is outside veil's subset")
        env[node.output[0]] = y
    return {o.name: env[o.name] for o in g.output}

"""ONNX export in veil's format (docs/model-format.md) and verification."""

from __future__ import annotations

import inspect
import io
import warnings
from typing import List, Optional, Sequence

import numpy as np
import onnx
import torch

from . import data as D
from . import onnx_ref
from .polyact import export_mode, polyacts

ALLOWED_OPS = {"Conv", "Gemm", "MatMul", "BatchNormalization", "AveragePool",
               "GlobalAveragePool", "Flatten", "Reshape", "Add"}


def export(model: torch.nn.Module, path: str, dataset: str,
           extra_metadata: Optional[dict] = None) -> onnx.ModelProto:
    """Export ``model`` (eval mode, BN un-folded, PolyAct -> veil::Poly) to ``path``."""
    info = D.INFO[dataset]
    model = model.cpu().eval()
    dummy = torch.zeros((2,) + tuple(info["shape"]))
    buf = io.BytesIO()
    # torch >= 2.9 defaults to the dynamo exporter, which ignores autograd.Function.symbolic
    # (the veil::Poly node): ask for the TorchScript exporter where the switch exists.
    extra = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with export_mode(model), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, dummy, buf, opset_version=13, input_names=["input"],
            output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            custom_opsets={"veil": 1}, do_constant_folding=True,
            # PRESERVE (with the model in eval mode) exports inference-mode BN but skips
            # the exporter's Conv+BN fusion: veil folds BN itself.
            training=torch.onnx.TrainingMode.PRESERVE,
            export_params=True, **extra)
    m = onnx.load_from_string(buf.getvalue())
    _finish(m, dataset, extra_metadata)
    onnx.checker.check_model(m)
    check_format(m)
    onnx.save(m, path)
    return m


def _remove_identities(g: onnx.GraphProto):
    """Drop Identity nodes (the exporter emits some), rewiring their consumers."""
    outputs = {o.name for o in g.output}
    for n in [n for n in g.node if n.op_type == "Identity" and n.domain == ""]:
        src, dst = n.input[0], n.output[0]
        g.node.remove(n)
        if dst in outputs:
            # keep the graph output name: rename the producer's output instead
            for p in g.node:
                for i, o in enumerate(p.output):
                    if o == src:
                        p.output[i] = dst
                for i, o in enumerate(p.input):
                    if o == src:
                        p.input[i] = dst
        else:
            for c in g.node:
                for i, o in enumerate(c.input):
                    if o == dst:
                        c.input[i] = src


def _const_value(g: onnx.GraphProto, name: str):
    for i in g.initializer:
        if i.name == name:
            return onnx.numpy_helper.to_array(i)
    for n in g.node:
        if n.op_type == "Constant" and n.output[0] == name:
            return onnx.numpy_helper.to_array(n.attribute[0].t)
    return None


def _fold_pads(g: onnx.GraphProto):
    """torch 1.13 exports AvgPool2d as Pad + AveragePool: merge the Pad into the pool."""
    for n in [n for n in g.node if n.op_type == "Pad" and n.domain == ""]:
        pads = _const_value(g, n.input[1]) if len(n.input) > 1 else None
        mode = next((a.s for a in n.attribute if a.name == "mode"), b"constant")
        value = _const_value(g, n.input[2]) if len(n.input) > 2 and n.input[2] else None
        consumers = [c for c in g.node if n.output[0] in c.input]
        if pads is None or mode != b"constant" or (value is not None and float(value) != 0.0):
            continue
        pads = [int(v) for v in pads]
        if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)):
            continue
        if any(pads) and not (len(consumers) == 1 and consumers[0].op_type == "AveragePool"):
            continue
        for c in consumers:
            if any(pads):
                a = {x.name: x for x in c.attribute}
                old = list(a["pads"].ints) if "pads" in a else [0, 0, 0, 0]
                new = [old[0] + pads[2], old[1] + pads[3], old[2] + pads[6], old[3] + pads[7]]
                for key in ("pads", "count_include_pad"):
                    if key in a:
                        c.attribute.remove(a[key])
                c.attribute.extend([onnx.helper.make_attribute("pads", new),
                                    onnx.helper.make_attribute("count_include_pad", 1)])
            for i, inp in enumerate(c.input):
                if inp == n.output[0]:
                    c.input[i] = n.input[0]
        g.node.remove(n)
    # drop Constant nodes nobody uses any more
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    for n in [n for n in g.node if n.op_type == "Constant" and n.output[0] not in used]:
        g.node.remove(n)


def _finish(m: onnx.ModelProto, dataset: str, extra: Optional[dict]):
    info = D.INFO[dataset]
    _remove_identities(m.graph)
    _fold_pads(m.graph)
    # domain versions: make sure veil = 1 is declared exactly once
    ops = {o.domain: o.version for o in m.opset_import}
    if ops.get("veil") != 1:
        del m.opset_import[:]
        for dom, ver in ops.items():
            if dom != "veil":
                m.opset_import.append(onnx.helper.make_opsetid(dom, ver))
        m.opset_import.append(onnx.helper.make_opsetid("veil", 1))
    # stable node names
    counts = {}
    for n in m.graph.node:
        if not n.name:
            k = n.op_type
            counts[k] = counts.get(k, -1) + 1
            n.name = f"{k}_{counts[k]}"
    meta = {
        "veil.dataset": dataset,
        "veil.input_shape": ",".join(str(s) for s in info["shape"]),
        "veil.normalize.mean": ",".join(f"{v:g}" for v in info["mean"]),
        "veil.normalize.std": ",".join(f"{v:g}" for v in info["std"]),
        "veil.classes": ",".join(info["classes"]),
        "veil.version": "1",
    }
    meta.update(extra or {})
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, str(v)
    m.producer_name = "veil_tools"
    m.producer_version = "1"


def check_format(m: onnx.ModelProto):
    """Raise ValueError if ``m`` violates veil's format contract."""
    g = m.graph
    inits = {i.name for i in g.initializer}
    ins = [i for i in g.input if i.name not in inits]
    if [i.name for i in ins] != ["input"] or [o.name for o in g.output] != ["logits"]:
        raise ValueError("graph must have one input 'input' and one output 'logits'")
    dims = ins[0].type.tensor_type.shape.dim
    if len(dims) != 4 or ins[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise ValueError("input must be float32 [N,C,H,W]")
    if dims[0].dim_value:
        raise ValueError("batch dimension must be dynamic")
    ops = {o.domain: o.version for o in m.opset_import}
    if ops.get("", ops.get("ai.onnx")) != 13 or ops.get("veil") != 1:
        raise ValueError(f"opset must be 13 + veil 1, got {ops}")
    for n in g.node:
        if n.domain == "veil":
            if n.op_type != "Poly":
                raise ValueError(f"unknown veil op {n.op_type}")
            a = {x.name: x for x in n.attribute}
            for key in ("coefficients", "input_range", "fit_range", "base"):
                if key not in a:
                    raise ValueError(f"{n.name}: missing attribute {key}")
        elif n.op_type not in ALLOWED_OPS:
            raise ValueError(f"{n.name}: op {n.op_type} is not allowed in veil models")
        if n.op_type == "Conv":
            a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
            grp = a.get("group", 1)
            if grp != 1:
                w = next(i for i in g.initializer if i.name == n.input[1])
                if w.dims[1] != 1:
                    raise ValueError(f"{n.name}: only group=1 or depthwise conv")
    keys = {p.key for p in m.metadata_props}
    for k in ("veil.dataset", "veil.input_shape", "veil.normalize.mean",
              "veil.normalize.std", "veil.classes", "veil.version"):
        if k not in keys:
            raise ValueError(f"missing metadata {k}")


def poly_nodes(m: onnx.ModelProto) -> List[dict]:
    out = []
    for n in m.graph.node:
        if n.domain == "veil" and n.op_type == "Poly":
            a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
            out.append(dict(node=n.name, input=n.input[0],
                            coefficients=[float(c) for c in a["coefficients"]],
                            degree=len(a["coefficients"]) - 1,
                            input_range=float(a["input_range"]),
                            fit_range=float(a["fit_range"]),
                            base=a["base"].decode() if isinstance(a["base"], bytes) else a["base"]))
    return out


def verify(model: torch.nn.Module, m: onnx.ModelProto, x: torch.Tensor, tol: float = 1e-4) -> float:
    """Compare torch (eval) with the numpy interpreter on ``x``; returns the max abs diff."""
    model = model.cpu().eval()
    with torch.no_grad():
        ref = model(x).double().numpy()
    got = onnx_ref.run(m, x.numpy().astype(np.float32))["logits"]
    diff = float(np.max(np.abs(ref - got)))
    scale = max(1.0, float(np.max(np.abs(ref))))
    if diff > tol * scale:
        raise AssertionError(f"ONNX interpreter differs from torch by {diff:g} (tol {tol * scale:g})")
    return diff

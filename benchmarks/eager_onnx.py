"""Run a small ONNX graph in PyTorch eager, node by node: the eager baseline for MTCNN.

The image bar compares ONNX Runtime with "the same networks in PyTorch eager". The face
detector's three networks exist only as the ONNX graphs ``tools/convert_mtcnn.py`` writes (there
is no PyTorch training code for them), so the eager baseline rebuilds each graph from its own
weights with ``torch.nn.functional``: same layers, same weights, PyTorch's kernels. Only the
seven operators those graphs use are supported; any other raises, so a new graph cannot be timed
by a silently wrong interpreter. ``max_abs_diff`` checks the result against ONNX Runtime.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _max_pool(x: torch.Tensor, kernel: list[int], strides: list[int], auto_pad: bytes):
    if auto_pad == b"SAME_UPPER":  # out = ceil(in / stride), the extra padding at the end
        pads = []  # F.pad wants the last axis first
        for size, k, s in zip(x.shape[:1:-1], kernel[::-1], strides[::-1], strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        x = F.pad(x, pads, value=-math.inf)
    return F.max_pool2d(x, kernel, strides)


class EagerGraph:
    """``EagerGraph(path)(x)`` -> ``{output name: array}``, like ``ModelBundle.run``."""

    _OPS = ("Conv", "PRelu", "MaxPool", "Transpose", "Flatten", "Gemm", "Softmax")

    def __init__(self, path: Path) -> None:
        model = onnx.load(str(path))
        self.weights = {
            t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
            for t in model.graph.initializer
        }
        self.nodes = [(n.op_type, list(n.input), n.output[0], _attrs(n)) for n in model.graph.node]
        self.input = model.graph.input[0].name
        self.outputs = [o.name for o in model.graph.output]
        unknown = {op for op, *_ in self.nodes} - set(self._OPS)
        if unknown:
            raise ValueError(f"{path.name}: operators without an eager version: {sorted(unknown)}")

    def _apply(self, op: str, args: list[torch.Tensor], attrs: dict) -> torch.Tensor:
        if op == "Conv":
            return F.conv2d(*args)
        if op == "PRelu":  # ONNX slope broadcasts like numpy: (C, 1, 1) or (C,)
            x, slope = args
            return torch.where(x >= 0, x, x * slope)
        if op == "MaxPool":
            return _max_pool(
                args[0], attrs["kernel_shape"], attrs["strides"], attrs.get("auto_pad", b"NOTSET")
            )
        if op == "Transpose":
            return args[0].permute(*attrs["perm"])
        if op == "Flatten":
            return torch.flatten(args[0], start_dim=attrs.get("axis", 1))
        if op == "Gemm":  # alpha = beta = 1, no transposes: what convert_mtcnn writes
            x, w, b = args
            return torch.addmm(b, x, w)
        return torch.softmax(args[0], dim=attrs.get("axis", -1))

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            values = dict(self.weights)
            values[self.input] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            for op, inputs, output, attrs in self.nodes:
                values[output] = self._apply(op, [values[i] for i in inputs], attrs)
            return {name: values[name].numpy() for name in self.outputs}


def max_abs_diff(graph: EagerGraph, run_ort, x: np.ndarray) -> float:
    """Largest difference between the eager outputs and ONNX Runtime's (``run_ort(x)``)."""
    eager, ort = graph(x), run_ort(x)
    return max(float(np.max(np.abs(eager[k] - ort[k]))) for k in graph.outputs)

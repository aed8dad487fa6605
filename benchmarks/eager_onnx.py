"""Run a shipped ONNX graph in PyTorch eager, node by node: the eager baseline of the benchmarks.

The speed bars compare ONNX Runtime with "the same networks in PyTorch eager". The eager
baseline rebuilds each shipped graph from its own weights with ``torch.nn.functional``: same
layers, same weights, PyTorch's kernels. It needs nothing but the ``.onnx`` file, so the ratios
come from a fresh clone (no training checkpoint, no training code: MTCNN has none at all).

Only the operators the shipped graphs use are supported (MTCNN's three stages, the image
detector and family classifier, the audio network); any other raises, so a new graph cannot be
timed by a silently wrong interpreter, and ``common.eager_rebuild`` checks every rebuild against
ONNX Runtime before a benchmark times it.

The interpreter is built to be a fair baseline, not a slow one: the weights become tensors once,
the exporter's shape arithmetic (the "same" padding the image graphs compute from constants) is
folded once at load, and each remaining node is a closure over its converted attributes, so a
call runs only PyTorch kernels on tensors - what ``nn.Module.forward`` would run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

Kernel = Callable[..., torch.Tensor]
"""One node at run time: its input tensors in, its output tensor out."""
Consts = list[torch.Tensor | None]
"""A node's inputs that are known at load time (``None``: computed at run time)."""

_DTYPES = {
    onnx.TensorProto.FLOAT: torch.float32,
    onnx.TensorProto.DOUBLE: torch.float64,
    onnx.TensorProto.INT32: torch.int32,
    onnx.TensorProto.INT64: torch.int64,
    onnx.TensorProto.BOOL: torch.bool,
}


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _ints(value: torch.Tensor | None, what: str) -> list[int]:
    if value is None:
        raise ValueError(f"{what} must be a constant of the graph")
    return [int(v) for v in value.reshape(-1).tolist()]


def _torch_pads(onnx_pads: list[int]) -> list[int]:
    """ONNX ``[x1_begin, x2_begin, ..., x1_end, x2_end, ...]`` as ``F.pad``'s last-axis-first."""
    n = len(onnx_pads) // 2
    out: list[int] = []
    for axis in reversed(range(n)):
        out += [onnx_pads[axis], onnx_pads[axis + n]]
    return out


def _spatial_padding(attrs: dict) -> tuple[list[int], list[int] | None]:
    """``(symmetric padding, extra F.pad or None)`` for a Conv/MaxPool's explicit ``pads``."""
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
        raise ValueError(f"auto_pad {attrs['auto_pad']!r} is not supported here")
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    begin, end = pads[: len(pads) // 2], pads[len(pads) // 2 :]
    if begin == end:
        return begin, None
    return [0] * len(begin), _torch_pads(pads)


# ------------------------------------------------------------------ operators: layers


def _conv(attrs: dict, consts: Consts) -> Kernel:
    stride, dilation = attrs.get("strides", [1, 1]), attrs.get("dilations", [1, 1])
    groups = attrs.get("group", 1)
    padding, extra = _spatial_padding(attrs)

    def conv(x, w, b=None):
        if extra is not None:
            x = F.pad(x, extra)
        return F.conv2d(x, w, b, stride, padding, dilation, groups)

    return conv


def _same_upper_pads(shape, kernel: list[int], strides: list[int]) -> list[int]:
    """``F.pad`` amounts for ``auto_pad=SAME_UPPER``: out = ceil(in / stride), extra at the end."""
    pads = []  # F.pad wants the last axis first
    for size, k, s in zip(shape[:1:-1], kernel[::-1], strides[::-1], strict=True):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return pads


def _max_pool(attrs: dict, consts: Consts) -> Kernel:
    kernel = attrs["kernel_shape"]
    strides = attrs.get("strides", [1] * len(kernel))
    ceil_mode = bool(attrs.get("ceil_mode", 0))
    if attrs.get("auto_pad", b"NOTSET") == b"SAME_UPPER":  # MTCNN: depends on the input size

        def same_upper(x):
            x = F.pad(x, _same_upper_pads(x.shape, kernel, strides), value=-math.inf)
            return F.max_pool2d(x, kernel, strides, ceil_mode=ceil_mode)

        return same_upper
    padding, extra = _spatial_padding(attrs)
    if extra is not None:
        raise ValueError("MaxPool with asymmetric pads is not supported here")
    return lambda x: F.max_pool2d(x, kernel, strides, padding, ceil_mode=ceil_mode)


def _gemm(attrs: dict, consts: Consts) -> Kernel:
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if attrs.get("transA", 0):
        raise ValueError("Gemm with transA is not supported here")
    if attrs.get("transB", 0):
        return lambda a, b, c: torch.addmm(c, a, b.t(), beta=beta, alpha=alpha)
    return lambda a, b, c: torch.addmm(c, a, b, beta=beta, alpha=alpha)


def _prelu(attrs: dict, consts: Consts) -> Kernel:
    # ONNX's slope broadcasts like numpy ((C, 1, 1) or (C,)), unlike F.prelu's
    return lambda x, slope: torch.where(x >= 0, x, x * slope)


def _clip(attrs: dict, consts: Consts) -> Kernel:
    low = float(consts[1]) if len(consts) > 1 and consts[1] is not None else None
    high = float(consts[2]) if len(consts) > 2 and consts[2] is not None else None
    return lambda x, *_: torch.clamp(x, low, high)


def _pad(attrs: dict, consts: Consts) -> Kernel:
    if attrs.get("mode", b"constant") != b"constant" or len(consts) > 3:
        raise ValueError("only constant Pad without axes is supported here")
    pads = _torch_pads(_ints(consts[1], "Pad's pads"))
    value = float(consts[2]) if len(consts) > 2 and consts[2] is not None else 0.0
    return lambda x, *_: F.pad(x, pads, value=value)


def _reduce(attrs: dict, consts: Consts, fn: Callable) -> Kernel:
    if "axes" not in attrs:
        raise ValueError("a Reduce without an axes attribute is not supported here")
    axes, keep = tuple(attrs["axes"]), bool(attrs.get("keepdims", 1))
    return lambda x: fn(x, dim=axes, keepdim=keep)


# ------------------------------------------------------------------ operators: plumbing


def _constant(attrs: dict, consts: Consts) -> Kernel:
    if "value" not in attrs:
        raise ValueError(f"Constant with {sorted(attrs)} is not supported here")
    value = torch.from_numpy(numpy_helper.to_array(attrs["value"]).copy())
    return lambda: value


def _constant_of_shape(attrs: dict, consts: Consts) -> Kernel:
    fill = torch.from_numpy(numpy_helper.to_array(attrs["value"]).copy()).reshape(())
    return lambda shape: torch.full(tuple(shape.tolist()), fill.item(), dtype=fill.dtype)


def _slice(attrs: dict, consts: Consts) -> Kernel:
    starts, ends = _ints(consts[1], "Slice's starts"), _ints(consts[2], "Slice's ends")
    axes = _ints(consts[3], "Slice's axes") if len(consts) > 3 else list(range(len(starts)))
    steps = _ints(consts[4], "Slice's steps") if len(consts) > 4 else [1] * len(starts)

    def slice_(x, *_):
        for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
            index = torch.arange(*slice(start, end, step).indices(x.shape[axis]))
            x = x.index_select(axis, index)  # Python's slice clamping is ONNX's
        return x

    return slice_


def _reshape(attrs: dict, consts: Consts) -> Kernel:
    shape = _ints(consts[1], "Reshape's shape")
    allow_zero = bool(attrs.get("allowzero", 0))

    def reshape(x, _):
        return x.reshape(
            [x.shape[i] if s == 0 and not allow_zero else s for i, s in enumerate(shape)]
        )

    return reshape


def _cast(attrs: dict, consts: Consts) -> Kernel:
    if attrs["to"] not in _DTYPES:
        raise ValueError(f"Cast to ONNX type {attrs['to']} is not supported here")
    dtype = _DTYPES[attrs["to"]]
    return lambda x: x.to(dtype)


def _squeeze(attrs: dict, consts: Consts) -> Kernel:
    if len(consts) < 2:
        return lambda x: x.squeeze()
    axes = tuple(_ints(consts[1], "Squeeze's axes"))
    return lambda x, _: x.squeeze(axes)


def _flatten(attrs: dict, consts: Consts) -> Kernel:
    axis = attrs.get("axis", 1)
    return lambda x: x.reshape(math.prod(x.shape[:axis]), -1)


_BUILDERS: dict[str, Callable[[dict, Consts], Kernel]] = {
    "Conv": _conv,
    "MaxPool": _max_pool,
    "Gemm": _gemm,
    "PRelu": _prelu,
    "Relu": lambda a, c: F.relu,
    "Clip": _clip,
    "Pad": _pad,
    "Add": lambda a, c: torch.add,
    "Softmax": lambda a, c: lambda x: torch.softmax(x, dim=a.get("axis", -1)),
    "ReduceMean": lambda a, c: _reduce(a, c, torch.mean),
    "ReduceMax": lambda a, c: _reduce(a, c, torch.amax),
    "Concat": lambda a, c: lambda *xs: torch.cat(xs, dim=a["axis"]),
    "Transpose": lambda a, c: lambda x: x.permute(*a.get("perm", range(x.ndim - 1, -1, -1))),
    "Flatten": _flatten,
    "Squeeze": _squeeze,
    "Reshape": _reshape,
    "Slice": _slice,
    "Cast": _cast,
    "Constant": _constant,
    "ConstantOfShape": _constant_of_shape,
}
"""ONNX operator -> builder of its kernel from the node's attributes and constant inputs."""


class EagerGraph:
    """``EagerGraph(path)(x)`` -> ``{output name: array}``, like ``ModelBundle.run``."""

    def __init__(self, path: Path) -> None:
        model = onnx.load(str(path))
        unknown = {n.op_type for n in model.graph.node} - set(_BUILDERS)
        if unknown:
            raise ValueError(f"{path.name}: operators without an eager version: {sorted(unknown)}")
        self.input = model.graph.input[0].name
        self.outputs = [o.name for o in model.graph.output]
        self.constants: dict[str, torch.Tensor] = {
            t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
            for t in model.graph.initializer
        }
        self.program: list[tuple[Kernel, list[str], str]] = []
        with torch.inference_mode():
            for node in model.graph.node:
                self._add(node)

    def _add(self, node: onnx.NodeProto) -> None:
        """Fold the node if every input is a constant, else append its kernel to the program."""
        if len(node.output) != 1:
            raise ValueError(f"{node.op_type} with {len(node.output)} outputs is not supported")
        inputs = list(node.input)
        while inputs and not inputs[-1]:  # trailing optional inputs left out
            inputs.pop()
        if "" in inputs:
            raise ValueError(f"{node.op_type}: an optional input left out mid-list")
        consts = [self.constants.get(name) for name in inputs]
        kernel = _BUILDERS[node.op_type](_attrs(node), consts)
        if all(c is not None for c in consts):
            self.constants[node.output[0]] = kernel(*consts)
        else:
            self.program.append((kernel, inputs, node.output[0]))

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            values = dict(self.constants)
            values[self.input] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            for kernel, inputs, output in self.program:
                values[output] = kernel(*[values[name] for name in inputs])
            return {name: values[name].numpy() for name in self.outputs}

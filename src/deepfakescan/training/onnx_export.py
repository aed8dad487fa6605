"""Export a trained network to ONNX, check it against PyTorch, install it with its model card.

One path for every model: :func:`export_onnx` traces the network (eval mode, dynamic batch)
to a ``.part`` file in the destination, :func:`check_round_trip` runs the graph in ONNX Runtime
beside PyTorch on the same batch, and :func:`install_bundle` renames the graph into place and
writes the card last. A model directory therefore never holds a half-written bundle, and a card
never names a graph that is not there yet (a loader skips a graph without a card, but a card
whose graph is missing or different fails its sha256 check).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..detectors.bundle import file_sha256

OPSET = 17


def part_path(dest_dir: Path, name: str) -> Path:
    """Where a graph is written before it is installed: ``dest_dir/name.onnx.part``."""
    return Path(dest_dir) / f"{name}.onnx.part"


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    *,
    input_name: str = "input",
    output_names: Sequence[str] = ("logit",),
    opset: int = OPSET,
) -> Path:
    """Trace ``model`` (eval mode) to ``path`` with a dynamic batch axis; returns ``path``.

    ``output_names`` name the model's outputs in order (a tuple-returning model has several).
    """
    model = model.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=[input_name],
            output_names=list(output_names),
            dynamic_axes={name: {0: "batch"} for name in (input_name, *output_names)},
            opset_version=opset,
            dynamo=False,
        )
    tmp.replace(path)
    return path


def onnx_session(path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session on ``path`` (``threads``: intra-op threads, or ORT's own)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def round_trip_error(
    model: nn.Module, path: Path, x: np.ndarray, *, threads: int | None = None
) -> dict[str, float]:
    """Largest |ONNX Runtime - PyTorch| of each output of the graph on the batch ``x``."""
    session = onnx_session(path, threads)
    x = x.astype(np.float32)
    got = session.run(None, {session.get_inputs()[0].name: x})
    with torch.inference_mode():
        want = model.eval()(torch.from_numpy(x))
    want = [t.numpy() for t in (want if isinstance(want, tuple | list) else (want,))]
    names = [o.name for o in session.get_outputs()]
    return {
        name: float(np.max(np.abs(g.reshape(-1) - w.reshape(-1)))) if w.size else 0.0
        for name, g, w in zip(names, got, want, strict=True)
    }


def check_round_trip(
    model: nn.Module, path: Path, x: np.ndarray, *, atol: float, threads: int | None = None
) -> dict[str, float]:
    """:func:`round_trip_error`, raising when an output is off by more than ``atol``."""
    errors = round_trip_error(model, path, x, threads=threads)
    if max(errors.values()) > atol:
        raise RuntimeError(f"ONNX and PyTorch disagree by more than {atol:.0e}: {errors}")
    return errors


def write_card(onnx_path: Path, card: dict[str, Any]) -> Path:
    """Write ``name.json`` beside ``onnx_path`` with the graph's sha256 filled in (last key)."""
    onnx_path = Path(onnx_path)
    card = {**card, "sha256": file_sha256(onnx_path)}
    out = onnx_path.with_suffix(".json")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out)
    return out


def install_bundle(
    graph: Path, card: dict[str, Any], dest_dir: Path, name: str
) -> tuple[Path, Path]:
    """Move a finished graph to ``dest_dir/name.onnx``, then write its card: graph first."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = dest_dir / f"{name}.onnx"
    Path(graph).replace(onnx_path)
    return onnx_path, write_card(onnx_path, card)


__all__ = [
    "check_round_trip",
    "export_onnx",
    "install_bundle",
    "onnx_session",
    "part_path",
    "round_trip_error",
    "write_card",
]

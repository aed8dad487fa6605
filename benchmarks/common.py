"""What every benchmark does the same way: timing, tables, peak memory, the eager baseline.

Benchmarks print tables of medians and never assert a timing: a shared 2-core machine makes
single numbers noisy, so a ratio is always taken against a baseline timed in the same process,
the two taking turns (``interleaved``) so that a change of machine load hits both alike.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PEAK_RSS_MB = (
    "next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) / 1024"
)
"""A Python expression: the evaluating process's peak resident memory in MB (Linux).

Fresh child interpreters (``python -c CODE``) embed it. It reads ``VmHWM`` (the process's own
high-water mark) rather than ``ru_maxrss``, which Linux carries over from the forking parent
(a benchmark that has already loaded models) across fork and exec."""

EAGER_TOLERANCE = 1e-4
"""Largest |eager - ONNX Runtime| allowed, per unit of the largest ONNX Runtime output (at
least 1). The shipped graphs agree within ~6e-6; beyond this the rebuild is wrong, not
rounded differently, and timing it would compare two different networks."""


def interleaved(
    fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Milliseconds per call of each function, the functions taking turns within each round."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000.0)
    return times


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values (a column that was not measured)."""
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> str:
    """``min-max`` of the runs, to show how steady the machine was."""
    return f"{min(values):.1f}-{max(values):.1f} ms" if values else "-"


def load_average() -> str:
    """The 1/5/15-minute load average and usable CPUs: other work on the machine shows here."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {cpus} CPUs"


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> None:
    """Print ``rows`` under ``header`` in aligned columns.

    ``align`` has one character per column, ``<`` (left) or ``>`` (right); missing ones are
    ``>`` for all but the first and last columns (a label and a note, left-aligned).
    """
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    n = len(header)
    align = align or "<" + ">" * max(n - 2, 0) + ("<" if n > 1 else "")
    widths = [max(len(row[i]) for row in cells) for i in range(n)]
    for row in cells:
        line = "  ".join(
            (cell.ljust(w) if a == "<" else cell.rjust(w))
            for cell, w, a in zip(row, widths, align, strict=True)
        )
        print(line.rstrip())


@dataclass(frozen=True)
class Eager:
    """A shipped graph rebuilt in PyTorch eager, or why it is not timed (``run`` is None)."""

    run: Callable[[np.ndarray], dict[str, np.ndarray]] | None
    note: str


def eager_rebuild(path: Path, run_ort: Callable, x: np.ndarray, threads: int) -> Eager:
    """The graph at ``path`` in PyTorch eager, checked against ONNX Runtime on ``x``.

    ``run_ort(x)`` returns ONNX Runtime's outputs by name. Without torch (an optional extra)
    the benchmark still runs, and its eager columns say why they are empty.
    """
    try:
        import torch
        from eager_onnx import EagerGraph
    except ImportError as e:
        return Eager(None, f"{e.name or 'torch'} not installed")
    torch.set_num_threads(threads)
    graph = EagerGraph(path)
    eager, ort = graph(x), run_ort(x)
    diff = max(float(np.max(np.abs(eager[k] - ort[k]))) for k in graph.outputs)
    scale = max([1.0] + [float(np.max(np.abs(ort[k]))) for k in graph.outputs])
    if diff > EAGER_TOLERANCE * scale:
        return Eager(None, f"eager differs from ONNX Runtime (max |diff| {diff:.2g}): not timed")
    return Eager(graph, f"max |diff| {diff:.2g}")

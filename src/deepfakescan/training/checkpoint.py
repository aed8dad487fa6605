"""The seeded, resumable training loop every model shares: step -> epoch -> validate.

A model brings its :class:`Steps` (the batches of an epoch from a given sample on, one optimiser
step, the end-of-epoch validation); this loop brings what every long CPU run needs and what is
easy to get subtly wrong:

- **Checkpoints** (``last.pt``): weights, optimiser, scheduler, torch's random state and the
  position (epoch, sample, step), at every epoch's end, every ``checkpoint_minutes`` inside an
  epoch, and when ``max_steps`` cuts the call short. Saves are atomic (a cut during a save keeps
  the previous file).
- **Resume** continues at the exact sample where the run stopped, so a run cut and resumed ends
  with the weights of an uncut one. It refuses a checkpoint written with another configuration,
  naming the options that differ, rather than mixing two recipes in one set of weights.
- **Best epoch**: the validation score (higher is better) picks ``best.pt``; each epoch's
  record goes to the checkpoint's history and to ``history.jsonl``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

CHECKPOINT = "last.pt"
BEST = "best.pt"
HISTORY = "history.jsonl"


@dataclass(frozen=True)
class LoopOptions:
    """How to run the loop (nothing here changes the weights)."""

    epochs: int
    resume: bool = True
    checkpoint_minutes: float | None = None
    """Also checkpoint inside an epoch this often (None: at epoch ends only)."""
    max_steps: int | None = None
    """Stop after this many steps in this call (tests, timing); the run stays resumable."""
    log_every: int | None = None
    """Log the running loss every this many steps (None: once an epoch, from the model)."""


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint."""

    epoch: int = 0
    """The epoch being trained (== epochs when the run is done)."""
    index: int = 0
    """Samples of that epoch already trained on."""
    loss_sum: float = 0.0
    """Sum of loss x batch size over those samples (the epoch's mean loss survives a cut)."""
    step: int = 0
    """Optimiser steps since the start of the run (drives step-based schedules)."""
    best: float = -math.inf
    best_epoch: int = -1
    history: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class EpochSummary:
    """What the loop measured over one epoch (the part trained in this call)."""

    epoch: int
    loss: float
    """Mean training loss over the whole epoch."""
    samples: int
    """Samples trained on in this call (with ``seconds``, the speed)."""
    seconds: float


class Steps(Protocol):
    """What a model gives the loop."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    """Saved and restored with the optimiser when not None (a per-step LR scheduler)."""
    replace_best_on_tie: bool
    """Whether an epoch that equals the best score so far becomes the best one."""

    def epoch(self, epoch: int, start: int) -> Iterator[Any]:
        """Put the model in training mode and return epoch ``epoch``'s batches from sample
        ``start`` on (the iterator already made: see :meth:`Loop._open_epoch`)."""
        ...

    def step(self, batch: Any, step: int) -> tuple[float, int]:
        """One optimiser step (global step ``step``); returns the loss and the batch size."""
        ...

    def end_epoch(self, summary: EpochSummary) -> tuple[float, dict]:
        """Validate; returns the score (higher is better) and the epoch's history record."""
        ...


@dataclass(frozen=True)
class RunOptions:
    """How to run (does not change the weights)."""

    workers: int = 1
    device: str = "auto"
    checkpoint_minutes: float = 5.0
    resume: bool = True
    threads: int | None = None
    max_steps: int | None = None
    """Stop after this many steps in this call (tests, timing); the run stays resumable."""


DEFAULT_RUN = RunOptions()


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up then cosine decay to zero: a pure function of the step (resumable)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def save_atomic(path: Path, state: dict) -> None:
    """``torch.save`` through a temporary file and a rename."""
    tmp = Path(path).with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by the loop (on the CPU, whatever device trained it)."""
    return torch.load(path, map_location="cpu", weights_only=False)


def config_differences(saved: dict, now: dict) -> list[str]:
    """``option: saved value -> value now`` for every option that differs."""
    absent = object()
    return [
        f"{key}: {saved.get(key, '(absent)')!r} in the checkpoint, {now.get(key, '(absent)')!r} now"
        for key in sorted(saved.keys() | now.keys())
        if saved.get(key, absent) != now.get(key, absent)
    ]


def run(
    steps: Steps,
    config: dict,
    run_dir: Path,
    options: LoopOptions,
    log: Callable[[str], None] = print,
) -> dict:
    """Train (or resume) into ``run_dir``; returns the last checkpoint's content.

    ``config`` is everything that decides the weights: it is saved in every checkpoint and
    compared on resume.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return Loop(steps, config, run_dir, options, log).run()


class Loop:
    """One call of :func:`run`: the position, the save clock and the checkpoint files."""

    def __init__(self, steps: Steps, config: dict, run_dir: Path, options: LoopOptions, log):
        self.steps, self.config, self.options, self.log = steps, config, options, log
        self.checkpoint, self.best, self.history = (
            run_dir / n for n in (CHECKPOINT, BEST, HISTORY)
        )
        self.progress = Progress()
        self._saved_rng: torch.Tensor | None = None
        self._steps_this_call = 0
        self._last_save = time.monotonic()
        if options.resume and self.checkpoint.is_file():
            self._resume()

    def run(self) -> dict:
        while self.progress.epoch < self.options.epochs:
            summary = self._train_epoch()
            if summary is None:
                self.log(f"stopped after {self._steps_this_call} steps (max_steps); resumable")
                break
            self._end_epoch(summary)
        return self.snapshot()

    def snapshot(self) -> dict:
        steps = self.steps
        return {
            "config": self.config,
            "model": steps.model.state_dict(),
            "optimizer": steps.optimizer.state_dict(),
            **({"scheduler": steps.scheduler.state_dict()} if steps.scheduler is not None else {}),
            "torch_rng": torch.get_rng_state(),
            **asdict(self.progress),
        }

    def _resume(self) -> None:
        saved = load_checkpoint(self.checkpoint)
        differences = config_differences(saved.get("config", {}), self.config)
        if differences:
            raise ValueError(
                f"{self.checkpoint} was written with another configuration"
                f" ({'; '.join(differences)}); use another --run or --no-resume"
            )
        self.steps.model.load_state_dict(saved["model"])
        self.steps.optimizer.load_state_dict(saved["optimizer"])
        if self.steps.scheduler is not None:
            self.steps.scheduler.load_state_dict(saved["scheduler"])
        known = Progress.__dataclass_fields__
        self.progress = Progress(**{k: v for k, v in saved.items() if k in known})
        self._saved_rng = saved.get("torch_rng")
        p = self.progress
        self.log(
            f"resumed from {self.checkpoint}: epoch {p.epoch}, sample {p.index}"
            f" (best {p.best:.4f} at epoch {p.best_epoch})"
        )

    def _open_epoch(self) -> Iterator[Any]:
        """The epoch's batches, with torch's random state where the cut run had it.

        Making the batches may draw from torch's generator (a ``DataLoader`` draws its base
        seed), so the saved state is restored before they are made when the checkpoint was
        taken at an epoch's end, and after when it was taken between two steps: either way
        the next dropout mask is the one an uncut run would draw.
        """
        rng, self._saved_rng = self._saved_rng, None
        if rng is not None and self.progress.index == 0:
            torch.set_rng_state(rng)
        batches = self.steps.epoch(self.progress.epoch, self.progress.index)
        if rng is not None and self.progress.index > 0:
            torch.set_rng_state(rng)
        return batches

    def _train_epoch(self) -> EpochSummary | None:
        """Steps to the epoch's end (a summary), or None when ``max_steps`` cut the call."""
        p, options = self.progress, self.options
        t0, seen = time.monotonic(), 0
        for batch in self._open_epoch():
            loss, n = self.steps.step(batch, p.step)
            p.step, p.index, p.loss_sum, seen = (
                p.step + 1,
                p.index + n,
                p.loss_sum + loss * n,
                seen + n,
            )
            self._steps_this_call += 1
            if options.log_every and p.step % options.log_every == 0:
                rate = seen / (time.monotonic() - t0)
                mean = p.loss_sum / p.index
                self.log(f"epoch {p.epoch} step {p.step} loss {mean:.4f} ({rate:.1f} samples/s)")
            if options.max_steps is not None and self._steps_this_call >= options.max_steps:
                self._save(self.checkpoint)
                return None
            if self._save_due():
                self._save(self.checkpoint)
        return EpochSummary(p.epoch, p.loss_sum / max(p.index, 1), seen, time.monotonic() - t0)

    def _end_epoch(self, summary: EpochSummary) -> None:
        score, record = self.steps.end_epoch(summary)
        p = self.progress
        p.history.append(record)
        p.epoch, p.index, p.loss_sum = summary.epoch + 1, 0, 0.0
        if score > p.best or (self.steps.replace_best_on_tie and score == p.best):
            p.best, p.best_epoch = score, summary.epoch
            self._save(self.best)
        self._save(self.checkpoint)
        with self.history.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def _save_due(self) -> bool:
        minutes = self.options.checkpoint_minutes
        return minutes is not None and time.monotonic() - self._last_save > minutes * 60

    def _save(self, path: Path) -> None:
        save_atomic(path, self.snapshot())
        self._last_save = time.monotonic()


__all__ = [
    "BEST",
    "DEFAULT_RUN",
    "RunOptions",
    "learning_rate",
    "CHECKPOINT",
    "EpochSummary",
    "LoopOptions",
    "Progress",
    "Steps",
    "config_differences",
    "load_checkpoint",
    "run",
    "save_atomic",
]

"""Train one autoencoder instance (an architecture and a seed) on patches of the train reals.

Each step draws :attr:`TrainConfig.batch_size` random native-pixel patches (source uniform,
then image, then position; seeded by ``(seed, epoch, batch)``), and minimises L1 plus a little
L1 on pixel differences (edges stay sharp without a perceptual net) plus, for the VAE, a small
KL term. The learning rate is a pure function of the step (warm-up, cosine), so the shared loop
(:mod:`..checkpoint`) resumes a cut run exactly. Each epoch ends with the validation PSNR (dB)
of every validation real's central crop, per source; their mean picks ``best.pt``, and the
best epoch's figures go to ``psnr.json`` in the instance's run directory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as TF

from .. import checkpoint
from ..checkpoint import EpochSummary, LoopOptions, learning_rate
from .data import center_patch, patch_batch, to_rgb, to_unit
from .nets import build, gradient_l1

log = logging.getLogger("deepfakescan.train.autoencoders")

PSNR_FILE = "psnr.json"
VAL_CROP = 256
"""Side of the central validation crop (whole side when the image is smaller)."""
VAL_PER_SOURCE = 32
"""Validation images per source (the first in manifest order): bounds the time of a pass."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides an instance's weights (saved in every checkpoint)."""

    arch: str = "nearest"
    seed: int = 0
    steps: int = 1500
    """Optimiser steps in all; see the timing in the package's report before raising it."""
    epoch_steps: int = 250
    """Steps between validations (the last epoch may be shorter)."""
    batch_size: int = 16
    patch: int = 128
    lr: float = 1e-3
    warmup_steps: int = 50
    grad_weight: float = 0.5
    kl_weight: float = 1e-6
    """Weight of the mean KL per latent value (VAE only); SD's 1e-6 on sums is smaller still."""

    @property
    def epochs(self) -> int:
        return math.ceil(self.steps / self.epoch_steps)

    @property
    def name(self) -> str:
        """The instance's name: run sub-directory, fakes folder (``<arch>-<seed>``)."""
        return f"{self.arch}-{self.seed}"


@dataclass(frozen=True)
class RunOptions:
    """How to run (does not change the weights)."""

    resume: bool = True
    checkpoint_minutes: float | None = 5.0
    max_steps: int | None = None
    threads: int | None = None
    log_every: int | None = 50


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (capped at 100 dB for identical ones)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


@torch.no_grad()
def validation_psnr(
    model: torch.nn.Module, images: Mapping[str, Sequence[np.ndarray]], factor: int
) -> dict[str, float]:
    """Mean PSNR per source of the central crops of ``images`` (uint8 round trip, as written)."""
    model.eval()
    out = {}
    for source, pool in images.items():
        values = []
        for rgb in pool[:VAL_PER_SOURCE]:
            crop = center_patch(rgb, VAL_CROP, factor)
            y = model(torch.from_numpy(to_unit(crop))[None])[0].numpy()
            values.append(psnr(to_rgb(y), crop))
        if values:
            out[source] = float(np.mean(values))
    return out


class AutoencoderSteps:
    """One instance's steps for :func:`checkpoint.run`."""

    scheduler = None
    replace_best_on_tie = False

    def __init__(
        self,
        config: TrainConfig,
        train_images: Mapping[str, Sequence[np.ndarray]],
        val_images: Mapping[str, Sequence[np.ndarray]],
    ) -> None:
        self.config, self.train_images, self.val_images = config, train_images, val_images
        torch.manual_seed(config.seed)
        self.model = build(config.arch)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)

    def epoch(self, epoch: int, start: int):
        c = self.config
        n = min(c.epoch_steps, c.steps - epoch * c.epoch_steps)
        self.model.train()
        return (
            torch.from_numpy(
                patch_batch(
                    self.train_images,
                    c.batch_size,
                    c.patch,
                    np.random.default_rng([c.seed, epoch, b]),
                )
            )
            for b in range(start // c.batch_size, n)
        )

    def step(self, batch: torch.Tensor, step: int) -> tuple[float, int]:
        c = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(step, c.steps, c.lr, c.warmup_steps)
        loss = reconstruction_loss(self.model, batch, c)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach()), len(batch)

    def end_epoch(self, summary: EpochSummary) -> tuple[float, dict]:
        per_source = validation_psnr(self.model, self.val_images, self.model.factor)
        score = float(np.mean(list(per_source.values()))) if per_source else 0.0
        record = {
            "epoch": summary.epoch,
            "train_loss": summary.loss,
            "train_s": round(summary.seconds, 1),
            "val_psnr": score,
            "val_psnr_per_source": per_source,
        }
        log.info("%s epoch %d: %s", self.config.name, summary.epoch, json.dumps(record))
        return score, record


def reconstruction_loss(model: torch.nn.Module, x: torch.Tensor, c: TrainConfig) -> torch.Tensor:
    """L1 + ``grad_weight`` x L1 of pixel differences + ``kl_weight`` x KL (VAE)."""
    y, kl = model.training_pass(x)
    return TF.l1_loss(y, x) + c.grad_weight * gradient_l1(y, x) + c.kl_weight * kl


def train_instance(
    config: TrainConfig,
    train_images: Mapping[str, Sequence[np.ndarray]],
    val_images: Mapping[str, Sequence[np.ndarray]],
    run_dir: Path,
    options: RunOptions = RunOptions(),
) -> dict:
    """Train (or resume) one instance into ``run_dir``; returns the last checkpoint's state.

    ``run_dir`` gets ``last.pt``, ``best.pt``, ``history.jsonl`` and, once the run is done,
    ``psnr.json`` (the best epoch's validation PSNR, overall and per source).
    """
    if options.threads:
        torch.set_num_threads(options.threads)
    steps = AutoencoderSteps(config, train_images, val_images)
    loop = LoopOptions(
        epochs=config.epochs,
        resume=options.resume,
        checkpoint_minutes=options.checkpoint_minutes,
        max_steps=options.max_steps,
        log_every=options.log_every,
    )
    final = checkpoint.run(steps, dataclasses.asdict(config), Path(run_dir), loop, log=log.info)
    if final["epoch"] >= config.epochs:
        write_psnr(Path(run_dir), config, final)
    return final


def write_psnr(run_dir: Path, config: TrainConfig, final: dict) -> dict:
    """``psnr.json``: the best epoch's validation PSNR of a finished instance."""
    best = final["history"][final["best_epoch"]]
    summary = {
        "instance": config.name,
        "arch": config.arch,
        "seed": config.seed,
        "steps": config.steps,
        "best_epoch": final["best_epoch"],
        "val_psnr": best["val_psnr"],
        "val_psnr_per_source": best["val_psnr_per_source"],
    }
    (run_dir / PSNR_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


__all__ = [
    "PSNR_FILE",
    "AutoencoderSteps",
    "RunOptions",
    "TrainConfig",
    "learning_rate",
    "psnr",
    "reconstruction_loss",
    "train_instance",
    "validation_psnr",
    "write_psnr",
]

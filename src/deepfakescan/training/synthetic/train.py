"""Train ``image-synthetic``: steps for the shared loop, validation on images scored as served.

Each epoch draws :attr:`TrainConfig.epoch_size` samples with fixed shares per source
(:func:`~.data.plan_epoch`; ``ae-*`` shares are split over the reconstruction sources present)
and renders each through the same random chain, seeded by ``(seed, epoch, index)``. Validation
scores every validation file as a scan does (``n_crops`` native crops from ``sample_crops``,
mean logit) and computes the AUC of each fake source against its reals
(:func:`~.data.auc_pairs`); the best epoch has the highest mean of those, so every pair counts
the same whatever its size.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from ...evaluation.metrics import roc_auc
from .. import checkpoint
from ..allocator import reuse_freed_memory
from ..checkpoint import (
    CHECKPOINT,
    DEFAULT_RUN,
    EpochSummary,
    LoopOptions,
    RunOptions,
    learning_rate,
)
from ..image.nets import IMAGENET_MEAN, IMAGENET_STD
from ..image.train import CHANNELS_LAST, pick_device
from .data import (
    CROP,
    ServedDataset,
    TrainDataset,
    auc_pairs,
    balance_classes,
    plan_epoch,
    source_shares,
)
from .nets import TRUNK_BLOCKS, SyntheticNet

log = logging.getLogger("deepfakescan.train.synthetic")

WEIGHTS = {
    "photo-real": 0.18,
    "ffhq-real": 0.12,
    "ciplab-real": 0.10,
    "video-real": 0.10,
    "sd-fake": 0.15,
    "stylegan2-fake": 0.08,
    "ae-*": 0.27,
}
"""Share of each source in an epoch (``ae-*``: split evenly over the reconstruction sources);
the classes are then rescaled to half real, half fake whatever sources are present. The
reconstructions (same content as the reals, only the decoder differs) are the largest fake
share: they teach the fingerprint."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the weights (saved in every checkpoint)."""

    epochs: int = 30
    epoch_size: int = 2048
    batch_size: int = 16
    lr: float = 1e-3
    """Peak learning rate of the head; the trunk gets ``trunk_lr``."""
    trunk_lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    trunk_blocks: int = TRUNK_BLOCKS
    stem_stride: int = 2
    dropout: float = 0.2
    label_smoothing: float = 0.05
    n_crops: int = 4
    """Crops per image in the per-epoch validation (mean logit; a scan takes
    :data:`~.data.SERVE_CROPS`, which the export uses): a quarter of the cost, for ranking
    epochs only."""
    size: int = CROP
    """Crop side in pixels: the model's input (tests use less)."""
    seed: int = 0
    pretrained: bool = True
    leave_out: str | None = None
    """A source (or glob) held out of train and validation (a generalisation run)."""
    weights: dict[str, float] = field(default_factory=lambda: dict(WEIGHTS))
    npr: bool = False
    """Input the neighbouring-pixel residual (``nets.neighbour_residual``), an experiment."""


@dataclass(frozen=True)
class Split:
    """A split's rows and their resolved files (see :func:`~.data.resolve_paths`)."""

    rows: Sequence
    paths: Sequence[Path]


def build_model(config: TrainConfig) -> SyntheticNet:
    return SyntheticNet(
        pretrained=config.pretrained,
        trunk_blocks=config.trunk_blocks,
        stem_stride=config.stem_stride,
        dropout=config.dropout,
        npr=config.npr,
    )


def _optimizer(model: SyntheticNet, config: TrainConfig) -> torch.optim.Optimizer:
    head = [*model.head.parameters(), *model.fc.parameters()]
    head_ids = {id(p) for p in head}
    trunk = [p for p in model.parameters() if id(p) not in head_ids]
    return torch.optim.AdamW(
        [
            {"params": trunk, "lr": config.trunk_lr, "peak": config.trunk_lr},
            {"params": head, "lr": config.lr, "peak": config.lr},
        ],
        weight_decay=config.weight_decay,
    )


@torch.no_grad()
def score_images(
    model: nn.Module,
    paths: Sequence[Path],
    *,
    n_crops: int,
    device: torch.device,
    size: int = CROP,
    workers: int = 0,
) -> np.ndarray:
    """Image scores as served: mean logit over ``n_crops`` native crops of each file."""
    ds = ServedDataset(paths, n_crops=n_crops, mean=IMAGENET_MEAN, std=IMAGENET_STD, size=size)
    model.eval()
    scores = []
    for x in DataLoader(ds, batch_size=4, num_workers=workers):
        n, k = x.shape[:2]
        flat = x.reshape(n * k, *x.shape[2:]).to(device, memory_format=CHANNELS_LAST)
        scores.append(model(flat).float().reshape(n, k).mean(dim=1).cpu().numpy())
    return np.concatenate(scores) if scores else np.zeros(0)


def pair_aucs(scores: np.ndarray, rows: Sequence) -> dict[str, float]:
    """AUC of each fake source against its reals (:func:`~.data.auc_pairs`), and of all."""
    sources = np.array([r.source for r in rows])
    labels = np.array([r.label for r in rows])
    out = {}
    for fake, reals in auc_pairs(rows).items():
        pick = (sources == fake) | np.isin(sources, reals)
        out[fake] = roc_auc(labels[pick], scores[pick])
    if 0 < labels.sum() < len(labels):
        out["all"] = roc_auc(labels, scores)
    return out


def train(
    config: TrainConfig,
    train_split: Split,
    val_split: Split,
    out_dir: Path,
    options: RunOptions = DEFAULT_RUN,
) -> dict:
    """Train (or resume) into ``out_dir``; returns the final checkpoint's state.

    ``out_dir`` gets ``last.pt`` (resumable), ``best.pt``, ``history.jsonl`` and ``train.log``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        if options.threads:
            torch.set_num_threads(options.threads)
        torch.manual_seed(config.seed)
        steps = SyntheticSteps(config, train_split, val_split, pick_device(options.device), options)
        if not (options.resume and (out_dir / CHECKPOINT).exists()):
            log.info("config %s", json.dumps(dataclasses.asdict(config)))
        loop = LoopOptions(
            epochs=config.epochs,
            resume=options.resume,
            checkpoint_minutes=options.checkpoint_minutes,
            max_steps=options.max_steps,
            log_every=10,
        )
        reuse_freed_memory()
        return checkpoint.run(steps, dataclasses.asdict(config), out_dir, loop, log=log.info)
    finally:
        log.removeHandler(handler)
        handler.close()


class SyntheticSteps:
    """``image-synthetic``'s steps for :func:`checkpoint.run` (the LR is a pure function of the
    global step, so there is no scheduler state to lose)."""

    scheduler = None
    replace_best_on_tie = False

    def __init__(
        self,
        config: TrainConfig,
        train_split: Split,
        val_split: Split,
        device: torch.device,
        options: RunOptions,
    ) -> None:
        self.config, self.device, self.workers = config, device, options.workers
        self.train_split, self.val_split = train_split, val_split
        self.model = build_model(config).to(device, memory_format=CHANNELS_LAST)
        self.optimizer = _optimizer(self.model, config)
        self.total_steps = config.epochs * math.ceil(config.epoch_size / config.batch_size)
        sources = [r.source for r in train_split.rows]
        shares = balance_classes(
            source_shares(config.weights, sources), {r.source: r.label for r in train_split.rows}
        )
        log.info(
            "device %s, %d train files, %d val files; shares %s; validation pairs %s",
            device,
            len(train_split.rows),
            len(val_split.rows),
            {s: round(w, 3) for s, w in sorted(shares.items())},
            auc_pairs(val_split.rows),
        )

    def epoch(self, epoch: int, start: int):
        config = self.config
        rng = np.random.default_rng([config.seed, epoch, 7])
        sources = [r.source for r in self.train_split.rows]
        labels = [r.label for r in self.train_split.rows]
        plan = plan_epoch(sources, config.weights, config.epoch_size, rng, labels)
        ds = TrainDataset(
            self.train_split.paths,
            labels,
            plan,
            seed=config.seed,
            epoch=epoch,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            size=config.size,
        )
        loader = DataLoader(
            Subset(ds, range(start, len(ds))),
            batch_size=config.batch_size,
            num_workers=self.workers,
        )
        self.model.train()
        return iter(loader)

    def step(self, batch, step: int) -> tuple[float, int]:
        x, y, _ = batch
        config = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(step, self.total_steps, group["peak"], config.warmup_steps)
        logits = self.model(x.to(self.device, memory_format=CHANNELS_LAST))
        target = y.to(self.device).float()[:, None]
        target = target * (1 - config.label_smoothing) + 0.5 * config.label_smoothing
        loss = nn.functional.binary_cross_entropy_with_logits(logits, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach()), len(y)

    def end_epoch(self, summary: EpochSummary) -> tuple[float, dict]:
        """Mean of the per-pair validation AUCs, and the epoch's history record."""
        scores = score_images(
            self.model,
            self.val_split.paths,
            n_crops=self.config.n_crops,
            device=self.device,
            size=self.config.size,
            workers=self.workers,
        )
        aucs = pair_aucs(scores, self.val_split.rows)
        per_pair = [v for k, v in aucs.items() if k != "all"]
        score = float(np.mean(per_pair)) if per_pair else 0.0
        record = {
            "epoch": summary.epoch,
            "train_loss": summary.loss,
            "train_s": round(summary.seconds, 1),
            "samples_per_s": round(summary.samples / max(summary.seconds, 1e-9), 2),
            "val_score": score,
            "auc": aucs,
        }
        log.info("epoch %d done in %.0f s: %s", summary.epoch, summary.seconds, json.dumps(record))
        return score, record


__all__ = [
    "WEIGHTS",
    "RunOptions",
    "Split",
    "SyntheticSteps",
    "TrainConfig",
    "build_model",
    "pair_aucs",
    "score_images",
    "train",
]

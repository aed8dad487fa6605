"""Train the image detector (real vs fake face) and the manipulation-family classifier.

One set of steps serves both models (``task="detector"``: one logit of "fake", binary
cross-entropy; ``task="family"``: one logit per :data:`~.data.FAMILIES`, cross-entropy on fakes
only). Every sample is drawn by :func:`~.data.plan_epoch` with fixed shares per source, rendered
through the same random chain whatever its class, and seeded by ``(seed, epoch, index)``.

Long CPU runs get cut, so the shared loop (:mod:`..checkpoint`) checkpoints every
``checkpoint_minutes`` and at each epoch end, and ``resume=True`` continues from the exact
sample where it stopped; the learning rate is a pure function of the global step, so there is
no scheduler state to lose. The best epoch on the
validation split (mean of the per-source AUCs, or macro recall for the classifier: every source
counts the same, which favours generalisation over the largest source) is kept as ``best.pt``.
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
from .data import (
    FAMILIES,
    SBI_SOURCE,
    FaceCrop,
    FaceDataset,
    Sample,
    fixed_eval_plan,
    plan_epoch,
    sample_source,
)
from .nets import IMAGENET_MEAN, IMAGENET_STD, CamNet, freeze_early, set_train_mode
from .synth import EVAL_CHAIN

log = logging.getLogger("deepfakescan.train.image")

DETECTOR_WEIGHTS = {
    "ffhq-real": 0.18,
    "ciplab-real": 0.22,
    "video-real": 0.10,
    SBI_SOURCE: 0.28,
    "stylegan2-fake": 0.08,
    "ciplab-edited-fake": 0.14,
}
"""Share of each source in a detector epoch: half real, half fake; self-blends are the largest
fake share because they are what generalises to unseen swaps."""
FAMILY_WEIGHTS = {SBI_SOURCE: 1.0, "stylegan2-fake": 1.0, "ciplab-edited-fake": 1.0}
"""The classifier sees fakes only, each family equally often."""

AUC_PAIRS = {
    SBI_SOURCE: ("ffhq-real", "ciplab-real", "video-real"),
    "stylegan2-fake": ("ffhq-real",),
    "ciplab-edited-fake": ("ciplab-real",),
}
"""Per-source AUCs: each fake source against the reals it should be told apart from (the same
capture/format where one exists, so a format shortcut cannot score)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the weights (saved in every checkpoint)."""

    task: str = "detector"
    size: int = 160
    """Input side in pixels (a multiple of 32); about the native face size of the 160 px
    CIPLAB crops, 5x5 CAM. Measured on 2 free cores: ~20 training samples/s at 160 px."""
    epochs: int = 60
    """The shipped detector (v0.2): 60 x 2048 samples took 1 h 43 min on two CPU cores (about
    20 samples/s with validation), inside the 2.5 h budget; the selected epoch was 31 (mean
    validation AUC 0.870). v0.1 (36 epochs, stem + 3 blocks frozen) reached 0.861 in 59 min."""
    epoch_size: int = 2048
    """Samples per epoch (drawn with replacement by source shares)."""
    batch_size: int = 32
    lr: float = 2e-3
    """Peak learning rate of the new head; the backbone gets ``backbone_lr``."""
    backbone_lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 40
    frozen_blocks: int = 0
    """The stem and this many MBConv blocks keep their ImageNet weights. Freezing saves CPU
    backward time (3 blocks: 1.25x the samples per second) but blend edges and hand edits are
    low-level traces: with nothing frozen, validation AUC on hand-edited faces rose 0.67 -> 0.70
    in equal 6-epoch runs, and the shipped v0.2 trains every block."""
    dropout: float = 0.2
    label_smoothing: float = 0.05
    seed: int = 0
    pretrained: bool = True
    weights: dict[str, float] = field(default_factory=lambda: dict(DETECTOR_WEIGHTS))


FAMILY_RECIPE = {"frozen_blocks": 6, "epochs": 8, "epoch_size": 1536}
"""The classifier starts from the same backbone but learns an easier, coarser task: fewer
trainable blocks and samples."""


def default_config(task: str, **overrides) -> TrainConfig:
    """The shipped recipe for ``task``, with ``overrides`` (``None`` values ignored) applied."""
    if task not in ("detector", "family"):
        raise ValueError(f"task must be 'detector' or 'family', got {task!r}")
    recipe = {"weights": dict(DETECTOR_WEIGHTS)}
    if task == "family":
        recipe = {"weights": dict(FAMILY_WEIGHTS), **FAMILY_RECIPE}
    recipe |= {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(TrainConfig(task=task), **recipe)


def num_outputs(task: str) -> int:
    return 1 if task == "detector" else len(FAMILIES)


CHANNELS_LAST = torch.channels_last
"""Memory format of the network and its batches in training and validation. On the 2-core CPU,
oneDNN runs a Lite0 training step (32 crops of 160 px, stem frozen) in 648 ms on channels-last
tensors against 1049 ms on the default layout (``benchmarks/bench_training.py``); the weights
and the export do not change."""


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(config: TrainConfig) -> CamNet:
    model = CamNet(num_outputs(config.task), pretrained=config.pretrained, dropout=config.dropout)
    freeze_early(model, config.frozen_blocks)
    return model


def _optimizer(model: CamNet, config: TrainConfig) -> torch.optim.Optimizer:
    head = list(model.classifier.parameters())
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    return torch.optim.AdamW(
        [
            {"params": body, "lr": config.backbone_lr, "peak": config.backbone_lr},
            {"params": head, "lr": config.lr, "peak": config.lr},
        ],
        weight_decay=config.weight_decay,
    )


def _loss(task: str, logits: torch.Tensor, target: torch.Tensor, smoothing: float):
    if task == "detector":
        y = target.float()[:, None] * (1 - smoothing) + 0.5 * smoothing
        return nn.functional.binary_cross_entropy_with_logits(logits, y)
    return nn.functional.cross_entropy(logits, target.long(), label_smoothing=smoothing)


def eval_plan(crops: Sequence[FaceCrop], task: str) -> list[Sample]:
    """The fixed validation/test plan: every crop once plus a self-blend of each real (detector);
    the fakes and the self-blends (classifier)."""
    plan = fixed_eval_plan(crops)
    if task == "family":
        plan = [s for s in plan if s.blend or crops[s.crop].row.label == 1]
    return plan


def eval_dataset(
    crops: Sequence[FaceCrop], plan: Sequence[Sample], config: TrainConfig, seed: int
) -> FaceDataset:
    """A fixed plan rendered without augmentation (validation, test, export), seeded by ``seed``."""
    return FaceDataset(
        crops,
        plan,
        size=config.size,
        task=config.task,
        seed=seed,
        epoch=0,
        chain=EVAL_CHAIN,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


@torch.no_grad()
def predict(
    model: nn.Module,
    crops: Sequence[FaceCrop],
    plan: Sequence[Sample],
    config: TrainConfig,
    *,
    device: torch.device,
    seed: int = 12345,
    batch_size: int = 64,
    workers: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Logits, targets and sources of a fixed plan, rendered without augmentation.

    Self-blends are seeded by ``seed`` (and the index), so every call sees the same fakes.
    """
    ds = eval_dataset(crops, plan, config, seed)
    model.eval()
    logits, targets = [], []
    for x, y, _ in DataLoader(ds, batch_size=batch_size, num_workers=workers):
        out, _cam = model(x.to(device, memory_format=CHANNELS_LAST))
        logits.append(out.float().cpu().numpy())
        targets.append(y.numpy())
    sources = [sample_source(crops[s.crop], s.blend) for s in plan]
    return np.concatenate(logits), np.concatenate(targets), sources


def source_aucs(scores: np.ndarray, labels: np.ndarray, sources: Sequence[str]) -> dict:
    """AUC of each fake source against its reals (:data:`AUC_PAIRS`), and of all together."""
    sources = np.asarray(sources)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    out = {}
    for fake, reals in AUC_PAIRS.items():
        pick = (sources == fake) | np.isin(sources, reals)
        if (sources == fake).any() and np.isin(sources, reals).any():
            out[fake] = roc_auc(labels[pick], scores[pick])
    if 0 < labels.sum() < len(labels):
        out["all"] = roc_auc(labels, scores)
    return out


def validation_summary(
    config: TrainConfig, logits: np.ndarray, targets: np.ndarray, sources: Sequence[str]
) -> tuple[float, dict]:
    """Selection score and the metrics logged for one validation pass."""
    if config.task == "detector":
        aucs = source_aucs(logits[:, 0], targets, sources)
        per_source = [v for k, v in aucs.items() if k != "all"]
        return float(np.mean(per_source)), {"auc": aucs}
    pred = logits.argmax(axis=1)
    recalls = {
        FAMILIES[c]: float((pred[targets == c] == c).mean())
        for c in range(len(FAMILIES))
        if (targets == c).any()
    }
    return float(np.mean(list(recalls.values()))), {"recall": recalls}


def _setup_logging(out_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(out_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def train(
    config: TrainConfig,
    train_crops: Sequence[FaceCrop],
    val_crops: Sequence[FaceCrop],
    out_dir: Path,
    options: RunOptions = DEFAULT_RUN,
) -> dict:
    """Train (or resume) into ``out_dir``; returns the final checkpoint's state.

    ``out_dir`` gets ``last.pt`` (resumable), ``best.pt`` (best validation score),
    ``history.jsonl`` (one line per epoch) and ``train.log``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    handler = _setup_logging(out_dir)
    try:
        return _train(config, train_crops, val_crops, out_dir, options)
    finally:
        log.removeHandler(handler)
        handler.close()


def _train(config, train_crops, val_crops, out_dir: Path, options: RunOptions) -> dict:
    if options.threads:
        torch.set_num_threads(options.threads)
    torch.manual_seed(config.seed)
    device = pick_device(options.device)
    steps = ImageSteps(config, train_crops, val_crops, device, workers=options.workers)
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


class ImageSteps:
    """The image nets' steps for :func:`checkpoint.run`.

    Every sample is a pure function of ``(seed, epoch, index)`` (plan and rendering), so an
    epoch restarts at any sample; the learning rate is a pure function of the global step, so
    there is no scheduler state to lose.
    """

    scheduler = None
    replace_best_on_tie = False

    def __init__(
        self,
        config: TrainConfig,
        train_crops: Sequence[FaceCrop],
        val_crops: Sequence[FaceCrop],
        device: torch.device,
        *,
        workers: int = 1,
    ) -> None:
        self.config, self.device, self.workers = config, device, workers
        self.train_crops, self.val_crops = train_crops, val_crops
        self.model = build_model(config).to(device, memory_format=CHANNELS_LAST)
        self.optimizer = _optimizer(self.model, config)
        self.steps_per_epoch = math.ceil(config.epoch_size / config.batch_size)
        self.total_steps = config.epochs * self.steps_per_epoch
        self.val_plan = eval_plan(val_crops, config.task)
        log.info(
            "device %s, %d train crops, %d val crops, %d steps/epoch",
            device,
            len(train_crops),
            len(val_crops),
            self.steps_per_epoch,
        )

    def epoch(self, epoch: int, start: int):
        """The epoch's seeded plan from sample ``start`` on, through a ``DataLoader``."""
        config = self.config
        rng = np.random.default_rng([config.seed, epoch, 7])
        plan = plan_epoch(self.train_crops, config.weights, config.epoch_size, rng)
        if config.task == "family":
            plan = [s for s in plan if s.blend or self.train_crops[s.crop].row.label == 1]
        ds = FaceDataset(
            self.train_crops,
            plan,
            size=config.size,
            task=config.task,
            seed=config.seed,
            epoch=epoch,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
        )
        loader = DataLoader(
            Subset(ds, range(start, len(ds))),
            batch_size=config.batch_size,
            num_workers=self.workers,
            persistent_workers=False,
        )
        set_train_mode(self.model, config.frozen_blocks)
        return iter(loader)

    def step(self, batch, step: int) -> tuple[float, int]:
        x, y, _ = batch
        config = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(step, self.total_steps, group["peak"], config.warmup_steps)
        logits, _cam = self.model(x.to(self.device, memory_format=CHANNELS_LAST))
        loss = _loss(config.task, logits, y.to(self.device), config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach()), len(y)

    def end_epoch(self, summary: EpochSummary) -> tuple[float, dict]:
        """Validation score (mean per-source AUC, or macro recall) and the history record."""
        logits, targets, sources = predict(
            self.model,
            self.val_crops,
            self.val_plan,
            self.config,
            device=self.device,
            workers=self.workers,
        )
        score, metrics = validation_summary(self.config, logits, targets, sources)
        record = {
            "epoch": summary.epoch,
            "train_loss": summary.loss,
            "train_s": round(summary.seconds, 1),
            "samples_per_s": round(summary.samples / max(summary.seconds, 1e-9), 2),
            "val_score": score,
            **metrics,
        }
        log.info(
            "epoch %d done in %.0f s: val %s", summary.epoch, summary.seconds, json.dumps(record)
        )
        return score, record


__all__ = [
    "AUC_PAIRS",
    "DETECTOR_WEIGHTS",
    "FAMILY_WEIGHTS",
    "ImageSteps",
    "RunOptions",
    "TrainConfig",
    "build_model",
    "default_config",
    "eval_dataset",
    "eval_plan",
    "learning_rate",
    "pick_device",
    "predict",
    "source_aucs",
    "train",
    "validation_summary",
]

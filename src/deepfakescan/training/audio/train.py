"""Train the audio detector: seeded, checkpointed, resumable, CPU-sized.

Steps (each a small function): plan/generate the corpus -> cache window features ->
train ``AudioResNet`` on augmented windows through the shared loop (:mod:`..checkpoint`) ->
choose the best epoch by validation file-level EER -> fit Platt calibration and the threshold
on validation files scored exactly as ``scan()`` scores them -> save ``final.pt`` +
``calibration.json`` in the run directory. ``export.py`` turns that into ``audio.onnx`` +
``audio.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ... import features as F
from ...detectors.audio import file_logit
from ...evaluation import metrics as M
from .. import checkpoint, paths
from ..allocator import reuse_freed_memory
from ..checkpoint import BEST, EpochSummary, LoopOptions, load_checkpoint
from ..manifest import read_manifest, write_manifest
from . import data as D
from .nets import AudioResNet, count_parameters

MODEL = "audio"
"""The model's name: its bundle, and its folder under ``$DEEPFAKESCAN_CACHE_DIR``."""


@dataclass
class TrainConfig:
    data_root: Path = field(default_factory=paths.data_root)
    work_dir: Path = field(default_factory=lambda: paths.model_cache(MODEL))
    """Generated fakes, window and feature caches, the vocoder (shared by every run)."""
    run_dir: Path = field(default_factory=lambda: paths.run_dir(MODEL))
    """Checkpoints, log, ``final.pt`` and ``calibration.json`` of this run."""
    leave_out: str | None = None
    """A source (``nsf-vocoded-fake``) to hold out of train and val for the generalisation run."""
    epochs: int = 18
    """A 12-epoch run (with a 1500-step vocoder) matched the 18-epoch one's validation EER
    (0.060) but not its test figures: mean EER over the seven synthesised families 7.2 %, against
    3.8 % (the shipped run) and 5.5 % (this recipe rerun from scratch)."""
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-3
    seed: int = 0
    threads: int = 2
    jobs: int = 2
    n_aug_real: int = 5
    n_aug_fake: int = 2
    channels: tuple[int, ...] = (16, 32, 48, 64)
    features: str = F.FEATURE_KIND
    """Which of ``features.FEATURE_KINDS`` the network reads."""
    balance: float = 0.5
    """Window weight ``count(source) ** -balance`` (then classes equalised): 0 is plain
    class balancing; 0.5 lifts rare sources (short FSDD fakes, the few NSF files) without
    letting a 6-file source dominate."""
    max_train_windows: int | None = None
    """Cap (a seeded subset) to keep an epoch short; None keeps all."""
    manifests: dict[str, str] = field(default_factory=dict)

    RUN_FIELDS: ClassVar[tuple[str, ...]] = (
        "data_root",
        "work_dir",
        "run_dir",
        "threads",
        "jobs",
        "manifests",
    )
    """Where and how fast a run goes: not part of the recipe a checkpoint is checked against."""

    def recipe(self) -> dict[str, Any]:
        """What decides the weights (saved in every checkpoint, compared on resume)."""
        return {k: v for k, v in asdict(self).items() if k not in self.RUN_FIELDS}


def _log(run_dir: Path):
    run_dir.mkdir(parents=True, exist_ok=True)
    f = (run_dir / "train.log").open("a", encoding="utf-8")

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        f.write(line + "\n")
        f.flush()

    return log


def load_splits(cfg: TrainConfig) -> dict[str, list[D.Row]]:
    """Rows per split from the committed manifests (planned afresh if they are missing)."""
    manifests = D.manifest_paths()
    if not all(manifests[s].is_file() for s in D.SPLITS):
        rows = D.plan_corpus(Path(cfg.data_root), cfg.seed)
        loo = D.leave_one_out(rows)
        for s in D.SPLITS:
            write_manifest(manifests[s], rows[s], D.Row)
            write_manifest(manifests["loo_" + s], loo[s], D.Row)
    # the leave-one-out run filters the main splits (same cached windows)
    cfg.manifests = {s: str(manifests[s]) for s in D.SPLITS}
    return {s: read_manifest(manifests[s], D.Row) for s in D.SPLITS}


def prepare(cfg: TrainConfig, log=print) -> dict[str, list[D.Row]]:
    """Manifests, work dir links and every generated file (kept when already there)."""
    splits = load_splits(cfg)
    D.prepare_work_dir(Path(cfg.work_dir), Path(cfg.data_root))
    every = [r for s in D.SPLITS for r in splits[s]]
    D.S.require_programs({r.family for r in every})
    if any(r.family == D.NEURAL_FAMILY for r in every):
        D.ensure_vocoder(splits["train"], Path(cfg.work_dir), cfg.seed, log)
    failures = D.generate(every, Path(cfg.work_dir), cfg.seed, cfg.jobs, log)
    if failures:
        log(f"{len(failures)} files could not be generated; they are skipped")
    ok = {s: [r for r in splits[s] if (Path(cfg.work_dir) / r.path).is_file()] for s in D.SPLITS}
    return ok


CHANNELS_LAST = torch.channels_last
"""Memory format of the network and its batches while training. oneDNN runs this net's
convolutions, batch norms and stem pooling on channels-last tensors 1.8x faster on the CPU
(a step of 64 spectrogram windows, 2 threads: 128 ms against 233 ms in
``benchmarks/bench_training.py``), and an epoch is mostly those steps. Only the layout changes:
the weights, the exported graph and ``scan()`` are the same."""


def _mask_draws(n: int, rows: int, frames: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Start and width of one time mask and one row mask for each of ``n`` windows."""
    t0 = torch.randint(0, frames - 20, (n,), generator=g)
    tw = torch.randint(0, 21, (n,), generator=g)
    c0 = torch.randint(0, rows - 4, (n,), generator=g)
    cw = torch.randint(0, 5, (n,), generator=g)
    return t0, tw, c0, cw


def _spec_augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One random time mask (<= 20 frames) and one mask of <= 4 rows (coefficients or bins)."""
    n, _, c, t = x.shape
    t0, tw, c0, cw = _mask_draws(n, c, t, g)
    ar_t = torch.arange(t)[None, :]
    ar_c = torch.arange(c)[None, :]
    mt = (ar_t >= t0[:, None]) & (ar_t < (t0 + tw)[:, None])
    mc = (ar_c >= c0[:, None]) & (ar_c < (c0 + cw)[:, None])
    x = x.clone().masked_fill(mt[:, None, None, :], 0.0)
    return x.masked_fill(mc[:, None, :, None], 0.0)


@torch.inference_mode()
def predict_windows(model: nn.Module, x: np.ndarray, batch: int = 256) -> np.ndarray:
    model.eval()
    out = [
        model(
            torch.from_numpy(x[i : i + batch].astype(np.float32)).contiguous(
                memory_format=CHANNELS_LAST
            )
        ).numpy()
        for i in range(0, len(x), batch)
    ]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def file_scores(window_logits: np.ndarray, file_idx: np.ndarray, n_files: int) -> np.ndarray:
    """File logit per file by the detector's rule; NaN for files with no voiced window."""
    out = np.full(n_files, np.nan)
    for i in range(n_files):
        z = window_logits[file_idx == i]
        if len(z):
            out[i] = file_logit(z)
    return out


def _val_metrics(model, val: dict, rows: list[D.Row]) -> dict:
    z = predict_windows(model, val["x"])
    fz = file_scores(z, val["file"], len(rows))
    y = np.array([r.y for r in rows])
    ok = ~np.isnan(fz)
    return {
        "window_auc": M.roc_auc(val["y"], z),
        "file_auc": M.roc_auc(y[ok], fz[ok]),
        "file_eer": M.eer(y[ok], fz[ok]),
        "files_scored": int(ok.sum()),
    }


@dataclass
class AudioSteps:
    """The audio net's steps for :func:`checkpoint.run`: shuffled windows with SpecAugment
    masks, an optional per-step LR scheduler (OneCycleLR in a run), validation by file EER.

    Epoch ``e`` draws its order and its masks from one generator seeded ``seed * 1000 + e``;
    resuming inside an epoch replays the masks of the batches already trained, so a resumed
    epoch sees the windows and masks an uncut one would.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    x: torch.Tensor
    """Feature windows (N, C, H, W), any float dtype (cast per batch)."""
    y: torch.Tensor
    batch_size: int
    seed: int
    weights: torch.Tensor | None = None
    """Per-window loss weights (None: plain mean)."""
    validate: Callable[[nn.Module], dict] | None = None
    """Validation metrics of the model (``file_eer`` picks the best epoch); None: no validation."""
    log: Callable[[str], None] = print
    replace_best_on_tie: ClassVar[bool] = True
    """An epoch as good as the best so far (equal EER) becomes the best: the later one."""

    def __post_init__(self) -> None:
        reduction = "none" if self.weights is not None else "mean"
        self.loss_fn = nn.BCEWithLogitsLoss(reduction=reduction)
        self._g = torch.Generator()

    def epoch(self, epoch: int, start: int) -> Iterator[torch.Tensor]:
        self.model.train()
        self._g = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        perm = torch.randperm(len(self.y), generator=self._g)
        batches = [perm[b : b + self.batch_size] for b in range(0, len(self.y), self.batch_size)]
        done = -(-start // self.batch_size)
        for idx in batches[:done]:  # the masks those batches drew
            _mask_draws(len(idx), self.x.shape[2], self.x.shape[3], self._g)
        return iter(batches[done:])

    def step(self, idx: torch.Tensor, step: int) -> tuple[float, int]:
        xb = self.x[idx].float().contiguous(memory_format=CHANNELS_LAST)
        loss = self.loss_fn(self.model(_spec_augment(xb, self._g)), self.y[idx])
        if self.weights is not None:
            loss = (loss * self.weights[idx]).sum() / self.weights[idx].sum()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return float(loss.detach()), len(idx)

    def end_epoch(self, summary: EpochSummary) -> tuple[float, dict]:
        """Score = minus the validation file EER (0 without validation)."""
        t0 = time.monotonic()
        vm = self.validate(self.model) if self.validate else {}
        seconds = summary.seconds + time.monotonic() - t0
        if vm:
            self.log(
                f"epoch {summary.epoch}: loss {summary.loss:.4f}  val window AUC "
                f"{vm['window_auc']:.4f}  file AUC {vm['file_auc']:.4f}  "
                f"file EER {vm['file_eer']:.4f}  ({seconds:.0f} s)"
            )
        record = {"epoch": summary.epoch, "loss": summary.loss, **vm, "seconds": seconds}
        return -vm.get("file_eer", 0.0), record


def fit_arrays(
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 3,
    lr: float = 3e-3,
    batch_size: int = 32,
    channels: tuple[int, ...] = (8, 16, 24),
    seed: int = 0,
    run_dir: Path | None = None,
    max_steps: int | None = None,
) -> nn.Module:
    """Train a fresh ``AudioResNet`` on in-memory windows (the tests' tiny end-to-end run).

    Goes through the shared loop: with ``run_dir`` it checkpoints there and resumes from it,
    and ``max_steps`` stops it early (resumable); without, it runs in a temporary directory.
    """
    torch.manual_seed(seed)
    model = AudioResNet(channels).to(memory_format=CHANNELS_LAST)
    steps = AudioSteps(
        model,
        torch.optim.AdamW(model.parameters(), lr=lr),
        None,
        torch.from_numpy(np.asarray(x, np.float32)),
        torch.from_numpy(np.asarray(y, np.float32)),
        batch_size,
        seed,
    )
    config = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "channels": tuple(channels)}
    options = LoopOptions(epochs=epochs, max_steps=max_steps)
    with contextlib.ExitStack() as stack:
        where = run_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        checkpoint.run(steps, {**config, "seed": seed}, where, options, log=lambda _: None)
    return model.eval()


def train(cfg: TrainConfig, *, resume: bool = True, skip_generate: bool = False) -> Path:
    """Run (or resume) a training run; returns the run directory holding ``final.pt``."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    reuse_freed_memory()  # before the vocoder, the forked synthesis workers and the epochs
    log = _log(Path(cfg.run_dir))
    log(f"config: {json.dumps(asdict(cfg), default=str)}")
    splits, tr, va = load_windows(cfg, log, skip_generate=skip_generate)
    steps = _run_steps(cfg, tr, va, splits, log)
    options = LoopOptions(epochs=cfg.epochs, resume=resume)
    final = checkpoint.run(steps, cfg.recipe(), Path(cfg.run_dir), options, log=log)
    _finish(cfg, steps.model, tr, va, splits, final, log)
    return Path(cfg.run_dir)


def load_windows(
    cfg: TrainConfig, log=print, *, skip_generate: bool = False
) -> tuple[dict[str, list[D.Row]], dict, dict]:
    """Splits, and the train (augmented) and validation (as scanned) feature windows."""
    splits = load_splits(cfg) if skip_generate else prepare(cfg, log)
    work = Path(cfg.work_dir)
    tr_path = D.build_split_cache(
        splits["train"],
        work,
        "train",
        n_aug_real=cfg.n_aug_real,
        n_aug_fake=cfg.n_aug_fake,
        seed=cfg.seed,
        jobs=cfg.jobs,
        log=log,
    )
    va_path = D.build_split_cache(
        splits["val"], work, "val", n_aug_real=0, n_aug_fake=0, jobs=cfg.jobs, log=log
    )
    tr = D.featurise(tr_path, cfg.features, cfg.jobs, log)
    va = D.featurise(va_path, cfg.features, cfg.jobs, log)
    if cfg.leave_out:  # same cached windows, minus every file of the held-out source
        tr, splits["train"] = _without(tr, splits["train"], cfg.leave_out)
        va, splits["val"] = _without(va, splits["val"], cfg.leave_out)
    if cfg.max_train_windows and len(tr["y"]) > cfg.max_train_windows:
        keep = np.sort(
            np.random.default_rng(cfg.seed).permutation(len(tr["y"]))[: cfg.max_train_windows]
        )
        tr = {**tr, "x": tr["x"][keep], "y": tr["y"][keep], "file": tr["file"][keep]}
    n_fake = int(tr["y"].sum())
    log(f"train windows: {len(tr['y']) - n_fake} real, {n_fake} fake; val windows {len(va['y'])}")
    return splits, tr, va


def _run_steps(cfg: TrainConfig, tr: dict, va: dict, splits: dict, log) -> AudioSteps:
    """The network, AdamW with OneCycleLR per step, source-balanced loss weights."""
    model = AudioResNet(cfg.channels, kind=cfg.features).to(memory_format=CHANNELS_LAST)
    log(f"AudioResNet{cfg.channels} on {cfg.features}: {count_parameters(model)} parameters")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(tr["y"]) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
    return AudioSteps(
        model,
        opt,
        sched,
        torch.from_numpy(tr["x"]),
        torch.from_numpy(tr["y"].astype(np.float32)),
        cfg.batch_size,
        cfg.seed,
        weights=_window_weights(tr, splits["train"], cfg.balance),
        validate=partial(_val_metrics, val=va, rows=splits["val"]),
        log=log,
    )


def _finish(cfg: TrainConfig, model, tr: dict, va: dict, splits: dict, final: dict, log) -> None:
    """Best epoch's weights -> calibration on validation -> ``calibration.json`` + ``final.pt``."""
    run_dir = Path(cfg.run_dir)
    model.load_state_dict(load_checkpoint(run_dir / BEST)["model"])
    best_epoch, best_eer = final["best_epoch"], -final["best"]
    cal = calibrate(model, va, splits["val"])
    cal.update(
        best_epoch=best_epoch,
        best_val_eer=best_eer,
        history=final["history"],
        config=json.loads(json.dumps(asdict(cfg), default=str)),
    )
    n_fake = int(tr["y"].sum())
    cal["train_windows"] = {"real": len(tr["y"]) - n_fake, "fake": n_fake}
    cal["train_counts"] = _counts(splits["train"])
    (run_dir / "calibration.json").write_text(json.dumps(cal, indent=2))
    torch.save(model.state_dict(), run_dir / "final.pt")
    log(
        f"done: best epoch {best_epoch}, val EER {best_eer:.4f}; "
        f"threshold {cal['threshold']:.3f}, band {cal['uncertain_band']}"
    )


def _window_weights(cache: dict, rows: list[D.Row], balance: float) -> torch.Tensor:
    """Per-window loss weights: rarer sources count more, and both classes weigh the same."""
    source = np.array([rows[i].source for i in cache["file"]])
    y = cache["y"].astype(bool)
    names, inverse, counts = np.unique(source, return_inverse=True, return_counts=True)
    w = counts[inverse].astype(np.float64) ** -balance
    for cls in (False, True):
        w[y == cls] *= 0.5 * len(w) / w[y == cls].sum()
    return torch.from_numpy(w.astype(np.float32))


def _without(cache: dict, rows: list[D.Row], source: str) -> tuple[dict, list[D.Row]]:
    keep_files = [i for i, r in enumerate(rows) if r.source != source]
    remap = np.full(len(rows), -1)
    remap[keep_files] = np.arange(len(keep_files))
    mask = remap[cache["file"]] >= 0
    out = {
        **cache,
        "x": cache["x"][mask],
        "y": cache["y"][mask],
        "file": remap[cache["file"][mask]],
    }
    return out, [rows[i] for i in keep_files]


def _counts(rows: list[D.Row]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r.source] = out.get(r.source, 0) + 1
    return out


def calibrate(model: nn.Module, val: dict, rows: list[D.Row]) -> dict:
    """Platt scaling of file logits, then the threshold and uncertain band, all on validation."""
    z = file_scores(predict_windows(model, val["x"]), val["file"], len(rows))
    y = np.array([r.y for r in rows])
    ok = ~np.isnan(z)
    z, y = z[ok], y[ok]
    a, b = M.fit_platt(z, y)
    p = M.apply_platt(z, a, b)
    thr_fpr = M.pick_threshold_at_fpr(p[y == 0], M.VALIDATION_FPR_BUDGET)
    thr_eer = _eer_threshold(p, y)
    threshold = float(max(thr_fpr, thr_eer))
    band = M.uncertain_band(threshold)
    return {
        "calibration": {"method": "platt", "a": float(a), "b": float(b)},
        "threshold": threshold,
        "threshold_rule": (
            f"max(FPR <= {M.VALIDATION_FPR_BUDGET} on validation reals, validation EER point)"
        ),
        "uncertain_band": [float(band[0]), float(band[1])],
        "val": {
            "files": int(len(y)),
            "real": int((y == 0).sum()),
            "fake": int(y.sum()),
            "auc": M.roc_auc(y, p),
            "eer": M.eer(y, p),
            "fpr_at_threshold": float(np.mean(p[y == 0] >= threshold)),
            "tpr_at_threshold": float(np.mean(p[y == 1] >= threshold)),
            "in_band": float(np.mean((p >= band[0]) & (p < band[1]))),
        },
    }


def _eer_threshold(p: np.ndarray, y: np.ndarray) -> float:
    best, thr = 2.0, 0.5
    for t in np.unique(p):
        fpr = np.mean(p[y == 0] >= t)
        fnr = np.mean(p[y == 1] < t)
        if abs(fpr - fnr) < best:
            best, thr = abs(fpr - fnr), float(t)
    return thr


__all__ = [
    "AudioSteps",
    "TrainConfig",
    "calibrate",
    "fit_arrays",
    "load_splits",
    "load_windows",
    "predict_windows",
    "prepare",
    "train",
]

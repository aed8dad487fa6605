"""``deepfakescan train image|image-family``: reproduce the image detector and family classifier.

Reads the committed manifests (``tools/make_image_manifests.py`` writes them), caches the aligned
face crops (``$DEEPFAKESCAN_CACHE_DIR/image/crops``, shared by both models), trains with
checkpoints every few minutes (rerun the same command to resume after an interruption), and
exports ``NAME.onnx`` + ``NAME.json`` into ``RUN/export`` (``--out src/deepfakescan/models`` for
the shipped models). A leave-one-source-out run (``--leave-out SOURCE``) uses the
``*_loso-SOURCE`` manifests; its bundle is named ``NAME-loso-SOURCE`` and its card holds the
generalisation numbers. The run options are the shared ones of ``training/command.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

from .. import paths
from ..command import data_root_for, out_dir_for, run_dir_for, run_options_for

log = logging.getLogger("deepfakescan.train.image")

TASKS = {"image": "detector", "image-family": "family"}
"""Subcommand (and bundle name) -> the task ``train.py`` trains."""
CROPS_MODEL = "image"
"""Both models read the crops cached under ``CACHE/image/crops``."""
RECIPE = "default: the shipped recipe's"
DESCRIPTION = (
    "Cache the face crops of the committed manifests, train (checkpoints every few minutes;"
    " rerun the same command to resume), then export NAME.onnx + NAME.json into RUN/export."
    " --leave-out SOURCE trains on the *_loso-SOURCE manifests (bundle NAME-loso-SOURCE);"
    " --metrics NAME=FILE puts `deepfakescan eval` figures into the card"
    " (tools/make_image_eval.py makes the test sets)."
)
CARD_RECIPE = ("size", "epochs", "epoch_size", "frozen_blocks")
"""Recipe fields the card's training command spells out (then the seed)."""


def add_parser(sub: Any, name: str) -> argparse.ArgumentParser:
    """Register ``train image`` or ``train image-family``; returns the new parser."""
    what = "image detector" if TASKS[name] == "detector" else "manipulation-family classifier"
    p = sub.add_parser(
        name,
        help=f"train the {what} (seeded, resumable)",
        description=DESCRIPTION,
    )
    # default None: the task's shipped recipe (train.TrainConfig / FAMILY_RECIPE), not imported
    # here since that would import torch
    g = p.add_argument_group("recipe (defaults: the shipped model's, image/train.py)")
    g.add_argument("--size", type=int, help=f"input pixels, a multiple of 32 ({RECIPE})")
    g.add_argument("--epochs", type=int, help=RECIPE)
    g.add_argument("--epoch-size", type=int, help=f"samples per epoch ({RECIPE})")
    g.add_argument("--batch-size", type=int, help=RECIPE)
    g.add_argument("--frozen-blocks", type=int, help=f"stem + N blocks kept frozen ({RECIPE})")
    g.add_argument("--lr", type=float, help=f"head learning rate ({RECIPE})")
    g.add_argument("--backbone-lr", type=float, help=RECIPE)
    g.add_argument("--seed", type=int, help=RECIPE)
    g = p.add_argument_group("speed")
    g.add_argument("--workers", type=int, default=1, help="data loader processes (default 1)")
    g.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    g.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    g.add_argument("--checkpoint-minutes", type=float, default=5.0)
    g.add_argument("--max-steps", type=int, help="stop after N steps (resumable)")
    return p


def run(args: argparse.Namespace) -> int:
    """Cache the crops, train (or resume), export, as the run options say."""
    from .data import load_crops
    from .train import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    evals = _card_metrics(args.metrics)
    crops_dir = paths.model_cache(CROPS_MODEL) / "crops"
    rows = _cache_crops(args, crops_dir)
    if args.prepare_only:
        return 0
    loaded = {split: load_crops(r, crops_dir)[0] for split, r in rows.items()}
    config = _config(args)
    run_dir = run_dir_for(args, args.model)
    if not args.export_only:
        options = run_options_for(args)
        final = train(config, loaded["train"], loaded["val"], run_dir, options)
        if final["epoch"] < config.epochs:
            print(f"stopped at epoch {final['epoch']}; rerun the same command to resume")
            return 0
    if args.export:
        _export(args, config, run_dir, loaded, evals)
    return 0


def _cache_crops(args: argparse.Namespace, crops_dir: Path) -> dict[str, list]:
    """The split's manifest rows, with every row's face crop cached."""
    from ..manifest import read_manifest
    from .data import ManifestRow, build_crop_cache

    suffix = f"_loso-{args.leave_out}" if args.leave_out else ""
    rows = {
        split: read_manifest(paths.manifest_dir() / f"image_{split}{suffix}.csv", ManifestRow)
        for split in ("train", "val", "test")
    }
    every = [r for split_rows in rows.values() for r in split_rows]
    counts = build_crop_cache(every, data_root_for(args), crops_dir)
    for (source, found), n in sorted(counts.items()):
        log.info("crops: %s %s: %d", source, found, n)
    return rows


def _config(args: argparse.Namespace):
    """The task's shipped recipe with the options given; a leave-out run lists only the
    sources it really used (in the config and so in the card)."""
    from .train import default_config

    names = ("size", "epochs", "epoch_size", "batch_size", "frozen_blocks", "seed", "lr")
    config = default_config(
        TASKS[args.model], backbone_lr=args.backbone_lr, **{k: getattr(args, k) for k in names}
    )
    if args.leave_out:
        weights = {k: v for k, v in config.weights.items() if k != args.leave_out}
        config = dataclasses.replace(config, weights=weights)
    return config


def _card_metrics(items: list[str]) -> dict[str, dict]:
    """``--metrics NAME=FILE`` -> the card's ``eval`` entries (read before training starts)."""
    from ..eval_metrics import read_metrics_options, slim_eval_metrics

    return {
        name: slim_eval_metrics(metrics, f"deepfakescan eval {name}.csv --out {path.parent.name}")
        for name, (path, metrics) in read_metrics_options(items).items()
    }


def card_command(model: str, leave_out: str | None, config) -> str:
    """The training command the card names: the model, the leave-out source, the recipe."""
    fields = [("leave_out", leave_out), *[(f, getattr(config, f)) for f in CARD_RECIPE]]
    fields.append(("seed", config.seed))
    options = [f"--{k.replace('_', '-')} {v}" for k, v in fields if v is not None]
    return " ".join([f"deepfakescan train {model}", *options])


def _export(args: argparse.Namespace, config, run_dir: Path, loaded: dict, evals: dict) -> None:
    from ..checkpoint import BEST, load_checkpoint
    from .export import export_image_model

    name = f"{args.model}-loso-{args.leave_out}" if args.leave_out else args.model
    bundle = export_image_model(
        load_checkpoint(run_dir / BEST),
        loaded["val"],
        loaded["test"],
        out_dir_for(args, run_dir),
        name,
        command=card_command(args.model, args.leave_out, config),
        extra_metrics=evals or None,
    )
    print("\n".join(map(str, bundle)))


__all__ = ["add_parser", "card_command", "run"]

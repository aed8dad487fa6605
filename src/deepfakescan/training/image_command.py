"""``deepfakescan train image``: reproduce the shipped image detector and family classifier.

Kept apart from ``train_image`` so that building the command line never imports torch (the CLI
builds every parser, and torch is an optional extra). ``training/command.py`` registers this
with ``add_image_parser(sub)``.

The command reads the committed manifests (``tools/make_image_manifests.py`` writes them),
caches the aligned face crops, trains with checkpoints (rerun the same command to resume after
an interruption), and exports ``NAME.onnx`` + ``NAME.json``. A leave-one-source-out run
(``--leave-out SOURCE``) uses the ``*_loso-SOURCE`` manifests and exports into its run folder,
not into the package, so its card holds the generalisation numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("deepfakescan.train.image")

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
DEFAULT_CACHE = REPO_ROOT.parent / "cache" / "image"
DEFAULT_MANIFESTS = REPO_ROOT / "data" / "manifests"
DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
BUNDLE_NAMES = {"detector": "image", "family": "image-family"}


def add_image_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``train image`` on the ``train`` subparsers; returns the new parser."""
    p = sub.add_parser(
        "image",
        help="train the image detector or family classifier (seeded, resumable)",
        description=(
            "Cache face crops for the committed manifests, train (checkpoints every few minutes;"
            " rerun the same command to resume), then export NAME.onnx + NAME.json."
        ),
    )
    p.add_argument("--task", choices=("detector", "family"), default="detector")
    p.add_argument("--leave-out", metavar="SOURCE", help="e.g. stylegan2-fake (uses *_loso-*)")
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    p.add_argument("--manifests", type=Path, default=DEFAULT_MANIFESTS)
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="crops and runs")
    p.add_argument("--run", help="run folder name under CACHE/runs (default from task)")
    p.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    # default None: the shipped recipe of the task (train_image.TrainConfig / FAMILY_RECIPE);
    # not imported here, since that would import torch
    recipe = "default: the task's shipped recipe"
    p.add_argument("--size", type=int, help=f"input pixels, a multiple of 32 ({recipe})")
    p.add_argument("--epochs", type=int, help=recipe)
    p.add_argument("--epoch-size", type=int, help=f"samples per epoch ({recipe})")
    p.add_argument("--batch-size", type=int, help=recipe)
    p.add_argument("--frozen-blocks", type=int, help=f"stem + N blocks kept frozen ({recipe})")
    p.add_argument("--lr", type=float, help=f"head learning rate ({recipe})")
    p.add_argument("--backbone-lr", type=float, help=recipe)
    p.add_argument("--seed", type=int, help=recipe)
    p.add_argument("--workers", type=int, default=1, help="data loader processes (default 1)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--max-steps", type=int, help="stop after N steps (resumable)")
    p.add_argument("--no-resume", dest="resume", action="store_false")
    p.add_argument("--prepare-only", action="store_true", help="cache the face crops only")
    p.add_argument("--no-export", dest="export", action="store_false")
    p.add_argument("--export-only", action="store_true", help="export the run's best.pt")
    p.add_argument(
        "--eval",
        action="append",
        default=[],
        metavar="NAME=METRICS_JSON",
        help="metrics.json of `deepfakescan eval --out` to write into the card under NAME"
        " (repeatable; tools/make_image_eval.py makes the test sets)",
    )
    p.set_defaults(func=run_image, resume=True, export=True)
    return p


def _manifest_paths(args: argparse.Namespace) -> dict[str, Path]:
    suffix = f"_loso-{args.leave_out}" if args.leave_out else ""
    return {s: args.manifests / f"image_{s}{suffix}.csv" for s in ("train", "val", "test")}


def run_image(args: argparse.Namespace) -> int:
    """``deepfakescan train image``: cache, train (or resume), export."""
    try:
        import torch  # noqa: F401
    except ImportError:
        print("error: training needs PyTorch: pip install 'deepfakescan[train]'", file=sys.stderr)
        return 2
    from .image_data import build_crop_cache, load_crops, read_manifest
    from .train_image import BEST, RunOptions, default_config, load_checkpoint, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rows = {split: read_manifest(path) for split, path in _manifest_paths(args).items()}
    crops_dir = args.cache_dir / "crops"
    counts = build_crop_cache(
        [r for split_rows in rows.values() for r in split_rows], args.data_root, crops_dir
    )
    for (source, found), n in sorted(counts.items()):
        log.info("crops: %s %s: %d", source, found, n)
    if args.prepare_only:
        return 0
    loaded = {split: load_crops(r, crops_dir)[0] for split, r in rows.items()}
    config = default_config(
        args.task,
        size=args.size,
        epochs=args.epochs,
        epoch_size=args.epoch_size,
        batch_size=args.batch_size,
        frozen_blocks=args.frozen_blocks,
        seed=args.seed,
        lr=args.lr,
        backbone_lr=args.backbone_lr,
    )
    if args.leave_out:  # so the config (and the card) list only the sources really used
        weights = {k: v for k, v in config.weights.items() if k != args.leave_out}
        config = dataclasses.replace(config, weights=weights)
    run_name = args.run or BUNDLE_NAMES[args.task] + (
        f"-loso-{args.leave_out}" if args.leave_out else ""
    )
    run_dir = args.cache_dir / "runs" / run_name
    if not args.export_only:
        options = RunOptions(
            workers=args.workers,
            device=args.device,
            checkpoint_minutes=args.checkpoint_minutes,
            resume=args.resume,
            threads=args.threads,
            max_steps=args.max_steps,
        )
        final = train(config, loaded["train"], loaded["val"], run_dir, options)
        if final["epoch"] < config.epochs:
            print(f"stopped at epoch {final['epoch']}; rerun the same command to resume")
            return 0
    if not args.export:
        return 0
    from .export import slim_eval_metrics
    from .export_image import export_image_model

    evals = {}
    for item in args.eval:
        key, _, path = item.partition("=")
        metrics = json.loads(Path(path).read_text(encoding="utf-8"))
        evals[key] = slim_eval_metrics(
            metrics, f"deepfakescan eval {key}.csv --out {Path(path).parent.name}"
        )

    dest = run_dir if args.leave_out else args.models_dir
    name = run_name if args.leave_out else BUNDLE_NAMES[args.task]
    command = "deepfakescan train image " + " ".join(
        f"--{k.replace('_', '-')} {v}"
        for k, v in [("task", args.task), ("leave_out", args.leave_out)]
        + [(f, getattr(config, f)) for f in ("size", "epochs", "epoch_size", "frozen_blocks")]
        + [("seed", config.seed)]
        if v is not None
    )
    paths = export_image_model(
        load_checkpoint(run_dir / BEST),
        loaded["val"],
        loaded["test"],
        dest,
        name,
        command=command,
        extra_metrics=evals or None,
    )
    print("\n".join(map(str, paths)))
    return 0


__all__ = ["add_image_parser", "run_image"]

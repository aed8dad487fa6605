"""``deepfakescan train image-synthetic``: reproduce the whole-image detector.

Reads the committed manifests (``$DEEPFAKESCAN_MANIFEST_DIR/synthetic_*.csv``: real and
collected fake files with their split) and the manifest of the autoencoder reconstructions
(``$DEEPFAKESCAN_CACHE_DIR/autoencoders/fakes/*/fakes.csv``, made by ``deepfakescan train
autoencoders``), trains with checkpoints every few minutes (rerun the same command to resume),
and exports ``image-synthetic.onnx`` + ``.json`` into ``RUN/export`` (``--out
src/deepfakescan/models`` for the shipped model). ``--leave-out SOURCE`` (a source or a glob
such as ``ae-vae*``) holds that source out of train and validation and tests on all of its
files: the generalisation figures; its bundle is ``image-synthetic-loso-SOURCE``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any

from .. import paths
from ..command import data_root_for, out_dir_for, run_dir_for, run_options_for

log = logging.getLogger("deepfakescan.train.synthetic")

MODEL = "image-synthetic"
MANIFEST_GLOB = "synthetic_*.csv"
FAKES_DIR = ("autoencoders", "fakes")
FAKES_GLOB = "*/fakes.csv"
"""``CACHE/autoencoders/fakes/<instance>/fakes.csv``: the reconstructions' manifests."""
RECIPE = "default: the shipped recipe's"
DESCRIPTION = (
    "Read the committed synthetic_*.csv manifests and the autoencoders' fakes.csv manifests"
    " (CACHE/autoencoders/fakes; `deepfakescan train autoencoders` makes them), cache the video"
    " frames, train (checkpoints every few minutes; rerun the same command to resume), then"
    " export image-synthetic.onnx + .json into RUN/export. --leave-out SOURCE (a source or a"
    " glob such as 'ae-vae*') holds it out of train and validation and tests on all its files"
    " (bundle image-synthetic-loso-SOURCE)."
)
CARD_RECIPE = ("epochs", "epoch_size", "batch_size", "lr", "seed", "npr")
"""Recipe fields the card's training command spells out."""


def add_parser(sub: Any, name: str) -> argparse.ArgumentParser:
    """Register ``train image-synthetic``; returns the new parser."""
    p = sub.add_parser(
        name,
        help="train the whole-image detector (seeded, resumable)",
        description=DESCRIPTION,
    )
    # default None: the recipe of train.TrainConfig (not imported here: that imports torch)
    g = p.add_argument_group("recipe (defaults: the shipped model's, synthetic/train.py)")
    g.add_argument("--epochs", type=int, help=RECIPE)
    g.add_argument("--epoch-size", type=int, help=f"samples per epoch ({RECIPE})")
    g.add_argument("--batch-size", type=int, help=RECIPE)
    g.add_argument("--lr", type=float, help=f"head learning rate ({RECIPE})")
    g.add_argument("--seed", type=int, help=RECIPE)
    g.add_argument(
        "--npr",
        action="store_true",
        default=None,
        help="input the neighbouring-pixel residual instead of the pixels (an experiment)",
    )
    g.add_argument(
        "--manifest",
        action="append",
        type=Path,
        metavar="CSV",
        help="manifest(s) to read instead of the default ones (repeatable)",
    )
    g = p.add_argument_group("speed")
    g.add_argument("--workers", type=int, default=1, help="data loader processes (default 1)")
    g.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    g.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    g.add_argument("--checkpoint-minutes", type=float, default=5.0)
    g.add_argument("--max-steps", type=int, help="stop after N steps (resumable)")
    return p


def manifest_files(args: argparse.Namespace) -> list[tuple[Path, str | None]]:
    """``(CSV, split)``: ``--manifest`` files, or the committed ``synthetic_<split>.csv`` and every
    instance's ``fakes.csv``; the split comes from a ``*_<split>.csv`` name, else its column."""
    if args.manifest:
        files = list(args.manifest)
    else:
        fakes = paths.cache_dir().joinpath(*FAKES_DIR)
        files = sorted(paths.manifest_dir().glob(MANIFEST_GLOB)) + sorted(fakes.glob(FAKES_GLOB))
    return [(f, _split_of(f)) for f in files]


def _split_of(path: Path) -> str | None:
    match = re.search(r"_(train|val|test)\.csv$", Path(path).name)
    return match.group(1) if match else None


def load_splits(args: argparse.Namespace) -> dict[str, Any]:
    """Every manifest's rows (each file once), split (with ``--leave-out``) and resolved; the
    video frames are cached first."""
    from .data import cache_frames, read_rows, resolve_paths, split_rows
    from .train import Split

    files = manifest_files(args)
    if not files:
        raise FileNotFoundError(
            f"no manifests: {paths.manifest_dir() / MANIFEST_GLOB} (and run `deepfakescan train "
            "autoencoders` for the reconstructions)"
        )
    rows = {(r.source, r.path, r.frame): r for f, split in files for r in read_rows(f, split)}
    rows = list(rows.values())
    frames = paths.model_cache(MODEL) / "frames"
    n = cache_frames(rows, data_root_for(args), frames)
    log.info("%d video frames cached in %s", n, frames)
    roots = [data_root_for(args), paths.cache_dir().joinpath(*FAKES_DIR)]
    splits = {}
    for name, split in split_rows(rows, args.leave_out).items():
        splits[name] = Split(split, resolve_paths(split, roots, frames))
        for (source, label), k in sorted(Counter((r.source, r.label) for r in split).items()):
            log.info("%s: %s (label %d): %d files", name, source, label, k)
    return splits


def _config(args: argparse.Namespace):
    from .train import TrainConfig

    given = {k: getattr(args, k) for k in CARD_RECIPE if getattr(args, k) is not None}
    return TrainConfig(**given, leave_out=args.leave_out)


def bundle_name(leave_out: str | None) -> str:
    """``image-synthetic``, or ``image-synthetic-loso-SOURCE`` (glob characters as ``_``)."""
    if not leave_out:
        return MODEL
    return f"{MODEL}-loso-{re.sub(r'[^A-Za-z0-9_.-]', '_', leave_out)}"


def card_command(leave_out: str | None, config) -> str:
    """The training command the card names: the leave-out source and the recipe."""
    fields = [("leave_out", leave_out), *[(f, getattr(config, f)) for f in CARD_RECIPE]]
    options = [
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
        for k, v in fields
        if v is not None and v is not False
    ]
    return " ".join([f"deepfakescan train {MODEL}", *options])


def run(args: argparse.Namespace) -> int:
    """Read the manifests, train (or resume), export, as the run options say."""
    from .train import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    evals = _card_metrics(args.metrics)
    splits = load_splits(args)
    if args.prepare_only:
        return 0
    config = _config(args)
    run_dir = run_dir_for(args, MODEL)
    if not args.export_only:
        options = run_options_for(args)
        final = train(config, splits["train"], splits["val"], run_dir, options)
        if final["epoch"] < config.epochs:
            print(f"stopped at epoch {final['epoch']}; rerun the same command to resume")
            return 0
    if args.export:
        _export(args, config, run_dir, splits, evals)
    return 0


def _card_metrics(items: list[str]) -> dict[str, dict]:
    from ..eval_metrics import read_metrics_options, slim_eval_metrics

    return {
        name: slim_eval_metrics(metrics, f"deepfakescan eval {name}.csv --out {path.parent.name}")
        for name, (path, metrics) in read_metrics_options(items).items()
    }


def _export(args: argparse.Namespace, config, run_dir: Path, splits: dict, evals: dict) -> None:
    from ..checkpoint import BEST, load_checkpoint
    from .export import export_synthetic_model
    from .table import card_table

    bundle = export_synthetic_model(
        load_checkpoint(run_dir / BEST),
        splits["val"],
        splits["test"],
        out_dir_for(args, run_dir),
        bundle_name(args.leave_out),
        command=card_command(args.leave_out, config),
        train=splits["train"],
        extra_metrics=evals or None,
        train_counts=Counter(r.source for r in splits["train"].rows),
    )
    print("\n".join(map(str, bundle)))
    print(card_table(json.loads(bundle[1].read_text(encoding="utf-8"))))


__all__ = ["add_parser", "bundle_name", "card_command", "load_splits", "manifest_files", "run"]

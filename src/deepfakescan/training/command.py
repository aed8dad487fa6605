"""``deepfakescan train <model>``: one command shape for every model and fake maker.

Each model's subcommand takes its recipe options and these run options:

- ``--run DIR``: the run directory (checkpoints, log, export); default
  ``$DEEPFAKESCAN_CACHE_DIR/<model>/runs/main``, or ``runs/loo-SOURCE`` with ``--leave-out``.
- ``--resume`` / ``--no-resume``: continue the run's checkpoint (the default: rerun the same
  command after an interruption) or start from scratch.
- ``--prepare-only`` (the data only: manifests, generated fakes, face crops), ``--export-only``
  (export the run as it stands), ``--no-export`` (train only).
- ``--out DIR``: where the bundle is exported; default ``<run>/export``. Nothing is written into
  the package unless asked: the shipped models are reproduced with
  ``--out src/deepfakescan/models``.
- ``--metrics [NAME=]FILE``: a ``metrics.json`` of ``deepfakescan eval --out``, written into the
  card on export (repeatable; a bare FILE is named ``test``).
- ``--data-root DIR`` and ``--leave-out SOURCE`` (a generalisation run).

``cli.py`` registers this with ``add_parser(subparsers)``. Building the parsers never imports
torch (an optional extra): each model's ``command.run`` imports its training code when run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import paths

LEAVE_OUT_RUN = "loo-{source}"
"""Default run name of a ``--leave-out SOURCE`` run."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``train`` and one subcommand per model; returns the ``train`` parser."""
    from .audio import command as audio
    from .autoencoders import command as autoencoders
    from .image import command as image
    from .synthetic import command as synthetic

    parser = subparsers.add_parser(
        "train",
        help="train and export models (needs the [train] extra)",
        description=(
            "Train the shipped models from the shared data (see the model cards). Every model "
            "takes the same run options; rerun a command to resume it."
        ),
    )
    sub = parser.add_subparsers(dest="model", required=True)
    models = (
        ("audio", audio),
        ("image", image),
        ("image-family", image),
        ("image-synthetic", synthetic),
        ("autoencoders", autoencoders),
    )
    for name, module in models:
        p = module.add_parser(sub, name)
        add_run_options(p, name)
        p.set_defaults(func=_needs_torch(module.run), model=name)
    return parser


def add_run_options(p: argparse.ArgumentParser, model: str) -> None:
    """The options every model's subcommand shares (see the module docstring)."""
    g = p.add_argument_group("run options (the same for every model)")
    g.add_argument(
        "--run",
        type=Path,
        metavar="DIR",
        help=f"run directory (default $DEEPFAKESCAN_CACHE_DIR/{model}/runs/main,"
        " or runs/loo-SOURCE with --leave-out)",
    )
    g.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue the run's checkpoint (default) or start from scratch",
    )
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--prepare-only", action="store_true", help="prepare the data only")
    mode.add_argument("--export-only", action="store_true", help="export the run as it stands")
    mode.add_argument("--no-export", dest="export", action="store_false", help="train only")
    g.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where the bundle is exported (default RUN/export; the shipped models:"
        " --out src/deepfakescan/models)",
    )
    g.add_argument(
        "--metrics",
        action="append",
        default=[],
        metavar="[NAME=]FILE",
        help="metrics.json of `deepfakescan eval --out`, written into the card on export"
        " (repeatable; FILE alone is NAME=test)",
    )
    g.add_argument(
        "--data-root",
        type=Path,
        metavar="DIR",
        help=f"default ${paths.DATA_ROOT_ENV} or {paths.DEFAULT_DATA_ROOT}",
    )
    g.add_argument(
        "--leave-out", metavar="SOURCE", help="hold a source out of train and val (generalisation)"
    )


def _needs_torch(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run_with_torch(args: argparse.Namespace) -> int:
        try:
            import torch  # noqa: F401
        except ImportError:
            print(
                "error: training needs PyTorch: pip install 'deepfakescan[train]'", file=sys.stderr
            )
            return 2
        return run(args)

    return run_with_torch


def run_dir_for(args: argparse.Namespace, model: str) -> Path:
    """``--run``, or the model's default run directory (a leave-out run gets its own)."""
    if args.run:
        return Path(args.run)
    name = LEAVE_OUT_RUN.format(source=args.leave_out) if args.leave_out else paths.DEFAULT_RUN
    return paths.run_dir(model, name)


def run_options_for(args: argparse.Namespace):
    """The ``checkpoint.RunOptions`` of an image-style subcommand's speed and run flags."""
    from .checkpoint import RunOptions  # torch: only once the command runs

    return RunOptions(
        workers=args.workers,
        device=args.device,
        checkpoint_minutes=args.checkpoint_minutes,
        resume=args.resume,
        threads=args.threads,
        max_steps=args.max_steps,
    )


def out_dir_for(args: argparse.Namespace, run: Path) -> Path:
    """``--out``, or ``<run>/export``: never the package unless asked."""
    return Path(args.out) if args.out else paths.export_dir(run)


def data_root_for(args: argparse.Namespace) -> Path:
    return Path(args.data_root) if args.data_root else paths.data_root()


__all__ = ["add_parser", "add_run_options", "data_root_for", "out_dir_for", "run_dir_for"]

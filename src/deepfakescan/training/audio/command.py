"""``deepfakescan train audio``: reproduce the shipped audio model.

Plans (or reads) the committed manifests, generates the fakes, caches features, trains with
checkpoints (rerun the same command to resume after an interruption), and exports
``audio.onnx`` + ``audio.json`` into ``RUN/export`` (``--out src/deepfakescan/models`` for the
shipped model). ``--export-only --metrics FILE`` re-exports a run with the test metrics that
``deepfakescan eval`` measured written into the card (``--metrics loo=FILE``: those of the
leave-one-out model). The run options are the shared ones of ``training/command.py``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ... import features as F
from ..command import data_root_for, out_dir_for, run_dir_for
from ..paths import model_cache

MODEL = "audio"
METRICS = {"test": "metrics", "loo": "loo_metrics"}
"""``--metrics NAME=FILE`` names -> ``export_audio`` arguments."""
RECIPE = "default: the shipped recipe's"
DESCRIPTION = (
    "Plan (or read) the committed manifests, generate the fakes, cache features, train with"
    " checkpoints (rerun the same command to resume) and export audio.onnx + audio.json into"
    " RUN/export. --export-only --metrics FILE re-exports a run with the test metrics of"
    " `deepfakescan eval` in its card (--metrics loo=FILE: the leave-one-out model's)."
)


def add_parser(sub: Any, name: str = MODEL) -> argparse.ArgumentParser:
    """Register ``train audio`` with its recipe options; returns the new parser."""
    p = sub.add_parser(
        name,
        help="train the audio detector (seeded, resumable)",
        description=DESCRIPTION,
    )
    g = p.add_argument_group("recipe (defaults: the shipped model's, audio/train.py TrainConfig)")
    g.add_argument("--epochs", type=int, help=RECIPE)
    g.add_argument("--batch-size", type=int, help=RECIPE)
    g.add_argument("--lr", type=float, help=RECIPE)
    g.add_argument("--seed", type=int, help=RECIPE)
    g.add_argument("--n-aug-real", type=int, help="augmented copies per recording (real or NSF)")
    g.add_argument("--n-aug-fake", type=int, help="augmented copies per generated fake")
    g.add_argument("--channels", help="CNN widths, stem then each residual stage (16,32,48,64)")
    g.add_argument("--features", choices=list(F.FEATURE_KINDS), help=RECIPE)
    g.add_argument("--balance", type=float, help="source balancing exponent (0: classes only)")
    g = p.add_argument_group("speed")
    g.add_argument("--threads", type=int, help="torch threads (default 2)")
    g.add_argument("--jobs", type=int, help="processes for synthesis and features (default 2)")
    return p


def run(args: argparse.Namespace) -> int:
    """Prepare, train (or resume) and export, as the run options say."""
    from .synth import MissingProgram
    from .train import TrainConfig, prepare, train

    run_dir = run_dir_for(args, MODEL)
    card_metrics = _card_metrics(args.metrics)
    if not args.export_only:
        cfg = TrainConfig(
            data_root=data_root_for(args),
            work_dir=model_cache(MODEL),
            run_dir=run_dir,
            **_recipe(args),
        )
        try:
            if args.prepare_only:
                prepare(cfg)
                return 0
            train(cfg, resume=args.resume)
        except MissingProgram as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if args.export:
        from .export import export_audio

        for path in export_audio(run_dir, out_dir_for(args, run_dir), **card_metrics):
            print(path)
    return 0


def _recipe(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe options given on the command line (the others keep TrainConfig's)."""
    names = ("epochs", "batch_size", "lr", "seed", "n_aug_real", "n_aug_fake", "features")
    given = {k: getattr(args, k) for k in (*names, "balance", "threads", "jobs")}
    if args.channels:
        given["channels"] = tuple(int(c) for c in args.channels.split(","))
    return {k: v for k, v in given.items() if v is not None} | {"leave_out": args.leave_out}


def _card_metrics(items: list[str]) -> dict[str, dict]:
    """``--metrics`` -> ``export_audio`` keyword arguments (read before training starts)."""
    from ..eval_metrics import read_metrics_options

    out = {}
    for name, (_, metrics) in read_metrics_options(items).items():
        if name not in METRICS:
            raise ValueError(f"--metrics {name}=...: audio takes {' or '.join(METRICS)}")
        out[METRICS[name]] = metrics
    return out


__all__ = ["add_parser", "run"]

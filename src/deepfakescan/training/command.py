"""``deepfakescan train audio|export``: reproduce the shipped audio model.

``deepfakescan train audio`` plans (or reads) the committed manifests, generates the fakes,
caches features, trains with checkpoints (``--resume`` is the default: rerun the same
command after an interruption), and exports ``audio.onnx`` + ``audio.json`` to
``--models-dir``. ``deepfakescan train export --metrics eval/metrics.json`` re-exports a run
with the test metrics that ``deepfakescan eval`` measured written into the card.
``cli.py`` registers this with ``add_parser(subparsers)``; torch is imported only when run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .. import features as F

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``train`` (subcommands ``audio`` and ``export``); returns the new parser."""
    parser = subparsers.add_parser(
        "train",
        help="train and export models (needs the [train] extra)",
        description="Train the shipped models from ../shared/data (see the model cards).",
    )
    sub = parser.add_subparsers(dest="train_command", required=True)

    p = sub.add_parser("audio", help="train the audio detector (seeded, resumable)")
    _common(p)
    p.add_argument("--epochs", type=int, help="default: the shipped recipe's (TrainConfig.epochs)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--jobs", type=int, default=2, help="processes for synthesis and features")
    p.add_argument(
        "--n-aug-real", type=int, default=5, help="augmented copies per recording (real or NSF)"
    )
    p.add_argument("--n-aug-fake", type=int, default=2, help="augmented copies per generated fake")
    p.add_argument(
        "--channels", default="16,32,48,64", help="CNN widths, stem then each residual stage"
    )
    p.add_argument(
        "--features",
        default=F.FEATURE_KIND,
        choices=list(F.FEATURE_KINDS),
        help=f"features the network reads (default {F.FEATURE_KIND})",
    )
    p.add_argument(
        "--balance", type=float, default=0.5, help="source balancing exponent (0: classes only)"
    )
    p.add_argument(
        "--leave-out", metavar="SOURCE", help="hold a source out (e.g. nsf-vocoded-fake)"
    )
    p.add_argument("--no-resume", dest="resume", action="store_false", help="start from scratch")
    p.add_argument("--prepare-only", action="store_true", help="manifests + generated fakes only")
    p.add_argument("--no-export", dest="export", action="store_false")
    p.set_defaults(func=run, resume=True, export=True)

    p = sub.add_parser("export", help="export a finished run to ONNX + model card")
    _common(p)
    p.add_argument("--metrics", type=Path, help="metrics.json from `deepfakescan eval --out`")
    p.add_argument("--loo-metrics", type=Path, help="metrics.json of the leave-one-source-out run")
    p.set_defaults(func=run)

    from .image_command import add_image_parser

    add_image_parser(sub)
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    from .audio_data import DEFAULT_DATA_ROOT, DEFAULT_WORK_DIR

    p.add_argument(
        "--data-root", type=Path, default=DEFAULT_DATA_ROOT, help="default ../shared/data"
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK_DIR,
        help="default ../cache/deepfakescan-audio",
    )
    p.add_argument(
        "--run", default=None, help="run name under WORK/runs (default main, or loo-SOURCE)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)


def run(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("error: training needs PyTorch: pip install 'deepfakescan[train]'", file=sys.stderr)
        return 2
    from .export import export_audio
    from .synth_audio import MissingProgram
    from .train_audio import TrainConfig, prepare, train

    run_name = args.run or (f"loo-{args.leave_out}" if getattr(args, "leave_out", None) else "main")
    if args.train_command == "export":
        cfg = TrainConfig(
            data_root=args.data_root, work_dir=args.work_dir, run_name=run_name, seed=args.seed
        )
        metrics = json.loads(args.metrics.read_text()) if args.metrics else None
        loo = json.loads(args.loo_metrics.read_text()) if args.loo_metrics else None
        paths = export_audio(cfg.run_dir, args.models_dir, metrics=metrics, loo_metrics=loo)
        print("\n".join(map(str, paths)))
        return 0
    cfg = TrainConfig(
        data_root=args.data_root,
        work_dir=args.work_dir,
        run_name=run_name,
        leave_out=args.leave_out,
        epochs=args.epochs or TrainConfig.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        channels=tuple(int(c) for c in args.channels.split(",")),
        balance=args.balance,
        features=args.features,
        jobs=args.jobs,
        n_aug_real=args.n_aug_real,
        n_aug_fake=args.n_aug_fake,
    )
    try:
        if args.prepare_only:
            prepare(cfg)
            return 0
        run_dir = train(cfg, resume=args.resume)
    except MissingProgram as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.export and not args.leave_out:
        for path in export_audio(run_dir, args.models_dir):
            print(path)
    return 0

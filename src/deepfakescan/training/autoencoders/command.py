"""``deepfakescan train autoencoders``: train the fake-making autoencoders and write their fakes.

For every ``--arch`` (default: all of ``nets.ARCHITECTURES``) and every ``--seed`` (default 0)
it trains one instance on patches of the train split's reals (``synthetic_train.csv``) into
``RUN/<arch>-<seed>`` (checkpoints every few minutes; rerun the same command to resume),
collects the validation PSNRs in ``RUN/psnr.json``, then writes the reconstruction of every
real of every split (the "export": ``--no-export`` skips it, ``--export-only`` only does it)
into ``OUT/<arch>-<seed>/`` (default ``$DEEPFAKESCAN_CACHE_DIR/autoencoders/fakes``; layout in
``reconstruct.py``). ``--prepare-only`` checks that every manifest row's file is there.
``--metrics`` and ``--leave-out`` do not apply (no bundle, no held-out source).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from .. import paths
from ..command import data_root_for, run_dir_for

log = logging.getLogger("deepfakescan.train.autoencoders")

MODEL = "autoencoders"
RECIPE = "default: train.TrainConfig's"


def add_parser(sub: Any, name: str) -> argparse.ArgumentParser:
    """Register ``train autoencoders``; returns the new parser."""
    p = sub.add_parser(
        name,
        help="train the autoencoders whose reconstructions are image-synthetic's fakes",
        description=__doc__.split("\n\n", 1)[1].replace("``", "'"),
    )
    g = p.add_argument_group("recipe (defaults: autoencoders/train.py)")
    g.add_argument(
        "--arch",
        action="append",
        metavar="NAME",
        help="architecture (repeatable; default all: transposed, nearest, bilinear,"
        " pixelshuffle, vae)",
    )
    g.add_argument("--seed", type=int, action="append", help="seed (repeatable; default 0)")
    g.add_argument("--steps", type=int, help=f"optimiser steps per instance ({RECIPE})")
    g.add_argument("--batch-size", type=int, help=RECIPE)
    g.add_argument("--patch", type=int, help=f"training patch side in pixels ({RECIPE})")
    g.add_argument("--lr", type=float, help=RECIPE)
    g = p.add_argument_group("speed")
    g.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    g.add_argument("--checkpoint-minutes", type=float, default=5.0)
    g.add_argument("--max-steps", type=int, help="stop each instance after N steps (resumable)")
    g.add_argument(
        "--fakes-per-real",
        type=int,
        default=0,
        metavar="N",
        help="reconstruct each real through N of the instances of this command, chosen by a"
        " stable hash of the file (default 0: through every instance)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    """Check the data, train (or resume) every instance, write the fakes, as the options say."""
    from .data import read_split

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.metrics or args.leave_out:
        print("error: --metrics and --leave-out do not apply to autoencoders", file=sys.stderr)
        return 2
    splits = {s: read_split(paths.manifest_dir(), s) for s in ("train", "val", "test")}
    data_root = data_root_for(args)
    if args.prepare_only:
        return _check_files(splits, data_root)
    run_dir = run_dir_for(args, MODEL)
    configs = _configs(args)
    done = configs if args.export_only else _train_all(args, configs, splits, data_root, run_dir)
    _collect_psnr(run_dir)
    if args.export and done:
        _write_all_fakes(args, [c for c in done if (run_dir / c.name / "best.pt").is_file()],
                         splits, data_root, run_dir)  # fmt: skip
    return 0


def _configs(args: argparse.Namespace) -> list:
    from .nets import ARCHITECTURES
    from .train import TrainConfig

    archs = args.arch or list(ARCHITECTURES)
    unknown = [a for a in archs if a not in ARCHITECTURES]
    if unknown:
        raise SystemExit(f"unknown --arch {unknown}; available: {', '.join(ARCHITECTURES)}")
    names = ("steps", "batch_size", "patch", "lr")
    recipe = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    return [TrainConfig(arch=a, seed=s, **recipe) for a in archs for s in (args.seed or [0])]


def _check_files(splits: dict, data_root: Path) -> int:
    """Counts per split and source; an error naming the first missing files."""
    missing = [
        r.path for rows in splits.values() for r in rows if not (data_root / r.path).is_file()
    ]
    for split, rows in splits.items():
        sources = sorted({r.source for r in rows})
        counts = ", ".join(f"{s} {sum(r.source == s for r in rows)}" for s in sources)
        print(f"{split}: {counts}")
    if missing:
        print(
            f"error: {len(missing)} files missing under {data_root}: {missing[:5]}", file=sys.stderr
        )
        return 1
    return 0


def _train_all(args, configs: list, splits: dict, data_root: Path, run_dir: Path) -> list:
    """Train every instance; returns the configs of those that finished."""
    from .data import load_by_source, reals
    from .train import RunOptions, train_instance

    train_images = load_by_source(reals(splits["train"]), data_root)
    val_images = load_by_source(reals(splits["val"]), data_root)
    options = RunOptions(
        resume=args.resume,
        checkpoint_minutes=args.checkpoint_minutes,
        max_steps=args.max_steps,
        threads=args.threads,
    )
    done = []
    for config in configs:
        final = train_instance(config, train_images, val_images, run_dir / config.name, options)
        if final["epoch"] >= config.epochs:
            done.append(config)
        else:
            print(
                f"{config.name} stopped at step {final['step']}; rerun the same command to resume"
            )
    return done


def _collect_psnr(run_dir: Path) -> None:
    """``RUN/psnr.json``: every finished instance's ``psnr.json``, by instance name."""
    from .train import PSNR_FILE

    found = {
        p.parent.name: json.loads(p.read_text()) for p in sorted(run_dir.glob(f"*/{PSNR_FILE}"))
    }
    if found:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / PSNR_FILE).write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
        for name, summary in found.items():
            print(f"{name}: validation PSNR {summary['val_psnr']:.2f} dB")


def _write_all_fakes(args, configs: list, splits: dict, data_root: Path, run_dir: Path) -> None:
    from .reconstruct import FAKES, assigned_instances, load_instance, write_fakes

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else paths.model_cache(MODEL) / FAKES
    names = [c.name for c in configs]
    for config in configs:
        model, _ = load_instance(run_dir / config.name)

        def keep(row, name=config.name) -> bool:
            return name in assigned_instances(row.key, names, args.fakes_per_real)

        rows = write_fakes(model, config, splits, data_root, out, keep=keep)
        print(f"{config.name}: {len(rows)} fakes in {out / config.name}")


__all__ = ["MODEL", "add_parser", "run"]

"""Write the image models' train/val/test manifests (and the leave-one-source-out variants).

Usage: ``python tools/make_image_manifests.py [--data ../shared/data] [--out data/manifests]``.
Only file names are read, so this is quick and its output depends on the folder listing and the
seed alone; re-running it on the same data rewrites the same files (commit them).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from deepfakescan.training.image_data import (
    SPLITS,
    leave_one_out,
    make_manifests,
    write_manifest,
)

LOSO_SOURCES = ("stylegan2-fake", "ciplab-edited-fake")
"""Sources held out, one at a time, for the generalisation check."""


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=root.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=root / "data" / "manifests")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    splits = make_manifests(args.data.resolve(), seed=args.seed)
    variants = {"": splits} | {f"_loso-{s}": leave_one_out(splits, s) for s in LOSO_SOURCES}
    for suffix, rows_by_split in variants.items():
        for split in SPLITS:
            path = args.out / f"image_{split}{suffix}.csv"
            write_manifest(rows_by_split[split], path)
            counts = Counter(r.source for r in rows_by_split[split])
            print(f"{path}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

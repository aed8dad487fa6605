"""Write the image models' train/val/test manifests (and the leave-one-source-out variants).

Usage: ``python tools/make_image_manifests.py [--data ../shared/data] [--out data/manifests]``
(defaults: ``$DEEPFAKESCAN_DATA_ROOT`` and ``$DEEPFAKESCAN_MANIFEST_DIR``, relative to the
checkout). Only file names are read, so this is quick and its output depends on the folder
listing and the seed alone; re-running it on the same data rewrites the same files (commit
them).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from deepfakescan.training import paths
from deepfakescan.training.image.data import SPLITS, ManifestRow, leave_one_out, make_manifests
from deepfakescan.training.manifest import write_manifest

LOSO_SOURCES = ("stylegan2-fake", "ciplab-edited-fake")
"""Sources held out, one at a time, for the generalisation check."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=paths.data_root())
    parser.add_argument("--out", type=Path, default=paths.manifest_dir())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    splits = make_manifests(args.data.resolve(), seed=args.seed)
    variants = {"": splits} | {f"_loso-{s}": leave_one_out(splits, s) for s in LOSO_SOURCES}
    for suffix, rows_by_split in variants.items():
        for split in SPLITS:
            path = args.out / f"image_{split}{suffix}.csv"
            rows = sorted(rows_by_split[split], key=ManifestRow.sort_key)
            write_manifest(path, rows, ManifestRow)
            counts = Counter(r.source for r in rows_by_split[split])
            print(f"{path}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

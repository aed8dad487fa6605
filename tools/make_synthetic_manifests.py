"""Write the whole-image model's train/val/test manifests (``synthetic_*.csv``).

Usage: ``python tools/make_synthetic_manifests.py [--data ../shared/data] [--out data/manifests]``
(defaults: ``$DEEPFAKESCAN_DATA_ROOT`` and ``$DEEPFAKESCAN_MANIFEST_DIR``, relative to the
checkout). ``images/photo-real`` and ``images/sd-fake`` are split by file here; the face
sources and the video frames keep the splits of the committed ``image_*.csv`` (read from
``--out``), so a face never crosses splits between the two image models. Only names are read:
re-running it on the same data rewrites the same files (commit them).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from deepfakescan.training import paths
from deepfakescan.training.autoencoders.data import plan_manifests, write_splits
from deepfakescan.training.image.data import SPLITS, ManifestRow
from deepfakescan.training.manifest import read_manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=paths.data_root())
    parser.add_argument("--out", type=Path, default=paths.manifest_dir())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    faces = {s: read_manifest(args.out / f"image_{s}.csv", ManifestRow) for s in SPLITS}
    splits = plan_manifests(args.data.resolve(), faces, seed=args.seed)
    for path, split in zip(write_splits(args.out, splits), SPLITS, strict=True):
        counts = Counter(r.source for r in splits[split])
        print(f"{path}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

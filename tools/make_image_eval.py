"""Write the image test split as files `deepfakescan eval` can score, one manifest per bar.

    python tools/make_image_eval.py --data ../shared/data --out ../cache/image-eval
    deepfakescan eval ../cache/image-eval/self-blended.csv --out ../cache/image-eval/self-blended
    deepfakescan eval ../cache/image-eval/stylegan2.csv --out ../cache/image-eval/stylegan2
    deepfakescan eval ../cache/image-eval/ciplab.csv --out ../cache/image-eval/ciplab

The bars of the image issue pair each fake source with the reals it must be told from, so each
gets its own manifest (``eval`` measures a family against every real in its manifest):

- ``stylegan2.csv``: test ffhq-real against test stylegan2-fake, the files as they are.
- ``ciplab.csv``: test ciplab-real against test ciplab-edited-fake, the files as they are.
- ``self-blended.csv``: every test real (ffhq-real, ciplab-real, and the sampled frames of the
  test clips of video/real) against a self-blended fake of the same image, made on the whole
  image around each face MTCNN finds (``training/image/synth.self_blend_faces``). Real and fake
  are written by the same encoder with the same settings (the source's own JPEG tables and
  chroma subsampling for stills, quality 90 4:2:0 for video frames), so that the re-encoding
  itself cannot tell them apart.

Everything is written under ``--out``, outside the repository: these are photos of real people
and must never be committed. Images are rebuilt only when missing (``--rebuild`` forces it).
"""

from __future__ import annotations

import argparse
import csv
import sys
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, JpegImagePlugin

from deepfakescan.training import paths

FAMILY_OF = {"stylegan2-fake": "gan", "ciplab-edited-fake": "hand-edited"}
PAIRS = {
    "stylegan2.csv": ("ffhq-real", "stylegan2-fake"),
    "ciplab.csv": ("ciplab-real", "ciplab-edited-fake"),
}
HEADER = ["path", "label", "family", "source"]


def save_like(rgb: np.ndarray, dest: Path, template: Image.Image | None) -> None:
    """JPEG with ``template``'s quantisation tables and subsampling (or quality 90, 4:2:0)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(rgb)
    if template is not None and template.format == "JPEG":
        img.save(
            dest,
            "JPEG",
            qtables=template.quantization,
            subsampling=JpegImagePlugin.get_sampling(template),
        )
    else:
        img.save(dest, "JPEG", quality=90, subsampling="4:2:0")


def blended_pair(
    rgb: np.ndarray, name: str, source: str, out: Path, template, rebuild: bool
) -> list[list]:
    """Write ``SOURCE/real/NAME.jpg`` and ``SOURCE/fake/NAME.jpg`` under ``out``; manifest rows
    for both, or none when the image has no face."""
    from deepfakescan.faces import detect_faces
    from deepfakescan.training.image.synth import self_blend_faces

    real, fake = (out / source / label / f"{name}.jpg" for label in ("real", "fake"))
    if rebuild or not (real.exists() and fake.exists()):
        faces = detect_faces(rgb)
        if not faces:
            return []
        save_like(rgb, real, template)
        save_like(self_blend_faces(rgb, faces, zlib.crc32(name.encode())), fake, template)
    return [[str(real), 0, "real", source], [str(fake), 1, "blend", "self-blended"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=paths.data_root())
    parser.add_argument("--manifest", type=Path, default=paths.manifest_dir() / "image_test.csv")
    parser.add_argument("--out", type=Path, default=paths.cache_dir() / "image-eval")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args(argv)

    from deepfakescan.training.image.data import FRAMES_PER_CLIP, ManifestRow, video_frames
    from deepfakescan.training.manifest import read_manifest

    rows = read_manifest(args.manifest, ManifestRow)
    args.out.mkdir(parents=True, exist_ok=True)
    for manifest, (real_source, fake_source) in PAIRS.items():
        with (args.out / manifest).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(HEADER)
            for r in rows:
                if r.source in (real_source, fake_source):
                    family = FAMILY_OF.get(r.source, "real")
                    w.writerow([str((args.data / r.path).resolve()), r.label, family, r.source])

    blended, no_face = [], 0
    sbi_dir = args.out / "self-blended"
    clips = defaultdict(list)
    for r in rows:
        if r.label != 0:
            continue
        if r.frame is not None:
            clips[r.path].append(r)
            continue
        with Image.open(args.data / r.path) as img:
            img.load()
            rgb = np.asarray(img.convert("RGB"))
            pair = blended_pair(rgb, Path(r.path).stem, r.source, sbi_dir, img, args.rebuild)
        no_face += not pair
        blended += pair
    for clip, clip_rows in clips.items():
        frames = video_frames(args.data / clip, {r.frame for r in clip_rows}, FRAMES_PER_CLIP)
        for r in clip_rows:
            if r.frame not in frames:
                no_face += 1
                continue
            name = f"{Path(clip).stem}-{r.frame:03d}"
            pair = blended_pair(frames[r.frame], name, r.source, sbi_dir, None, args.rebuild)
            no_face += not pair
            blended += pair
    with (args.out / "self-blended.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(blended)
    print(
        f"{args.out}: stylegan2.csv, ciplab.csv, self-blended.csv ({len(blended) // 2} pairs;"
        f" {no_face} reals without a face skipped)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

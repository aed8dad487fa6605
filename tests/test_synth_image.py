"""Self-blended faces, the random chain, and the image manifests: invariants on generated data.

No torch and no data set needed: faces are drawn in code.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepfakescan.training.image import data as image_data
from deepfakescan.training.image import synth as synth_image
from deepfakescan.training.image.synth import (
    EVAL_CHAIN,
    blend,
    blend_mask,
    face_hull,
    random_chain,
    self_blend,
    self_blend_faces,
)
from deepfakescan.training.manifest import read_manifest, write_manifest

SIZE = 128
LANDMARKS = np.array([[44, 52], [84, 52], [64, 72], [48, 92], [80, 92]], dtype=np.float32)
"""Five plausible landmarks of a face centred in a 128 px crop (eyes, nose, mouth corners)."""


def _face(seed: int = 0) -> np.ndarray:
    """A textured 'face' crop: noise on a skin-coloured disc on a darker background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    disc = ((xx - 64) ** 2 + (yy - 70) ** 2) < 45**2
    img = np.where(disc[:, :, None], [200, 150, 120], [40, 60, 80]).astype(np.float64)
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", range(8))
def test_self_blend_changes_only_pixels_inside_the_mask(seed):
    face = _face(seed)
    fake, mask = self_blend(face, LANDMARKS, np.random.default_rng(seed))
    assert fake.shape == face.shape and fake.dtype == np.uint8
    outside = mask == 0
    assert outside.any(), "the mask must leave the background out"
    np.testing.assert_array_equal(fake[outside], face[outside])
    changed = np.any(fake != face, axis=2)
    assert changed.any(), "a self-blend must change the face"
    assert np.all(mask[changed] > 0)


def test_whole_image_self_blend_touches_only_the_face_and_repeats_per_seed():
    """Video fakes blend every frame with one seed: the same face must get the same blend."""
    from types import SimpleNamespace

    frame = np.full((300, 400, 3), 90, np.uint8)
    frame[100:228, 200:328] = _face(3)  # the face crop pasted at (200, 100)
    face = SimpleNamespace(box=(216.0, 120.0, 96.0, 100.0), landmarks=LANDMARKS + (200, 100))
    fake = self_blend_faces(frame, [face], seed=7)
    changed = np.argwhere(np.any(fake != frame, axis=2))
    assert len(changed), "the face must change"
    (y0, x0), (y1, x1) = changed.min(axis=0), changed.max(axis=0)
    assert 100 <= y0 <= y1 < 228, "only the face rows change"
    assert 200 <= x0 <= x1 < 328, "only the face columns change"
    np.testing.assert_array_equal(fake, self_blend_faces(frame, [face], seed=7))
    assert np.any(fake != self_blend_faces(frame, [face], seed=8))


@pytest.mark.parametrize("seed", range(8))
def test_blend_mask_is_soft_bounded_and_around_the_face(seed):
    mask = blend_mask((SIZE, SIZE), LANDMARKS, np.random.default_rng(seed))
    assert mask.dtype == np.float32 and mask.min() >= 0 and mask.max() <= 1
    assert mask.max() >= 0.25 - 1e-6
    # every landmark lies inside the blended region, the corners of the crop do not
    for x, y in LANDMARKS.astype(int):
        assert mask[y, x] > 0
    assert mask[0, 0] == mask[0, -1] == mask[-1, 0] == mask[-1, -1] == 0
    # a soft edge: some values strictly between 0 and the peak
    assert ((mask > 0) & (mask < mask.max() - 1e-3)).any()


def test_blend_is_exact_at_mask_zero_and_one():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    source = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    mask = np.zeros((16, 16), np.float32)
    mask[4:8, 4:8] = 1.0
    out = blend(target, source, mask)
    np.testing.assert_array_equal(out[mask == 0], target[mask == 0])
    np.testing.assert_array_equal(out[mask == 1], source[mask == 1])


def test_face_hull_encloses_the_landmarks_and_extends_above_the_eyes():
    hull = face_hull(LANDMARKS)
    assert hull[:, 1].min() < LANDMARKS[:2, 1].min() - 5  # brows
    assert hull[:, 1].max() > LANDMARKS[3:, 1].max() + 5  # chin
    MplPath = pytest.importorskip("matplotlib.path").Path

    assert MplPath(hull).contains_points(LANDMARKS[:3] + 0.01).all()


def test_random_chain_is_seeded_and_gives_the_model_size():
    face = _face()
    a = random_chain(face, 96, np.random.default_rng(5))
    b = random_chain(face, 96, np.random.default_rng(5))
    c = random_chain(face, 96, np.random.default_rng(6))
    assert a.shape == (96, 96, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)


def test_random_chain_accepts_any_source_resolution():
    """512 px and 160 px sources (FFHQ vs CIPLAB) both come out at the model size."""
    rng = np.random.default_rng(0)
    for side in (512, 160, 50):
        src = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        for _ in range(5):
            assert random_chain(src, 64, rng).shape == (64, 64, 3)


def test_eval_chain_is_a_plain_resize():
    face = _face()
    a = random_chain(face, 64, np.random.default_rng(1), EVAL_CHAIN)
    b = random_chain(face, 64, np.random.default_rng(2), EVAL_CHAIN)
    np.testing.assert_array_equal(a, b)


def test_jpeg_quality_sets_how_much_of_the_source_survives():
    from PIL import Image

    face = Image.fromarray(_face())
    ref = np.asarray(face, dtype=np.float64)
    err = {
        q: np.abs(np.asarray(synth_image.jpeg(face, q), dtype=np.float64) - ref).mean()
        for q in (40, 95)
    }
    assert err[40] > err[95] > 0


def _fake_data_root(tmp_path):
    for folder in image_data.SOURCES:
        (tmp_path / folder).mkdir(parents=True)
        for i in range(20):
            (tmp_path / folder / f"{i:03d}.jpg").write_bytes(b"")
    video = tmp_path / image_data.VIDEO_FOLDER
    video.mkdir(parents=True)
    for name in ("1.mp4", "2.mp4", "3.mp4", "4.mp4", "5.mp4", "d6.mp4", "video.mp4", "WDA_x.mp4"):
        (video / name).write_bytes(b"")
    return tmp_path


def test_manifests_are_disjoint_seeded_and_keep_clips_whole(tmp_path):
    root = _fake_data_root(tmp_path)
    splits = image_data.make_manifests(root, seed=0, frames_per_clip=4)
    again = image_data.make_manifests(root, seed=0, frames_per_clip=4)
    assert splits == again
    keys = [r.key for rows in splits.values() for r in rows]
    assert len(keys) == len(set(keys))
    clip_split = {}
    for name, rows in splits.items():
        for r in rows:
            if r.frame is not None:
                assert clip_split.setdefault(r.path, name) == name
    assert "video/real/video.mp4" not in clip_split
    assert not any("WDA_" in p for p in clip_split)
    assert all(splits[s] for s in image_data.SPLITS)


def test_manifest_round_trip_and_leave_one_out(tmp_path):
    root = _fake_data_root(tmp_path / "data")
    splits = image_data.make_manifests(root, seed=1, frames_per_clip=2)
    path = tmp_path / "m.csv"
    write_manifest(path, splits["train"], image_data.ManifestRow)
    assert sorted(read_manifest(path, image_data.ManifestRow), key=lambda r: r.key) == sorted(
        splits["train"], key=lambda r: r.key
    )
    loso = image_data.leave_one_out(splits, "stylegan2-fake")
    assert not any(r.source == "stylegan2-fake" for r in loso["train"] + loso["val"])
    assert sum(r.source == "stylegan2-fake" for r in loso["test"]) == 20


def test_epoch_plan_follows_source_shares():
    rows = [image_data.ManifestRow(f"r{i}", 0, "real", "ffhq-real") for i in range(10)]
    rows += [image_data.ManifestRow(f"f{i}", 1, "gan", "stylegan2-fake") for i in range(3)]
    crops = [image_data.FaceCrop(r, np.zeros((8, 8, 3), np.uint8), LANDMARKS) for r in rows]
    weights = {"ffhq-real": 0.5, "self-blended": 0.25, "stylegan2-fake": 0.25}
    plan = image_data.plan_epoch(crops, weights, 4000, np.random.default_rng(0))
    blends = sum(s.blend for s in plan)
    gan = sum(not s.blend and crops[s.crop].row.label == 1 for s in plan)
    assert len(plan) == 4000
    assert abs(blends / 4000 - 0.25) < 0.03 and abs(gan / 4000 - 0.25) < 0.03
    assert all(crops[s.crop].row.label == 0 for s in plan if s.blend)

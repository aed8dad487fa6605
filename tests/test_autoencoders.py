"""The fake-making autoencoders: shapes, a short training run, the fakes they write, the splits.

Needs the ``[train]`` extra (torch); skipped without it. Fixtures are synthesised (smooth
gradients and shapes); the committed manifests are checked against the data root only when
it is there.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deepfakescan.training import paths  # noqa: E402
from deepfakescan.training.autoencoders import data, nets, reconstruct, train  # noqa: E402
from deepfakescan.training.checkpoint import CHECKPOINT, load_checkpoint  # noqa: E402
from deepfakescan.training.image.data import SPLITS, ManifestRow  # noqa: E402
from deepfakescan.training.manifest import read_manifest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "data" / "manifests"


def synthetic_image(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth colour gradient with a few flat rectangles and a disc: edges and flat areas."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin((xx + yy) / 17.0)], axis=-1) * 200 + 20
    for _ in range(3):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        rgb[y : y + int(rng.integers(4, h // 2)), x : x + int(rng.integers(4, w // 2))] = (
            rng.integers(0, 256, 3)
        )
    cy, cx, r = h / 2, w / 3, min(h, w) / 5
    rgb[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = (240, 30, 60)
    return rgb.clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine, two spinning threads per test crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def images() -> dict[str, list[np.ndarray]]:
    return {
        "a-real": [synthetic_image(48, 64, s) for s in range(3)],
        "b-real": [synthetic_image(40, 40, 10 + s) for s in range(2)],
    }


@pytest.mark.parametrize("name", sorted(nets.ARCHITECTURES))
def test_every_architecture_keeps_the_input_shape(name: str):
    torch.manual_seed(0)
    model = nets.build(name)
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    assert model(x).shape == x.shape
    y, kl = model.training_pass(x)
    assert y.shape == x.shape and kl.shape == () and float(kl.detach()) >= 0


def test_the_vae_latent_is_eight_times_smaller_with_four_channels():
    mean, logvar = nets.VAE().encode(torch.zeros(1, 3, 64, 96))
    assert mean.shape == logvar.shape == (1, 4, 8, 12)
    assert nets.VAE.factor == 8 and nets.AutoEncoder.factor == 4


def test_an_unknown_architecture_names_the_known_ones():
    with pytest.raises(ValueError, match="available: transposed, nearest"):
        nets.build("dcgan")


def _config(arch: str, **kw) -> train.TrainConfig:
    recipe = dict(steps=50, epoch_steps=25, batch_size=4, patch=32, lr=2e-3, warmup_steps=5)
    return train.TrainConfig(arch=arch, **(recipe | kw))


QUIET = train.RunOptions(checkpoint_minutes=None, log_every=None)


@pytest.mark.parametrize("arch", ["pixelshuffle", "vae"])
def test_fifty_training_steps_lower_the_loss(arch, images, tmp_path: Path):
    final = train.train_instance(_config(arch), images, images, tmp_path, QUIET)
    first, second = final["history"]
    assert final["step"] == 50 and final["epoch"] == 2
    assert second["train_loss"] < first["train_loss"]
    summary = json.loads((tmp_path / train.PSNR_FILE).read_text())
    assert summary["instance"] == f"{arch}-0"
    assert set(summary["val_psnr_per_source"]) == {"a-real", "b-real"}


def test_a_cut_and_resumed_run_ends_with_the_weights_of_an_uncut_one(images, tmp_path: Path):
    config = _config("nearest", steps=20, epoch_steps=10)
    whole = train.train_instance(config, images, images, tmp_path / "whole", QUIET)
    cut = train.RunOptions(checkpoint_minutes=None, log_every=None, max_steps=7)
    train.train_instance(config, images, images, tmp_path / "cut", cut)
    assert load_checkpoint(tmp_path / "cut" / CHECKPOINT)["step"] == 7
    resumed = train.train_instance(config, images, images, tmp_path / "cut", QUIET)
    for key, value in whole["model"].items():
        assert torch.equal(value, resumed["model"][key]), key


def test_patches_are_native_pixels_in_range_and_pad_small_images(images):
    rng = np.random.default_rng(0)
    batch = data.patch_batch(images, 6, 56, rng)  # larger than every fixture: padded
    assert batch.shape == (6, 3, 56, 56) and batch.dtype == np.float32
    assert batch.min() >= -1.0 and batch.max() <= 1.0
    rgb = images["a-real"][0]
    assert np.array_equal(data.to_rgb(data.to_unit(rgb)), rgb)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


def test_reconstruct_writes_one_file_per_real_with_its_size(tmp_path: Path):
    from PIL import Image

    root = tmp_path / "data"
    shapes = {"images/photo-real/big.png": (150, 97), "faces/ciplab-real/small.png": (40, 36)}
    for i, (rel, (h, w)) in enumerate(shapes.items()):
        _write_png(root / rel, synthetic_image(h, w, i))
    splits = {
        "train": [data.SyntheticRow("images/photo-real/big.png", 0, "photo-real")],
        "val": [
            data.SyntheticRow("faces/ciplab-real/small.png", 0, "ciplab-real"),
            data.SyntheticRow("images/sd-fake/art.webp", 1, "sd-fake"),  # fakes are not redone
        ],
    }
    config = train.TrainConfig(arch="vae", seed=3)
    model = nets.build("vae").eval()
    rows = reconstruct.write_fakes(
        model, config, splits, root, tmp_path / "fakes", tile=64, margin=8
    )
    assert [(r.split, r.real, r.source, r.label) for r in rows] == [
        ("train", "images/photo-real/big.png", "ae-vae", 1),
        ("val", "faces/ciplab-real/small.png", "ae-vae", 1),
    ]
    for row in rows:
        with Image.open(tmp_path / "fakes" / row.path) as img:
            assert img.size[::-1] == shapes[row.real] and img.mode == "RGB"
    assert reconstruct.read_fakes(tmp_path / "fakes") == rows
    assert rows[0].path == "vae-3/train/photo-real/big.png"


def test_tiled_reconstruction_keeps_the_size_of_any_image():
    model = nets.build("bilinear").eval()
    rgb = synthetic_image(131, 70, 0)
    out = reconstruct.reconstruct_image(model, rgb, tile=48, margin=8)  # 4 x 2 tiles
    assert out.shape == rgb.shape and out.dtype == np.uint8


def test_the_plan_splits_images_by_file_and_keeps_the_face_splits(tmp_path: Path):
    for folder in data.OWN_SOURCES:
        for i in range(10):
            (tmp_path / folder).mkdir(parents=True, exist_ok=True)
            (tmp_path / folder / f"{i}.png").write_bytes(b"")
    faces = {
        "train": [ManifestRow("faces/ffhq-real/1.jpg", 0, "real", "ffhq-real")],
        "val": [ManifestRow("video/real/1.mp4", 0, "real", "video-real", 4)],
        "test": [ManifestRow("faces/ciplab-edited-fake/x.jpg", 1, "hand-edited", "x")],
    }
    splits = data.plan_manifests(tmp_path, faces, seed=0)
    own = {r.path: s for s in SPLITS for r in splits[s] if r.source in ("photo-real", "sd-fake")}
    assert len(own) == 20 and [len(splits[s]) for s in SPLITS] == [13, 5, 4]
    assert data.SyntheticRow("video/real/1.mp4", 0, "video-real", 4) in splits["val"]
    assert not any(r.source == "x" for r in splits["test"])


def test_the_committed_manifests_come_back_and_agree_with_the_face_splits():
    splits = {s: data.read_split(MANIFESTS, s) for s in SPLITS}
    keys = [r.key for s in SPLITS for r in splits[s]]
    assert len(keys) == len(set(keys)), "an image is in two splits"
    sources = {r.source for s in SPLITS for r in splits[s]}
    assert sources == {"photo-real", "sd-fake", *data.SHARED_SOURCES}
    for split in SPLITS:
        face = read_manifest(MANIFESTS / f"image_{split}.csv", ManifestRow)
        shared = {r.key for r in face if r.source in data.SHARED_SOURCES}
        assert shared == {r.key for r in splits[split] if r.source in data.SHARED_SOURCES}
    clips = {Path(r.path).name for s in SPLITS for r in splits[s] if r.frame is not None}
    assert all(c[0] in "12345d" and not c.startswith("WDA") for c in clips)
    root = paths.data_root()
    if not root.is_dir():
        pytest.skip(f"no data root at {root}: file existence not checked")
    assert all((root / r.path).is_file() for s in SPLITS for r in splits[s])


def test_each_real_gets_the_asked_number_of_decoders_stably_and_evenly():
    instances = [f"{a}-0" for a in ("transposed", "nearest", "bilinear", "pixelshuffle", "vae")]
    keys = [f"faces/ffhq-real/{i}.jpg" for i in range(500)]
    picks = [reconstruct.assigned_instances(k, instances, 1) for k in keys]
    assert all(len(p) == 1 for p in picks)
    assert picks == [reconstruct.assigned_instances(k, instances, 1) for k in keys]
    counts = {i: sum(p == [i] for p in picks) for i in instances}
    assert min(counts.values()) > 60  # about 100 each
    two = reconstruct.assigned_instances(keys[0], instances, 2)
    assert len(set(two)) == 2 and picks[0][0] in two
    assert reconstruct.assigned_instances(keys[0], instances, 0) == instances
    # a new instance moves only the reals it wins
    more = [reconstruct.assigned_instances(k, [*instances, "vae-1"], 1) for k in keys]
    moved = [k for k, a, b in zip(keys, picks, more, strict=True) if a != b]
    assert all(
        reconstruct.assigned_instances(k, [*instances, "vae-1"], 1) == ["vae-1"] for k in moved
    )


def test_reconstruction_skips_the_reals_another_decoder_was_given(tmp_path: Path):
    root = tmp_path / "data"
    for name in ("a", "b"):
        _write_png(root / f"images/photo-real/{name}.png", synthetic_image(24, 24, 0))
    splits = {
        "train": [data.SyntheticRow(f"images/photo-real/{n}.png", 0, "photo-real") for n in "ab"]
    }
    rows = reconstruct.write_fakes(
        nets.build("nearest").eval(),
        train.TrainConfig(arch="nearest"),
        splits,
        root,
        tmp_path / "fakes",
        keep=lambda r: r.path.endswith("b.png"),
    )
    assert [r.real for r in rows] == ["images/photo-real/b.png"]
    assert not (tmp_path / "fakes/nearest-0/train/photo-real/a.png").exists()

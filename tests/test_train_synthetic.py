"""Whole-image detector training: the label-blind random chain, a tiny run that resumes, export.

Needs the ``[train]`` extra (torch, onnx); skipped without it. No data set needed: the images
are generated in code (dark reals, bright fakes: trivially separable) and written as PNGs.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from deepfakescan.detectors.card import check_card  # noqa: E402
from deepfakescan.evaluation.metrics import VALIDATION_FPR_BUDGET  # noqa: E402
from deepfakescan.training import command as train_command  # noqa: E402
from deepfakescan.training import onnx_export  # noqa: E402
from deepfakescan.training.synthetic import baseline, data, export, nets, robustness  # noqa: E402
from deepfakescan.training.synthetic import train as train_synthetic  # noqa: E402
from deepfakescan.training.synthetic.command import bundle_name, card_command  # noqa: E402
from deepfakescan.training.synthetic.table import card_table  # noqa: E402

SIZE = 64
"""Crop side of the tiny runs (the shipped model: data.CROP = 256)."""


def _textured(shape: tuple[int, int], base: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(base, 15, (*shape, 3)), 0, 255).astype(np.uint8)


def _split(tmp_path, n: int, seed: int, split: str = "train") -> train_synthetic.Split:
    """Half dark 'photo-real' PNGs, half bright 'sd-fake' ones, of a few sizes."""
    rows, paths = [], []
    for i in range(n):
        fake = i % 2
        shape = [(80, 96), (50, 70), (120, 90)][i % 3]
        path = tmp_path / f"{split}{seed}_{i}.png"
        Image.fromarray(_textured(shape, 200 if fake else 50, seed * 1000 + i)).save(path)
        rows.append(data.ImageRow(path.name, fake, "sd-fake" if fake else "photo-real", split))
        paths.append(path)
    return train_synthetic.Split(rows, paths)


def _tiny_config(**overrides) -> train_synthetic.TrainConfig:
    base = dict(
        size=SIZE,
        epochs=3,
        epoch_size=32,
        batch_size=8,
        trunk_blocks=3,
        warmup_steps=2,
        lr=1e-2,
        trunk_lr=1e-3,
        n_crops=2,
        pretrained=False,
        weights={"photo-real": 1.0, "sd-fake": 1.0},
    )
    return train_synthetic.TrainConfig(**{**base, **overrides})


# ---------------------------------------------------------------------------- the chain


@pytest.mark.parametrize("shape", [(160, 120), (700, 500), (256, 256)])
def test_chain_gives_a_crop_of_the_model_size_at_any_image_size(shape):
    rgb = _textured(shape, 120, 0)
    for seed in range(6):
        out = data.render_sample(rgb, np.random.default_rng(seed))
        assert out.shape == (data.CROP, data.CROP, 3) and out.dtype == np.uint8


def test_a_samples_chain_is_deterministic_for_its_seed():
    rgb = _textured((300, 400), 120, 1)
    a = data.render_sample(rgb, np.random.default_rng([0, 1, 2]))
    b = data.render_sample(rgb, np.random.default_rng([0, 1, 2]))
    c = data.render_sample(rgb, np.random.default_rng([0, 1, 3]))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_the_chain_is_blind_to_the_label(tmp_path):
    """The same file labelled real and fake gives the same pixels at the same index: no step
    of the chain can depend on the class."""
    path = tmp_path / "x.png"
    Image.fromarray(_textured((200, 300), 120, 2)).save(path)
    ds = data.TrainDataset(
        [path, path], [0, 1], [0, 1] * 8, seed=3, epoch=1, mean=(0, 0, 0), std=(1, 1, 1)
    )
    for i in range(0, 16, 2):
        real, fake = (
            ds[i],
            data.TrainDataset(
                [path, path], [0, 1], [1, 0] * 8, seed=3, epoch=1, mean=(0, 0, 0), std=(1, 1, 1)
            )[i],
        )
        assert (real[1], fake[1]) == (0, 1)  # labels pass through
        assert np.array_equal(real[0], fake[0])


def test_the_chain_draws_every_operation_from_the_generator_alone():
    draws = [data.draw_chain(np.random.default_rng(s)) for s in range(400)]
    codecs = [d.codec for d in draws]
    assert 0.4 < codecs.count("JPEG") / codecs.count("WEBP") < 2.5
    assert 0.8 < sum(d.codec is not None for d in draws) / 400 <= 1.0
    scales = [d.scale for d in draws if d.scale is not None]
    assert min(scales) >= 0.5 and max(scales) <= 1.5 and 0.7 < len(scales) / 400 < 0.9
    assert all(60 <= d.quality <= 100 for d in draws)
    assert 0.4 < np.mean([d.flip for d in draws]) < 0.6


def test_epoch_shares_split_a_glob_over_the_sources_it_matches():
    sources = ["photo-real"] * 10 + ["ae-conv"] * 30 + ["ae-vae"] * 5
    plan = data.plan_epoch(
        sources, {"photo-real": 1.0, "ae-*": 1.0}, 4000, np.random.default_rng(0)
    )
    drawn = np.array([sources[i] for i in plan])
    assert len(plan) == 4000
    assert abs((drawn == "ae-vae").mean() - 0.25) < 0.03
    assert abs((drawn == "photo-real").mean() - 0.5) < 0.03
    # a fake source without files does not tilt the classes
    weights = {"photo-real": 0.5, "sd-fake": 0.25, "ae-*": 0.25}
    labels = [0] * 10 + [1] * 35
    plan = data.plan_epoch(sources, weights, 4000, np.random.default_rng(1), labels)
    assert abs(np.mean([labels[i] for i in plan]) - 0.5) < 0.03


def test_a_left_out_source_is_absent_from_train_and_val_and_whole_in_test():
    rows = [
        data.ImageRow(f"{s}{i}", int(s != "photo-real"), s, split)
        for s in ("photo-real", "ae-vae-1", "sd-fake")
        for i, split in enumerate(("train", "val", "test"))
    ]
    splits = data.split_rows(rows, "ae-vae*")
    assert all(r.source != "ae-vae-1" for r in splits["train"] + splits["val"])
    assert sorted(r.path for r in splits["test"] if r.source == "ae-vae-1") == [
        "ae-vae-10",
        "ae-vae-11",
        "ae-vae-12",
    ]
    assert {r.source for r in splits["test"]} == {"photo-real", "ae-vae-1"}


def test_both_manifest_shapes_are_read(tmp_path):
    """The committed synthetic_<split>.csv (split from the name, video frames) and an
    autoencoder instance's fakes.csv (split and origin columns; its frame is its real's)."""
    committed = tmp_path / "synthetic_val.csv"
    committed.write_text(
        "path,label,source,frame\nimages/a.png,0,photo-real,\nvideo/real/1.mp4,0,video-real,7\n"
    )
    fakes = tmp_path / "fakes.csv"
    fakes.write_text(
        "path,label,source,split,real,frame,real_source,instance\n"
        "conv-0/val/video-real/1_f7.png,1,ae-conv,val,video/real/1.mp4,7,video-real,conv-0\n"
    )
    assert data.read_rows(committed, "val") == [
        data.ImageRow("images/a.png", 0, "photo-real", "val"),
        data.ImageRow("video/real/1.mp4", 0, "video-real", "val", frame=7),
    ]
    assert data.read_rows(fakes) == [
        data.ImageRow("conv-0/val/video-real/1_f7.png", 1, "ae-conv", "val", "video-real")
    ]
    with pytest.raises(ValueError, match="split"):
        data.read_rows(committed)


def test_reconstructions_are_judged_against_the_reals_they_came_from():
    rows = [
        data.ImageRow("a", 0, "photo-real", "val"),
        data.ImageRow("b", 0, "ffhq-real", "val"),
        data.ImageRow("c", 1, "ae-conv", "val", origin="ffhq-real"),
        data.ImageRow("d", 1, "sd-fake", "val"),
        data.ImageRow("e", 1, "stylegan2-fake", "val"),
    ]
    assert data.auc_pairs(rows) == {
        "ae-conv": ("ffhq-real",),
        "sd-fake": ("photo-real",),
        "stylegan2-fake": ("ffhq-real",),
    }


# ---------------------------------------------------------------------------- net, run, export


def test_the_net_gives_one_logit_and_exports_under_twenty_megabytes(tmp_path):
    net = nets.SyntheticNet(pretrained=False).eval()
    path = export.export_graph(net, tmp_path / "m.onnx")
    x = np.random.default_rng(0).normal(size=(3, 3, data.CROP, data.CROP)).astype(np.float32)
    errors = onnx_export.round_trip_error(net, path, x)
    assert set(errors) == {"logit"} and errors["logit"] < 1e-4
    assert net(torch.from_numpy(x)).shape == (3, 1)
    assert path.stat().st_size < 20 * 2**20


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("synthetic")
    train_split, val_split = _split(tmp, 24, 0), _split(tmp, 12, 1, "val")
    out = tmp / "run"
    config = _tiny_config()
    options = train_synthetic.RunOptions(workers=0, max_steps=2)
    cut = train_synthetic.train(config, train_split, val_split, out, options)
    options = train_synthetic.RunOptions(workers=0)
    final = train_synthetic.train(config, train_split, val_split, out, options)
    return config, cut, final, out, train_split, val_split, tmp


def test_a_tiny_run_resumes_lowers_its_loss_and_separates_a_trivial_set(tiny_run):
    config, cut, final, out, train_split, val_split, _ = tiny_run
    assert (cut["epoch"], cut["step"]) == (0, 2)
    assert final["epoch"] == config.epochs and final["step"] == config.epochs * 4
    losses = [h["train_loss"] for h in final["history"]]
    assert losses[-1] < losses[0]
    assert final["history"][-1]["auc"]["sd-fake"] >= 0.9
    assert (out / "best.pt").exists() and (out / "train.log").exists()
    with pytest.raises(ValueError, match="another configuration"):
        train_synthetic.train(_tiny_config(epochs=4), train_split, val_split, out)


def test_the_exported_bundle_has_a_valid_card_calibrated_on_validation(tiny_run):
    _, _, final, _, train_split, val_split, tmp = tiny_run
    test_split = _split(tmp, 12, 2, "test")
    onnx_path, card_path = export.export_synthetic_model(
        final,
        val_split,
        test_split,
        tmp / "models",
        "image-synthetic",
        command="test",
        train=train_split,
        train_counts={"photo-real": 12, "sd-fake": 12},
        n_crops=3,
    )
    card = json.loads(card_path.read_text())
    assert check_card(card) == []
    assert card["task"] == "image-synthetic" and card["outputs"] == [
        {"name": "logit", "kind": "logit"}
    ]
    assert card["calibration"]["method"] == "platt"
    assert card["metrics"]["validation"]["fpr_at_threshold"] <= VALIDATION_FPR_BUDGET
    assert {"n_fake", "n_real", "ci95"} <= set(
        card["metrics"]["test"]["auc"]["sd-fake vs photo-real"]
    )
    assert card["inputs"][0]["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    assert card["inputs"][0]["preprocessing"]["n_crops"] == 3
    assert [(s["name"], s["count"]) for s in card["training"]["sources"]] == [
        ("photo-real", 12),
        ("sd-fake", 12),
    ]
    test = card["metrics"]["test"]
    assert set(test["sharpness_baseline"]) == set(test["auc"]) == {"sd-fake vs photo-real"}
    assert {"value", "ci95", "n_fake", "n_real"} <= set(
        test["sharpness_baseline"]["sd-fake vs photo-real"]
    )
    assert card["metrics"]["sharpness_baseline"]["fitted_on"] == {
        "n_real": 12,
        "n_fake": 12,
        "n_crops": baseline.TRAIN_CROPS,
    }
    assert {c: set(v) for c, v in test["robustness"].items()} == {
        "jpeg75": set(test["auc"]),
        "resize0.5": set(test["auc"]),
    }
    assert card["metrics"]["robustness_n_crops"] == robustness.ROBUSTNESS_CROPS
    assert "| sd-fake vs photo-real | 6 / 6 |" in card_table(card)


def test_test_files_are_scored_in_one_pass_exactly_as_served(tiny_run):
    """The pass that adds the baseline and the robustness conditions gives the model the
    same scores as :func:`export.score_onnx` (ServedDataset), so the card's figures agree."""
    _, _, final, _, _, val_split, tmp = tiny_run
    net, config = export.model_from_checkpoint(final)
    session = onnx_export.onnx_session(export.export_graph(net, tmp / "pass.onnx", SIZE), 1)
    paths = val_split.paths[:4]
    scores = export.score_test_images(session, paths, 3, SIZE, robust_crops=2)
    assert np.allclose(scores.model, export.score_onnx(session, paths, 3, SIZE), atol=1e-6)
    assert scores.sharpness.shape == (4, len(baseline.FEATURES))
    assert set(scores.conditions) == {"jpeg75", "resize0.5"}
    assert not np.allclose(scores.conditions["resize0.5"], scores.model)


def test_the_cli_registers_train_image_synthetic_with_the_run_options(capsys):
    parser = argparse.ArgumentParser(prog="deepfakescan")
    train_command.add_parser(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["train", "image-synthetic", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in ("--prepare-only", "--export-only", "--resume", "--leave-out", "--epoch-size"):
        assert option in text
    args = parser.parse_args(["train", "image-synthetic", "--leave-out", "ae-vae*", "--lr", "0.1"])
    assert (args.model, args.leave_out, args.lr) == ("image-synthetic", "ae-vae*", 0.1)


def test_a_leave_out_run_names_its_bundle_and_its_command():
    config = train_synthetic.TrainConfig(leave_out="ae-vae*")
    assert bundle_name("ae-vae*") == "image-synthetic-loso-ae-vae_"
    assert card_command("ae-vae*", config).startswith(
        "deepfakescan train image-synthetic --leave-out ae-vae* --epochs"
    )


def test_neighbour_residual_removes_what_is_flat_within_each_2x2_cell():
    """The NPR input: a picture upsampled 2x by pixel repetition (the crudest learned-upsampling
    trace) leaves nothing; a camera-like noise picture keeps its detail."""
    from deepfakescan.training.synthetic.nets import SyntheticNet, neighbour_residual

    torch.manual_seed(0)
    small = torch.randn(2, 3, 8, 8)
    upsampled = small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert torch.count_nonzero(neighbour_residual(upsampled)) == 0
    noise = torch.randn(2, 3, 16, 16)
    out = neighbour_residual(noise)
    assert out.shape == noise.shape and out.abs().mean() > 0.5
    net = SyntheticNet(pretrained=False, trunk_blocks=2, npr=True).eval()
    assert net(noise).shape == (2, 1)

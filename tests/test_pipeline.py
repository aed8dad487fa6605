"""scan(): one entry point, a schema-valid report, progress, cancellation and honest refusals."""

from __future__ import annotations

from dataclasses import astuple, replace

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


def test_face_box_of_an_image_analysed_reduced_is_in_the_files_pixels(settings_with_brightness):
    full = scan(face_jpeg("bright"), settings=settings_with_brightness)
    reduced_settings = replace(settings_with_brightness, decode_pixels=512 * 512 // 4)
    reduced = scan(face_jpeg("bright"), settings=reduced_settings)
    assert (reduced.media.width, reduced.media.height) == (512, 512)
    assert "analysed at 256x256" in reduced.warnings[0]
    [face], [face_full] = reduced.faces, full.faces
    for got, want in zip(astuple(face.box), astuple(face_full.box), strict=True):
        assert abs(got - want) <= 8  # same face, found on a picture half the size
    assert 150 < face.box.x < 210 and 40 < face.box.y < 90 and 60 < face.box.w < 120
    for (x, y), (x0, y0) in zip(face.landmarks, face_full.landmarks, strict=True):
        assert abs(x - x0) <= 6 and abs(y - y0) <= 6


def test_64_megapixel_jpeg_scans_with_a_warning_and_its_true_size(settings_with_brightness):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8000, 8000), (200, 200, 200)).save(buf, "JPEG")
    report = scan(buf.getvalue(), settings=settings_with_brightness)
    assert (report.media.width, report.media.height) == (8000, 8000)
    assert report.warnings[0].startswith("The image is 8000x8000 (64 MP)")
    assert "reduced by 2" in report.warnings[0]


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


# ------------------------------------------------------------------------------ provenance


def comfyui_png() -> bytes:
    """A face-free PNG carrying the ``prompt`` chunk ComfyUI writes (its node graph)."""
    import io
    import json

    from PIL import Image, PngImagePlugin

    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}}}
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(graph))
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 200, 200)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def with_xmp_source_type(jpeg: bytes, term: str) -> bytes:
    """``jpeg`` with an XMP packet declaring the IPTC digital source type ``term``."""
    import struct

    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
        ' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description'
        ' xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
        f' Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/{term}"/>'
        "</rdf:RDF></x:xmpmeta>"
    ).encode()
    payload = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def test_a_comfyui_png_is_fake_from_its_record_though_no_face_was_found(
    settings_with_brightness,
):
    report = scan(comfyui_png(), settings=settings_with_brightness)
    assert report.verdict == "fake"
    assert report.reasons[0] == "The PNG carries a ComfyUI prompt graph."
    assert "reached no verdict" in report.reasons[1]
    assert any("No face was found" in r for r in report.reasons[2:])
    assert report.fake_probability is None  # the score stays the models' (none: no face)
    section = report.provenance
    assert (section.hint, section.decided, section.model_verdict) == ("fake", True, "uncertain")
    [item] = section.items
    assert (item.source, item.field, item.generator) == ("png-text", "prompt", "ComfyUI")
    assert "provenance" in report.timings_ms


def test_an_ai_source_type_makes_a_real_looking_face_fake_and_keeps_the_models_score(
    settings_with_brightness,
):
    plain = scan(face_jpeg("dark"), settings=settings_with_brightness)
    declared = with_xmp_source_type(face_jpeg("dark"), "trainedAlgorithmicMedia")
    report = scan(declared, settings=settings_with_brightness)
    assert plain.verdict == "real" and report.verdict == "fake"
    assert report.fake_probability == pytest.approx(plain.fake_probability)
    assert report.faces[0].verdict == "real"  # the face's own judgement is unchanged
    assert "IPTC digital source type trainedAlgorithmicMedia" in report.reasons[0]
    assert report.reasons[2:] == plain.reasons
    assert report.provenance.model_verdict == "real"


def test_a_file_that_declares_nothing_has_an_empty_section_and_the_models_verdict(
    settings_with_brightness,
):
    report = scan(solid_jpeg(200), settings=settings_with_brightness)
    assert report.verdict == "uncertain" and "No face was found" in report.reasons[0]
    section = report.to_dict()["provenance"]
    assert section == {
        "items": [],
        "warnings": [],
        "hint": None,
        "decided": False,
        "model_verdict": "uncertain",
    }


def test_a_camera_source_type_without_a_signature_changes_nothing(settings_with_brightness):
    report = scan(
        with_xmp_source_type(face_jpeg("bright"), "digitalCapture"),
        settings=settings_with_brightness,
    )
    assert report.verdict == "fake" and report.reasons[0].startswith("The face looks")
    assert report.provenance.hint is None and report.provenance.items[0].camera_capture


def test_a_provenance_reader_that_breaks_is_a_warning_not_a_failed_scan(
    settings_with_brightness, monkeypatch
):
    from deepfakescan import provenance

    def broken(*args, **kwargs):
        raise RuntimeError("library bug")

    monkeypatch.setattr(provenance, "read_provenance", broken)
    report = scan(comfyui_png(), settings=settings_with_brightness)
    assert report.verdict == "uncertain" and report.provenance.items == []
    assert report.provenance.warnings == ["provenance: not read (RuntimeError: library bug)"]


@pytest.fixture(scope="module")
def signing_chain():
    pytest.importorskip("c2pa", reason="the [provenance] extra (c2pa-python) is needed")
    from .test_provenance import certificate_chain

    return certificate_chain()  # signer chain, signer key, root for a trust list


def trusting(tmp_path, root: bytes) -> Settings:
    bundle_path = tmp_path / "trust.pem"
    bundle_path.write_bytes(root)
    return Settings.from_env(c2pa_trust=bundle_path)


@pytest.mark.parametrize(("tone", "verdict"), [("dark", "real"), ("bright", "fake")])
def test_a_trusted_camera_manifest_supports_real_but_never_overrides_the_models(
    brightness_model_dir, signing_chain, tmp_path, tone, verdict
):
    from .test_provenance import CAPTURE, c2pa_signed_jpeg

    chain, key, root = signing_chain
    signed = c2pa_signed_jpeg(face_jpeg(tone), CAPTURE, chain, key, "Test Camera Firmware")
    report = scan(signed, settings=trusting(tmp_path, root))
    assert report.verdict == verdict and report.reasons[0].startswith("The face looks")
    assert "declares a camera capture" in report.reasons[-1]
    assert (report.provenance.hint, report.provenance.decided) == ("real", False)
    [manifest] = report.provenance.items
    assert manifest.validation == "trusted" and manifest.signer


def test_an_ai_manifest_that_does_not_verify_still_decides_and_says_so(
    brightness_model_dir, signing_chain, tmp_path
):
    from .test_provenance import TRAINED, c2pa_signed_jpeg

    chain, key, root = signing_chain
    signed = bytearray(c2pa_signed_jpeg(face_jpeg("dark"), TRAINED, chain, key))
    signed[-10] ^= 0xFF  # one image byte changed after signing
    report = scan(bytes(signed), settings=trusting(tmp_path, root))
    assert report.verdict == "fake" and report.provenance.model_verdict == "real"
    assert "do not verify" in report.reasons[0]
    assert report.provenance.items[0].verified is False

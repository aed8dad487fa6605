"""Video through scan(): faces tracked and scored, the audio track judged, both fused.

Clips are encoded here with PyAV from scikit-image's astronaut (public domain), toned so the
brightness stand-in (tests/conftest.py) calls the face fake (bright) or real (dark); an audio
stand-in whose logit is a constant stands in for the audio model. Shipped detector bundles are
hidden (only the MTCNN face detector stays), so the tests mean the same before and after the
trained models land.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

import deepfakescan
from deepfakescan import cli
from deepfakescan.config import Settings
from deepfakescan.detectors import bundle, synthetic
from deepfakescan.detectors import video as V
from deepfakescan.errors import ModelMissing, ScanCancelled

from .conftest import REPORT_SCHEMA, audio_card, write_bundle
from .fixtures import (
    _add_audio_stream,
    _write_audio,
    _write_frames,
    corrupt,
    gradient_rgb,
    make_video,
    tone,
)
from .test_synthetic_detector import red_minus_green_model, synthetic_card

SIZE = (256, 192)
FPS = 10


# ---------------------------------------------------------------------------- models


@pytest.fixture(autouse=True)
def only_the_face_detector_is_shipped(tmp_path, monkeypatch):
    """Shipped bundles other than MTCNN are hidden: each test installs what it needs."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for path in bundle.SHIPPED_DIR.glob("mtcnn_*"):
        (shipped / path.name).symlink_to(path)
    monkeypatch.setattr(bundle, "SHIPPED_DIR", shipped)
    monkeypatch.delenv("DEEPFAKESCAN_MODEL_DIR", raising=False)
    bundle.clear_cache()
    yield
    bundle.clear_cache()


def constant_audio_model(logit: float):
    """An audio "detector" whose logit is ``logit`` whatever it hears."""
    from onnx import TensorProto, helper

    from deepfakescan import features as AF

    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, *AF.feature_shape()])
    y = helper.make_tensor_value_info("logit", TensorProto.FLOAT, [None])
    nodes = [
        helper.make_node("ReduceMean", ["features"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "bias"], ["logit"]),
    ]
    inits = [
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("bias", TensorProto.FLOAT, [], [float(logit)]),
    ]
    graph = helper.make_graph(nodes, "constant", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def install_audio(directory, logit: float) -> None:
    write_bundle(
        directory, "audio", constant_audio_model(logit), audio_card(uncertain_band=[0.3, 0.7])
    )
    bundle.clear_cache()


@pytest.fixture
def natural_voice(brightness_model_dir) -> Settings:
    install_audio(brightness_model_dir, -4.0)
    return Settings.from_env(video_frames=8)


@pytest.fixture
def synthetic_voice(brightness_model_dir) -> Settings:
    install_audio(brightness_model_dir, 4.0)
    return Settings.from_env(video_frames=8)


# ---------------------------------------------------------------------------- clips


def astronaut(tone_name: str, side: int) -> np.ndarray:
    """The astronaut's portrait, toned as in conftest.face_jpeg: bright = fake, dark = real."""
    from skimage import data

    rgb = data.astronaut().astype(np.float32) * 0.35 + (150.0 if tone_name == "bright" else 0.0)
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    return np.asarray(img.resize((side, side), Image.Resampling.BILINEAR))


def one_face(tone_name: str, size=SIZE) -> np.ndarray:
    width, height = size
    canvas = np.full((height, width, 3), 90, np.uint8)
    face = astronaut(tone_name, min(width, height))
    x = (width - face.shape[1]) // 2
    canvas[:, x : x + face.shape[1]] = face
    return canvas


def two_faces(left: str, right: str) -> np.ndarray:
    return np.concatenate([astronaut(left, 192), astronaut(right, 192)], axis=1)


def encode(
    frames,
    *,
    fps: int = FPS,
    container: str = "mp4",
    audio: np.ndarray | None = None,
    sr: int = 16000,
    gop: int | None = None,
    tags: dict[str, str] | None = None,
) -> bytes:
    """H.264 (ultrafast) of ``frames`` (a list of RGB arrays), with an AAC track if given and
    the container tags ``tags``."""
    buf = io.BytesIO()
    height, width = frames[0].shape[:2]
    with av.open(buf, "w", format={"mp4": "mp4", "mkv": "matroska"}[container]) as out:
        out.metadata.update(tags or {})
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        options = {"preset": "ultrafast"}
        if gop is not None:
            vs.codec_context.gop_size = gop
            options |= {"keyint": str(gop), "min-keyint": str(gop)}
        vs.codec_context.options = options
        aus = _add_audio_stream(out, "aac", sr, 1) if audio is not None else None
        _write_frames(out, vs, frames, fps)
        if aus is not None:
            _write_audio(out, aus, audio[:, None], sr)
    return buf.getvalue()


def voice(seconds: float) -> np.ndarray:
    """A loud tone: the voice-activity gate counts it as speech (the stand-in hears nothing)."""
    return tone(seconds, 16000, 1)[:, 0]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 16000), np.float32)


def clip(tone_name: str, seconds: float = 2.0, audio=voice) -> bytes:
    frames = [one_face(tone_name)] * int(seconds * FPS)
    return encode(frames, audio=None if audio is None else audio(seconds))


# ---------------------------------------------------------------------------- verdicts


def test_fake_face_with_a_natural_voice_is_fake_and_the_face_is_named(natural_voice):
    report = deepfakescan.scan(clip("bright"), settings=natural_voice)
    assert report.verdict == "fake"
    assert report.media.type == "video"
    assert report.reasons[0].startswith("Face 1 judged manipulated in 8 of 8 frames (0:00 to")
    assert any(r.startswith("Voice sounds natural") for r in report.reasons)
    assert report.threshold == 0.5 and report.uncertain_band == (0.4, 0.6)
    [track] = report.tracks
    assert track.verdict == "fake" and track.frames_judged_fake == 8
    assert len(track.frame_times_s) == 8 and track.frame_times_s == sorted(track.frame_times_s)
    assert {f.track_id for f in report.faces} == {0}
    assert all(f.time_s in track.frame_times_s for f in report.faces)
    roles = {m.role for m in report.models}
    assert roles == {"image-detector", "face-detector", "audio-detector"}


def test_synthetic_voice_over_a_real_face_is_fake_and_the_span_is_named(synthetic_voice):
    report = deepfakescan.scan(clip("dark", seconds=3.0), settings=synthetic_voice)
    assert report.verdict == "fake"
    assert report.reasons[0].startswith("Voice synthetic from 0:00 to 0:03")
    assert any("looks authentic" in r for r in report.reasons)
    assert report.uncertain_band == (0.3, 0.7)  # the band of the modality that decided


def test_real_face_and_natural_voice_is_real(natural_voice):
    report = deepfakescan.scan(clip("dark"), settings=natural_voice)
    assert report.verdict == "real"
    assert report.fake_probability < 0.4


def test_timeline_has_per_second_visual_and_audio_segments(natural_voice):
    frames = [one_face("bright")] * 15 + [one_face("dark")] * 15  # fake for 1.5 s of 3
    report = deepfakescan.scan(encode(frames, audio=voice(3.0)), settings=natural_voice)
    visual = [s for s in report.segments if s.modality == "visual"]
    audio = [s for s in report.segments if s.modality == "audio"]
    assert [(s.start_s, s.end_s) for s in visual] == [(0, 1), (1, 2), (2, 3)]
    assert visual[0].fake_probability > 0.9 and visual[2].fake_probability < 0.1
    assert [(s.start_s, s.end_s) for s in audio] == [(0, 1), (1, 2), (2, 3)]
    assert all(s.fake_probability == pytest.approx(0.018, abs=0.001) for s in audio)
    # 4 of 8 frames fake: more than 40 % confident fakes, so the person is judged on those
    [track] = report.tracks
    assert track.frames_judged_fake == 4 and track.verdict == "fake"


def test_two_people_get_two_tracks_and_the_suspicious_one_decides(natural_voice):
    frames = [two_faces("dark", "bright")] * 20
    report = deepfakescan.scan(encode(frames, audio=voice(2.0)), settings=natural_voice)
    assert report.verdict == "fake"
    assert len(report.tracks) == 2
    verdicts = {t.track_id: t.verdict for t in report.tracks}
    assert sorted(verdicts.values()) == ["fake", "real"]
    fake_id = next(i for i, v in verdicts.items() if v == "fake")
    assert report.reasons[0].startswith(f"Face {fake_id + 1} judged manipulated")
    assert any("2 faces were followed" in r for r in report.reasons)
    # the fake person is the one on the right
    assert all(f.box.x > 150 for f in report.faces if f.track_id == fake_id)


def test_most_suspicious_frames_are_jpeg_thumbnails_with_boxes(natural_voice):
    report = deepfakescan.scan(clip("bright"), settings=natural_voice)
    thumbs = [a for a in report.artifacts if a.kind == "thumbnail"]
    assert [a.name for a in thumbs] == ["frame-1.jpg", "frame-2.jpg", "frame-3.jpg"]
    picture = Image.open(io.BytesIO(report.artifact_data["frame-1.jpg"]))
    assert picture.format == "JPEG" and picture.size == SIZE
    named = {f.heatmap for f in report.faces if f.heatmap}
    assert named == {"frame-1.jpg", "frame-2.jpg", "frame-3.jpg"}


def family_model():
    """A manipulation classifier that always says "blend" (softmax of logits 3, 0, 0)."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "bias"], ["logits"]),
    ]
    inits = [
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("bias", TensorProto.FLOAT, [3], [3.0, 0.0, 0.0]),
    ]
    graph = helper.make_graph(nodes, "family", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_the_family_is_named_when_the_classifier_is_confident(natural_voice):
    from .conftest import image_card

    card = image_card(
        task="image-family",
        outputs=[{"name": "logits", "kind": "logits"}],
        labels=["blend", "gan", "hand-edited"],
    )
    write_bundle(natural_voice.model_dir, "image-family", family_model(), card)
    bundle.clear_cache()
    report = deepfakescan.scan(clip("bright"), settings=natural_voice)
    [track] = report.tracks
    assert track.family == "blend"
    assert "Face 1 most resembles a blended face swap." in report.reasons
    assert "manipulation-classifier" in {m.role for m in report.models}
    assert all(f.family == "blend" for f in report.faces)


# ---------------------------------------------------------------------------- whole image

RED, GREEN = (250, 0, 0), (0, 250, 0)
"""Colours the whole-image stand-in scores fake (red) and real (green), frame by frame."""


def install_whole_image(directory, **card) -> None:
    """The red-minus-green whole-image stand-in (tests/test_synthetic_detector.py)."""
    write_bundle(directory, synthetic.MODEL_NAME, red_minus_green_model(), synthetic_card(**card))
    bundle.clear_cache()


def solid(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (SIZE[1], SIZE[0], 3)).copy()


def test_face_free_video_gets_a_visual_verdict_and_a_whole_image_timeline(brightness_model_dir):
    install_whole_image(brightness_model_dir)
    settings = Settings.from_env(video_frames=8)
    report = deepfakescan.scan(encode([solid(RED)] * 20), settings=settings)
    assert report.faces == [] and report.tracks == []
    assert report.verdict == "fake"
    assert report.reasons[0].startswith("The video's frames look generated or edited: ")
    assert report.reasons[0].endswith("; 8 of 8 frames scored fake on their own.")
    assert (
        "The face detector had nothing to judge (no face was found in the 8 sampled frames)."
        in report.reasons
    )
    whole = report.whole_image
    assert whole.verdict == "fake" and whole.fake_probability == report.fake_probability
    assert whole.crops == synthetic.N_CROPS_PER_FRAME and whole.artifact is None
    times = [f.time_s for f in whole.frames]
    assert len(times) == report.media.frames_sampled == 8 and times == sorted(times)
    assert all(f.fake_probability > 0.6 for f in whole.frames)
    assert (report.threshold, report.uncertain_band) == (0.5, (0.4, 0.6))
    assert ("image-synthetic", "whole-image-detector") in {(m.name, m.role) for m in report.models}
    assert report.timings_ms["whole-image"] > 0
    assert len(report.to_dict()["whole_image"]["frames"]) == 8


def test_a_few_generated_looking_frames_do_not_make_a_video_fake(brightness_model_dir):
    """The median decides: a red minority of frames is counted in the reason, not obeyed."""
    install_whole_image(brightness_model_dir)
    frames = [solid(GREEN)] * 14 + [solid(RED)] * 6
    report = deepfakescan.scan(encode(frames), settings=Settings.from_env(video_frames=8))
    whole = report.whole_image
    fake_frames = sum(f.fake_probability >= 0.6 for f in whole.frames)
    assert 1 <= fake_frames < 4
    assert whole.fake_probability == pytest.approx(
        float(np.median([f.fake_probability for f in whole.frames]))
    )
    assert report.verdict == whole.verdict == "real"
    assert report.reasons[0].startswith("The video's frames look like unedited footage")
    assert report.reasons[0].endswith(f"; {fake_frames} of 8 frames scored fake on their own.")


def test_whole_image_fake_overrules_a_real_face_and_voice(natural_voice):
    # Platt with a = 0: every frame scores sigmoid(5), whatever it shows
    install_whole_image(
        natural_voice.model_dir, calibration={"method": "platt", "a": 0.0, "b": 5.0}
    )
    report = deepfakescan.scan(clip("dark"), settings=natural_voice)
    [track] = report.tracks
    assert track.verdict == "real"
    assert report.verdict == "fake"
    assert report.reasons[0].startswith("The video's frames look generated or edited")
    assert any(
        r.startswith("The face detector (1 face followed across 8 frames) looks authentic")
        for r in report.reasons
    )
    assert any(r.startswith("Voice sounds natural") for r in report.reasons)
    assert {s.modality for s in report.segments} == {"visual", "audio"}


def test_without_the_whole_image_model_video_reports_are_as_before(natural_voice):
    report = deepfakescan.scan(clip("bright"), settings=natural_voice)
    data = report.to_dict()
    # the required fields (1.0's, and 1.1's provenance: FFmpeg's encoder tag, no hint)
    assert sorted(data) == sorted(REPORT_SCHEMA["required"])
    assert data["provenance"]["hint"] is None and not data["provenance"]["decided"]
    assert report.whole_image is None and "whole-image" not in report.timings_ms
    assert synthetic.MODEL_NAME not in {m.name for m in report.models}
    faceless = deepfakescan.scan(encode([solid(RED)] * 20), settings=natural_voice)
    assert faceless.verdict == "uncertain" and faceless.whole_image is None
    assert faceless.reasons == [
        "This video cannot be judged: no face was found and there is no audio track.",
        "No face was found in the 8 sampled frames, so the picture was not judged (this"
        " release judges faces).",
        "The video has no audio track, so only the picture was judged.",
    ]


# ---------------------------------------------------------------------------- provenance


def test_a_clip_tagged_by_an_ai_video_tool_is_fake_whatever_the_face_and_voice(natural_voice):
    frames = [one_face("dark")] * 20
    tagged = encode(frames, container="mkv", audio=voice(2.0), tags={"software": "Runway Gen-3"})
    plain = deepfakescan.scan(
        encode(frames, container="mkv", audio=voice(2.0)), settings=natural_voice
    )
    report = deepfakescan.scan(tagged, settings=natural_voice)
    assert plain.verdict == "real" and report.verdict == "fake"
    assert report.reasons[0] == (
        "The file's Matroska tags field SOFTWARE names Runway, an AI generator."
    )
    assert report.reasons[2:] == plain.reasons
    assert report.fake_probability == plain.fake_probability
    assert report.provenance.model_verdict == "real" and report.provenance.decided
    assert "provenance" in report.timings_ms


def test_speech_whose_id3_tag_names_a_voice_generator_is_fake(natural_voice):
    from .test_provenance import id3v23, mp3_frames

    data = id3v23({"TSSE": "ElevenLabs Multilingual v2"}) + mp3_frames()
    report = deepfakescan.scan(data, settings=natural_voice)
    assert report.media.type == "audio" and report.verdict == "fake"
    assert report.reasons[0] == "The file's ID3 tag field TSSE names ElevenLabs, an AI generator."
    assert report.provenance.items[0].source == "id3"


# ---------------------------------------------------------------------------- edge cases


def test_no_face_and_no_speech_is_uncertain_and_says_why(natural_voice):
    frames = [gradient_rgb(*SIZE)] * 20
    report = deepfakescan.scan(encode(frames, audio=silence(2.0)), settings=natural_voice)
    assert report.verdict == "uncertain" and report.fake_probability is None
    assert report.reasons[0].startswith("Neither a face nor speech was found")
    assert any("No face was found in the 8 sampled frames" in r for r in report.reasons)
    assert any(r.startswith("No speech") for r in report.reasons)


def test_no_face_is_said_and_the_audio_is_still_judged(synthetic_voice):
    frames = [gradient_rgb(*SIZE)] * 20
    report = deepfakescan.scan(encode(frames, audio=voice(2.0)), settings=synthetic_voice)
    assert report.verdict == "fake"
    assert report.reasons[0].startswith("Voice synthetic")
    assert any("No face was found" in r for r in report.reasons)
    assert report.tracks == [] and report.media.frames_sampled == 8


def test_video_without_audio_is_judged_visually_alone(natural_voice):
    report = deepfakescan.scan(clip("bright", audio=None), settings=natural_voice)
    assert report.verdict == "fake"
    assert any("no audio track" in r for r in report.reasons)
    assert {s.modality for s in report.segments} == {"visual"}
    assert report.media.sample_rate is None


def test_container_holding_only_audio_is_scanned_as_audio(natural_voice):
    data = make_video(None, 2.0, audio_only=True)
    report = deepfakescan.scan(data, settings=natural_voice)
    assert report.media.type == "audio"
    assert report.verdict == "real"


def test_only_the_audio_model_installed_judges_the_voice_and_warns(tmp_path, monkeypatch):
    install_audio(tmp_path / "audio-only", 4.0)
    monkeypatch.setenv("DEEPFAKESCAN_MODEL_DIR", str(tmp_path / "audio-only"))
    report = deepfakescan.scan(clip("dark"), settings=Settings.from_env(video_frames=4))
    assert report.verdict == "fake" and report.reasons[0].startswith("Voice synthetic")
    assert any(w.startswith("visual analysis unavailable") for w in report.warnings)
    assert report.media.frames_sampled == 0 and report.faces == []


def test_only_the_image_model_installed_judges_the_faces_and_warns(settings_with_brightness):
    report = deepfakescan.scan(clip("bright"), settings=settings_with_brightness)
    assert report.verdict == "fake"
    assert any(w.startswith("audio analysis unavailable") for w in report.warnings)


def test_no_model_at_all_is_model_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAKESCAN_MODEL_DIR", str(tmp_path / "empty"))
    with pytest.raises(ModelMissing) as info:
        deepfakescan.scan(clip("dark", audio=None), settings=Settings.from_env())
    assert info.value.message.startswith("no model installed for video")
    assert info.value.status == 503


def test_8k_frames_are_downscaled_before_detection(natural_voice, monkeypatch):
    canvas = np.full((4320, 7680, 3), 60, np.uint8)
    canvas[1000:2800, 3000:4800] = astronaut("bright", 1800)
    calls = []
    detect = V.detect_faces

    def spy(rgb, **kwargs):
        calls.append((rgb.shape, kwargs["max_side"], kwargs["min_face"]))
        return detect(rgb, **kwargs)

    monkeypatch.setattr(V, "detect_faces", spy)
    report = deepfakescan.scan(encode([canvas], fps=1), settings=natural_voice)
    assert (report.media.width, report.media.height) == (7680, 4320)
    # 33 MP is over DEEPFAKESCAN_DECODE_PIXELS (24 MP): decoded at half size, then detected
    assert calls == [((2160, 3840, 3), 640, pytest.approx(21.6))]  # 6 % of 360 px
    assert any("analysed at 3840x2160" in w for w in report.warnings)
    [face] = report.faces
    assert 3000 <= face.box.x < 4800 and face.box.w > 250  # in original 8K pixels
    assert report.verdict == "fake"


def test_face_boxes_from_a_reduced_decode_land_on_the_full_size_ones(natural_voice):
    canvas = np.full((1200, 1600, 3), 60, np.uint8)
    canvas[250:1050, 500:1300] = astronaut("bright", 800)
    data = encode([canvas], fps=1)
    full = deepfakescan.scan(data, settings=natural_voice)
    halved = deepfakescan.scan(data, settings=replace(natural_voice, decode_pixels=800 * 600))
    assert not any("DECODE_PIXELS" in w for w in full.warnings)
    assert any("analysed at 800x600" in w for w in halved.warnings)
    assert (halved.media.width, halved.media.height) == (1600, 1200)
    [a], [b] = full.faces, halved.faces
    assert a.box.x >= 500 and a.box.x + a.box.w <= 1300 and a.box.w > 100  # in file pixels
    box_a, box_b = (a.box.x, a.box.y, a.box.w, a.box.h), (b.box.x, b.box.y, b.box.w, b.box.h)
    assert np.abs(np.subtract(box_a, box_b)).max() <= 4  # 2 px measured
    assert np.abs(np.subtract(a.landmarks, b.landmarks)).max() <= 4


def test_two_hour_file_is_sampled_not_refused(natural_voice):
    # 64x48 at 1 fps: 7200 frames encode in well under a second
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=1)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.codec_context.gop_size = 600
        vs.codec_context.options = {"preset": "ultrafast", "keyint": "600"}
        frame = av.VideoFrame.from_ndarray(gradient_rgb(64, 48), format="rgb24")
        for i in range(7200):
            frame.pts = i
            frame.time_base = Fraction(1, 1)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
    report = deepfakescan.scan(buf.getvalue(), settings=natural_voice)
    assert report.media.duration_s == pytest.approx(7200, abs=1)
    assert report.media.analysed_duration_s == pytest.approx(7200, abs=1)
    assert report.media.frames_sampled == 8
    assert report.verdict == "uncertain"
    assert report.reasons[0] == (
        "This video cannot be judged: no face was found and there is no audio track."
    )


def test_corrupt_packets_mid_stream_are_skipped_with_a_warning(natural_voice):
    frames = []
    for i in range(20):  # a moving bar, so that every frame carries data worth damaging
        frame = one_face("bright").copy()
        frame[:, 8 * i : 8 * i + 4] = 255
        frames.append(frame)
    data = encode(frames, gop=5)
    report = deepfakescan.scan(corrupt(data, 0.4, 2000, seed=1), settings=natural_voice)
    assert any("damaged" in w for w in report.warnings)
    assert report.media.frames_sampled >= 3
    assert report.verdict == "fake"


def test_header_claiming_frames_it_does_not_have_is_scanned_with_a_warning(natural_voice):
    # the MKV header says 4 s (40 frames); cut at half its size, the stream holds fewer
    data = encode([one_face("bright")] * 40, container="mkv", gop=5)
    report = deepfakescan.scan(data[: len(data) // 2], settings=natural_voice)
    assert any("ends near" in w for w in report.warnings)
    assert 1 <= report.media.frames_sampled < 8
    assert report.verdict == "fake"


# ---------------------------------------------------------------------------- plumbing


def test_progress_covers_the_video_stages_and_timings_hold_them(natural_voice):
    seen = []
    report = deepfakescan.scan(
        clip("bright"), settings=natural_voice, progress=lambda f, s: seen.append((f, s))
    )
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    stages = [s for _, s in seen]
    for name in ("decode", "faces", "model", "audio", "fusion"):
        assert name in stages
        assert report.timings_ms[name] > 0
    assert stages.index("faces") < stages.index("audio") < stages.index("fusion")


def test_cancel_stops_a_video_scan(natural_voice):
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 4

    with pytest.raises(ScanCancelled):
        deepfakescan.scan(clip("bright"), settings=natural_voice, cancel=cancel)


def test_cli_prints_the_fused_verdict_and_json_holds_timeline_and_tracks(
    natural_voice, tmp_path, capsys
):
    path = tmp_path / "clip.mp4"
    path.write_bytes(clip("bright"))
    code = cli.main(["scan", str(path), "--frames", "8", "--no-progress"])
    out = capsys.readouterr().out
    assert code == cli.EXIT_FAKE
    assert "video" in out and "fake" in out and "Face 1 judged manipulated" in out
    cli.main(["scan", str(path), "--frames", "8", "--json", "--no-progress"])
    [item] = json.loads(capsys.readouterr().out)
    assert {s["modality"] for s in item["report"]["segments"]} == {"visual", "audio"}
    assert item["report"]["tracks"][0]["frame_times_s"]

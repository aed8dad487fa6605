"""The page in a real browser (Debian's chromium driven by Playwright), on waitress, offline.

Uploads the public-domain astronaut, a drawn portrait, a tone and a clip and sees their result
cards, uploads a renamed text file and sees the error inline, checks the client-side checks,
keyboard access and the phone-width layout, and takes screenshots (copied to docs/screenshots/
for the README with DEEPFAKESCAN_SAVE_SCREENSHOTS=1). Photos go through the real pipeline with
the brightness test bundle; stand-ins add what the detectors not trained yet will report (a
family and face heatmap, an audio window timeline, video timelines, tracks and frames), so the
card is tested on every part.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from deepfakescan import pipeline
from deepfakescan.config import Settings
from deepfakescan.detectors import bundle as bundles
from deepfakescan.detectors.synthetic import MODEL_NAME as WHOLE_IMAGE_MODEL
from deepfakescan.detectors.synthetic import N_CROPS, N_CROPS_PER_FRAME
from deepfakescan.report import (
    Artifact,
    Box,
    Face,
    FrameScore,
    MediaInfo,
    Report,
    Segment,
    Track,
    WholeImage,
)

from .conftest import face_jpeg, write_bundle
from .fixtures import gradient_rgb, make_video, tone_wav
from .test_synthetic_detector import red_minus_green_model, synthetic_card
from .test_web_api import audio_report

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (apt-get install chromium)"
    ),
]


def keep_screenshot(path: Path, name: str | None = None) -> None:
    """Copy a screenshot to docs/screenshots/ when DEEPFAKESCAN_SAVE_SCREENSHOTS=1 (the README's
    pictures are refreshed on purpose, not by every test run)."""
    if os.environ.get("DEEPFAKESCAN_SAVE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SCREENSHOTS / (name or path.name))


def synthetic_portrait(width: int = 640, height: int = 480) -> Image.Image:
    """A drawn, bright 'portrait' (no real person): a sky, a cartoon head and shoulders."""
    y = np.linspace(0, 1, height)[:, None, None]
    sky = (np.array([200, 225, 250]) * (1 - y) + np.array([240, 240, 230]) * y).astype(np.uint8)
    img = Image.fromarray(np.broadcast_to(sky, (height, width, 3)).copy())
    draw = ImageDraw.Draw(img)
    draw.ellipse((200, 380, 440, 600), fill=(90, 120, 200))
    draw.ellipse((250, 120, 390, 300), fill=(242, 200, 170))
    draw.ellipse((285, 180, 305, 195), fill=(40, 40, 60))
    draw.ellipse((335, 180, 355, 195), fill=(40, 40, 60))
    draw.arc((290, 225, 350, 265), 20, 160, fill=(150, 60, 60), width=4)
    draw.chord((245, 105, 395, 200), 180, 360, fill=(90, 60, 40))
    return img


def jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def heatmap_png(width: int, height: int) -> bytes:
    yy, xx = np.mgrid[0:height, 0:width]
    d = np.hypot((xx - width * 0.55) / width, (yy - height * 0.45) / height)
    strength = np.clip(1 - d * 2.2, 0, 1)
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 1] = (200 * (1 - strength)).astype(np.uint8)
    rgba[..., 3] = (200 * strength).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, "PNG")
    return buf.getvalue()


def scan_with_stand_ins(path, *, name=None, **kw):
    """The real pipeline, except: audio is a stub (no audio model in tests), and a ``drawn-``
    picture gets a stand-in face with a heatmap and a family (no family model in tests)."""
    if name and name.endswith(".wav"):
        return audio_report(path, name=name)
    if name and name.endswith(".mp4"):
        return video_report(name)
    report = pipeline.scan(path, name=name, **kw)
    if not (name or "").startswith("drawn-"):
        return report
    report.add_artifact(
        Artifact("heatmap-0.png", "heatmap", "image/png", "stand-in heatmap for face 1"),
        heatmap_png(140, 180),
    )
    report.faces = [
        Face(
            box=Box(250, 120, 140, 180),
            fake_probability=0.91,
            verdict="fake",
            detection_confidence=0.99,
            family="blend",
            family_probabilities={"blend": 0.72, "gan": 0.18, "hand-edited": 0.10},
            heatmap="heatmap-0.png",
        )
    ]
    report.fake_probability, report.verdict = 0.91, "fake"
    report.reasons = [
        "The face looks manipulated: 91% (we call it fake from 60%).",
        "It looks most like a face swap (72%).",
    ]
    return report


def video_report(name: str) -> Report:
    """Stand-in for the video detector: visual and audio timelines, a track, three frames; a
    ``whole-`` clip also gets the whole-image model's per-frame scores."""
    visual = [Segment(i, i + 1, 0.3 if i < 5 else 0.9, "visual") for i in range(10)]
    voice = [Segment(i, i + 2, 0.2 + 0.05 * i, "audio") for i in range(0, 10, 2)]
    report = Report(
        verdict="fake",
        fake_probability=0.82,
        threshold=0.5,
        uncertain_band=(0.4, 0.6),
        reasons=["The face looks manipulated from 5 s on.", "The voice sounds natural."],
        media=MediaInfo(type="video", format="mp4", size_bytes=1, width=160, height=120),
        segments=visual + voice,
        tracks=[Track(0, [float(i) for i in range(10)], 0.82, "fake", 5, "blend")],
        source_name=name,
    )
    if name.startswith("whole-"):
        frames = [FrameScore(i + 0.5, 0.15 if i < 6 else 0.85) for i in range(10)]
        report.whole_image = WholeImage(
            0.15, "real", 0.5, (0.4, 0.6), N_CROPS_PER_FRAME, frames=frames
        )
    for i in range(3):
        frame = Image.fromarray(np.full((90, 160, 3), 60 + 50 * i, np.uint8))
        report.add_artifact(
            Artifact(f"frame-{i}.jpg", "thumbnail", "image/jpeg", f"Frame at {5 + i} s"),
            jpeg_bytes(frame),
        )
    return report


@pytest.fixture
def server(request, tmp_path):
    """The app on waitress. Parametrise indirectly with ``{"max_bytes": N}`` to lower the byte
    limit, or ``{"shipped": True}`` to run the shipped models instead of the stand-ins."""
    from waitress import create_server

    from deepfakescan.web import create_app

    options = dict(getattr(request, "param", {}))
    whole_image = options.pop("whole_image", None)
    config = {}
    if not options.pop("shipped", False):
        directory = request.getfixturevalue("brightness_model_dir")
        if whole_image is not None:
            # the whole-image stand-in with its verdict fixed: Platt a = 0 gives sigmoid(b)
            card = synthetic_card(calibration={"method": "platt", "a": 0.0, "b": whole_image})
            write_bundle(directory, WHOLE_IMAGE_MODEL, red_minus_green_model(), card)
        config["SCAN_FN"] = scan_with_stand_ins
    bundles.clear_cache()
    settings = Settings.from_env(data_dir=tmp_path / "data", workers=1, **options)
    app = create_app({"SETTINGS": settings, **config})
    srv = create_server(app, host="127.0.0.1", port=0, threads=4)
    stop = threading.Event()

    def serve_until_stopped() -> None:
        # short loop turns, so the socket is closed here, never under a running select()
        while not stop.is_set():
            srv.asyncore.loop(timeout=0.05, map=srv._map, count=1)

    thread = threading.Thread(target=serve_until_stopped, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}"
    stop.set()
    thread.join(5)
    srv.close()
    srv.task_dispatcher.shutdown()
    app.extensions["deepfakescan"].close()
    bundles.clear_cache()


@pytest.fixture
def page(server):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        # fully offline: any request that leaves the server is a failure
        outside: list[str] = []
        context.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(server)
                else (outside.append(route.request.url), route.abort())
            ),
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server + "/")
        yield page
        assert errors == [], f"JavaScript errors: {errors}"
        assert outside == [], f"the page reached outside the server: {outside}"
        browser.close()


def upload(page, tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    page.set_input_files("#file-input", str(path))


def test_photo_upload_shows_verdict_explanation_face_box_and_heatmap(page, tmp_path):
    upload(page, tmp_path, "astronaut.jpg", face_jpeg("bright"))  # public domain, toned
    card = page.locator("#result article")
    card.wait_for(timeout=60_000)
    assert card.get_attribute("data-media") == "image"
    assert card.get_attribute("data-verdict") == "fake"  # a bright face, to the test model
    text = card.inner_text()
    assert "Likely manipulated" in text and "chance of manipulation" in text
    assert "we say we are unsure" in card.locator(".explanation").inner_text()
    assert "Face 1:" in text
    assert card.locator("img[alt^='The uploaded image with 1 face']").is_visible()
    assert card.locator("svg rect[stroke]").count() == 1  # the face box
    toggle = card.get_by_role("button", name="Show heatmap")
    toggle.focus()
    page.keyboard.press("Enter")
    assert card.get_by_role("button", name="Hide heatmap").get_attribute("aria-pressed") == "true"
    card.locator("svg g.heatmaps image").wait_for(state="attached")
    assert card.locator(".reasons li").first.inner_text().startswith("The face looks")
    assert page.locator("#history-list li").first.inner_text().startswith("Likely fake")


def test_card_shows_the_manipulation_family_and_saves_the_screenshot(page, tmp_path):
    upload(page, tmp_path, "drawn-portrait.jpg", jpeg_bytes(synthetic_portrait()))
    card = page.locator("#result article[data-verdict='fake']")
    card.wait_for(timeout=60_000)
    assert "looks like a blended face swap (72%)" in card.inner_text()
    card.get_by_role("button", name="Show heatmap").click()
    card.locator("svg g.heatmaps image").wait_for(state="attached")
    shot = tmp_path / "web-image-result.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    keep_screenshot(shot)


@pytest.mark.parametrize("server", [{"shipped": True}], indirect=True)
def test_shipped_models_judge_a_real_photo_and_a_real_voice_note(page, tmp_path):
    """No stand-ins: the astronaut through faces + detector + heatmap, espeak-ng speech through
    the audio model; each gets a result card a reader can act on."""
    import skimage.data

    upload(page, tmp_path, "astronaut.jpg", jpeg_bytes(Image.fromarray(skimage.data.astronaut())))
    card = page.locator("#result article[data-media='image']")
    card.wait_for(timeout=60_000)
    assert card.get_attribute("data-verdict") in ("real", "fake", "uncertain")
    assert "Face 1:" in card.inner_text()
    assert card.locator("svg rect[stroke]").count() == 1  # her face, boxed
    card.get_by_role("button", name="Show heatmap").click()
    card.locator("svg g.heatmaps image").wait_for(state="attached")
    shot = tmp_path / "web-astronaut-shipped-models.png"
    page.screenshot(path=str(shot), full_page=True)
    keep_screenshot(shot)

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    import subprocess

    speech = subprocess.run(
        ["espeak-ng", "--stdout", "The quarterly report is due on Friday, please send it."],
        capture_output=True,
        check=True,
    ).stdout
    upload(page, tmp_path, "voice-note.wav", speech)
    voice = page.locator("#result article[data-media='audio']")
    voice.wait_for(timeout=60_000)
    assert voice.get_attribute("data-verdict") == "fake"  # espeak-ng is synthetic speech
    chart = voice.get_by_role("img", name="How suspicious each part of the recording sounds")
    assert chart.locator("rect").count() >= 1  # one bar per scored window
    assert page.locator("#history-list li").count() == 2


def test_audio_upload_shows_a_timeline_of_window_scores(page, tmp_path):
    upload(page, tmp_path, "voice-note.wav", tone_wav(1.0))
    card = page.locator("#result article[data-media='audio']")
    card.wait_for()
    assert card.get_attribute("data-verdict") == "fake"
    chart = card.get_by_role("img", name="How suspicious each part of the recording sounds")
    assert chart.locator("rect[fill='#dc2626']").count() == 2  # two windows over the band
    assert "recording" in card.locator(".explanation").inner_text()


def test_video_upload_shows_visual_and_audio_timelines_and_suspicious_frames(page, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", seconds=1.0)
    page.set_input_files("#file-input", str(clip))
    card = page.locator("#result article[data-media='video']")
    card.wait_for(timeout=60_000)
    chart = card.get_by_role("img", name="Faces and voice over time")
    assert chart.locator("polyline").count() == 2
    frames = card.locator("img[alt^='Frame at']")
    assert frames.count() == 3
    assert page.evaluate("(img) => img.complete && img.naturalWidth", frames.first.element_handle())
    assert "Person 1: 82% chance of manipulation" in card.inner_text()


@pytest.mark.parametrize("server", [{"whole_image": 5.0}], indirect=True)
def test_face_free_photo_shows_the_whole_image_card_with_its_picture(page, tmp_path):
    upload(page, tmp_path, "landscape.jpg", jpeg_bytes(Image.fromarray(gradient_rgb(640, 480))))
    card = page.locator("#result article[data-media='image']")
    card.wait_for(timeout=60_000)
    assert card.get_attribute("data-verdict") == "fake"  # the whole-image model decides
    whole = card.locator("section.whole-image")
    assert whole.get_attribute("data-verdict") == "fake"
    assert whole.get_by_role("heading", name="Whole image").is_visible()
    text = whole.inner_text()
    assert "Likely fake" in text and ">99% chance of manipulation" in text
    assert whole.locator(".whole-image-words").inner_text() == (
        "We are more than 99% confident this image as a whole (not just its faces) has been"
        " manipulated."
    )
    assert f"{N_CROPS} crops of the picture" in text
    picture = whole.locator("img[alt^='Where the whole-image detector looked']")
    picture.scroll_into_view_if_needed()
    picture.wait_for()
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0", arg=picture.element_handle()
    )
    assert "whole-image.jpg" in picture.get_attribute("src")
    shot = tmp_path / "web-whole-image.png"
    page.screenshot(path=str(shot), full_page=True)
    keep_screenshot(shot)


@pytest.mark.parametrize("server", [{"whole_image": -1.0}], indirect=True)
def test_whole_image_card_words_follow_its_own_verdict_not_the_reports(page, tmp_path):
    """A fake face in a real-looking picture: the report says fake, the whole-image card says
    real in words that agree with its own badge (27% is "73% confident it was not")."""
    upload(page, tmp_path, "astronaut.jpg", face_jpeg("bright"))
    card = page.locator("#result article[data-verdict='fake']")
    card.wait_for(timeout=60_000)
    whole = card.locator("section.whole-image")
    assert whole.get_attribute("data-verdict") == "real"
    text = whole.inner_text()
    assert "Likely real" in text and "27% chance of manipulation" in text
    assert "Likely fake" not in text and "Likely manipulated" not in text
    assert whole.locator(".whole-image-words").inner_text() == (
        "We are 73% confident this image as a whole (not just its faces) has not been"
        " manipulated (a 27% chance that it was)."
    )


def test_video_timeline_shows_each_frames_whole_image_score(page, tmp_path):
    clip = make_video(tmp_path / "whole-clip.mp4", seconds=1.0)
    page.set_input_files("#file-input", str(clip))
    card = page.locator("#result article[data-media='video']")
    card.wait_for(timeout=60_000)
    chart = card.get_by_role("img", name="Faces, whole frames and voice over time")
    assert chart.locator("polyline").count() == 3  # faces, whole frames, voice
    assert chart.locator("polyline[stroke='#9333ea'] ~ circle[fill='#9333ea']").count() == 10
    assert "Whole frames (visual)" in card.inner_text()
    whole = card.locator("section.whole-image")
    assert whole.get_by_role("heading", name="Whole frames").is_visible()
    assert whole.get_attribute("data-verdict") == "real"
    crops = f"10 sampled frames were scored whole, {N_CROPS_PER_FRAME} crops each"
    assert crops in whole.inner_text()


def test_provenance_card_shows_the_records_beside_the_models_evidence(page, tmp_path):
    """A ComfyUI PNG (no face: the models have nothing to judge) and a C2PA-signed photo
    whose manifest declares AI over a real-looking face: both are fake from the file's own
    record, the card names the record, its signer, tool and actions, and whether a signature
    vouches for it, and the models' own score stays on the card."""
    from .test_pipeline import comfyui_png

    upload(page, tmp_path, "render.png", comfyui_png())
    card = page.locator("#result article[data-media='image']")
    card.wait_for(timeout=60_000)
    assert card.get_attribute("data-verdict") == "fake"
    records = card.locator("section.provenance")
    assert records.get_attribute("data-hint") == "fake"
    assert records.get_by_role("heading", name="What the file says about itself").is_visible()
    item = records.locator("li.provenance-item")
    assert item.count() == 1 and item.get_attribute("data-source") == "png-text"
    assert "PNG text “prompt”" in item.inner_text() and "names ComfyUI" in item.inner_text()
    assert "not signed" in item.locator(".provenance-trust").inner_text()
    explanation = card.locator(".explanation").inner_text()
    assert "declares that it was made or edited with AI" in explanation
    assert "the models had nothing to judge" in explanation
    assert card.locator(".reasons li").first.inner_text() == (
        "The PNG carries a ComfyUI prompt graph."
    )

    pytest.importorskip("c2pa", reason="the [provenance] extra (c2pa-python) is needed")
    from .test_provenance import TRAINED, c2pa_signed_jpeg, certificate_chain

    chain, key, _root = certificate_chain()
    signed = c2pa_signed_jpeg(face_jpeg("dark"), TRAINED, chain, key, "Test Diffusion")
    upload(page, tmp_path, "signed.jpg", signed)
    card = page.locator("#result article[data-media='image']")
    card.locator("li.provenance-item[data-source='c2pa']").wait_for(timeout=60_000)
    assert card.get_attribute("data-verdict") == "fake"
    text = card.locator("li.provenance-item[data-source='c2pa']").inner_text()
    assert "C2PA manifest" in text and "Declares AI" in text
    assert "tool: Test Diffusion 1.0" in text and "actions: created" in text
    assert "source type: trainedAlgorithmicMedia" in text
    assert "signed by Test Generator (Provenance Test Lab)" in text
    assert "the signature verifies, but the signer is not on this server's trust list" in text
    explanation = card.locator(".explanation").inner_text()
    assert "On their own, the models say: We are" in explanation
    assert "has not been manipulated" in explanation  # the dark face, to the test model
    assert "by the models alone" in card.inner_text()
    shot = tmp_path / "web-provenance.png"
    page.screenshot(path=str(shot), full_page=True)
    keep_screenshot(shot)


def test_renamed_text_file_shows_an_inline_error(page, tmp_path):
    upload(page, tmp_path, "notes.jpg", b"These are meeting notes, not a photo.\n" * 20)
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "We can't read this kind of file." in alert.inner_text()
    assert page.locator("#result article").count() == 0


@pytest.mark.parametrize("server", [{"max_bytes": 200_000}], indirect=True)
@pytest.mark.parametrize(
    ("name", "size", "message"),
    [
        ("huge.mp4", 300_000, "This file is too large."),
        ("silence.wav", 0, "This file is empty."),
        ("report.docx", 1000, "We can't read this kind of file."),
    ],
)
def test_client_refuses_files_it_can_judge_before_uploading(page, tmp_path, name, size, message):
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.method))
    upload(page, tmp_path, name, bytes(size))
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert message in alert.inner_text()
    assert "POST" not in requests


def test_phone_width_layout_has_no_horizontal_scroll_and_keyboard_reaches_the_picker(
    page, tmp_path
):
    page.set_viewport_size({"width": 375, "height": 740})
    upload(page, tmp_path, "drawn-portrait.jpg", jpeg_bytes(synthetic_portrait()))
    page.locator("#result article").wait_for(timeout=60_000)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    page.goto(page.url.split("/scans/")[0] + "/")
    for _ in range(8):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "file-input":
            break
    assert page.evaluate("document.activeElement.id") == "file-input"
    ring = page.evaluate("getComputedStyle(document.getElementById('dropzone')).boxShadow")
    assert ring != "none", "the focused picker shows no focus ring"
    keep_screenshot(tmp_path / "phone.png", "web-phone.png")

"""REST API: every route, every documented error, each answer checked against the OpenAPI doc.

Scans run on real worker threads against the tiny brightness ``image`` bundle (bright images
score fake, dark ones real); stand-in scan functions play the audio and video detectors that
are not trained yet, and the failures we need to provoke.
"""

from __future__ import annotations

import io
import re
import threading
import time

import pytest
from PIL import Image

from deepfakescan.config import Settings
from deepfakescan.errors import ScanCancelled
from deepfakescan.report import Evidence, MediaInfo, Report, Segment
from deepfakescan.web import create_app

from .conftest import face_jpeg, solid_jpeg
from .fixtures import make_jpeg, png_claiming_size, tone_wav
from .test_openapi import check_response


def make_app(tmp_path, scan_fn=None, **settings):
    settings.setdefault("workers", 1)
    config = {"SETTINGS": Settings.from_env(data_dir=tmp_path / "data", **settings)}
    if scan_fn is not None:
        config["SCAN_FN"] = scan_fn
    return create_app(config)


@pytest.fixture
def app(tmp_path, brightness_model_dir):
    app = make_app(tmp_path)
    yield app
    app.extensions["deepfakescan"].close()


class Api:
    """A test client whose every answer must match the OpenAPI document."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()

    def call(self, method: str, url: str, **kw):
        response = getattr(self.client, method)(url, **kw)
        check_response(self.app, response)
        return response

    def upload(self, data: bytes, name: str = "photo.jpg", query: str = "", **fields):
        form = {"file": (io.BytesIO(data), name), **fields}
        return self.call("post", f"/api/v1/scans{query}", data=form)


@pytest.fixture
def api(app):
    return Api(app)


def audio_report(path, *, progress=None, cancel=None, settings=None, name=None, kind=None):
    """Stand-in for the audio detector: a schema-valid report with a window timeline."""
    segments = [Segment(i * 1.0, i + 1.0, p, "audio") for i, p in enumerate([0.1, 0.8, 0.9])]
    evidence = Evidence(
        verdict="fake",
        fake_probability=0.83,
        threshold=0.5,
        uncertain_band=(0.4, 0.6),
        reasons=["Two of three speech windows sound synthetic."],
        segments=segments,
    )
    media = MediaInfo(type="audio", format="wav", size_bytes=1, duration_s=3.0, sample_rate=16000)
    return Report(
        verdict=evidence.verdict,
        fake_probability=evidence.fake_probability,
        threshold=evidence.threshold,
        uncertain_band=evidence.uncertain_band,
        reasons=evidence.reasons,
        media=media,
        segments=evidence.segments,
        source_name=name,
    )


def wait_for(api, scan_id, statuses=("done", "failed", "cancelled"), timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = api.call("get", f"/api/v1/scans/{scan_id}").get_json()
        if body["status"] in statuses or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


# ------------------------------------------------------------------------- scans: happy path


def test_upload_is_queued_and_answers_202_with_the_scans_url(api):
    response = api.upload(solid_jpeg(250))
    assert response.status_code == 202
    body = response.get_json()
    assert body["url"] == f"/api/v1/scans/{body['id']}" == response.headers["Location"]
    assert body["status"] in ("queued", "running", "done")
    assert body["media_type"] == "image" and body["source_name"] == "photo.jpg"
    assert wait_for(api, body["id"])["status"] == "done"


@pytest.mark.parametrize(
    ("picture", "verdict"), [("bright", "fake"), ("dark", "real"), ("faceless", "uncertain")]
)
def test_wait_answers_200_with_the_report_when_the_scan_finishes_in_time(api, picture, verdict):
    data = solid_jpeg(200) if picture == "faceless" else face_jpeg(picture)
    response = api.upload(data, query="?wait=60")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "done" and body["progress"] == 1.0
    assert body["verdict"] == body["report"]["verdict"] == verdict
    assert body["report"]["source_name"] == "photo.jpg"


def test_image_scan_keeps_a_downscaled_preview_with_exif_orientation_applied(api):
    # 1600x900 stored, EXIF 6 (rotate 90 degrees): the picture is 900 wide and 1600 high
    response = api.upload(make_jpeg(1600, 900, orientation=6), query="?wait=60")
    body = response.get_json()
    previews = [a for a in body["artifacts"] if a["kind"] == "preview"]
    assert [a["name"] for a in previews] == ["preview.jpg"]
    assert "preview.jpg" in [a["name"] for a in body["report"]["artifacts"]]
    picture = api.call("get", previews[0]["url"])
    assert picture.status_code == 200 and picture.mimetype == "image/jpeg"
    with Image.open(io.BytesIO(picture.data)) as img:
        assert img.size == (576, 1024)
    assert body["report"]["media"]["width"] == 900


def test_scan_status_reports_progress_between_zero_and_one(tmp_path, brightness_model_dir):
    release = threading.Event()

    def slow_scan(path, *, progress=None, cancel=None, settings=None, name=None, kind=None):
        progress(0.5, "detect")
        release.wait(5)
        return audio_report(path, name=name)

    app = make_app(tmp_path, scan_fn=slow_scan)
    api = Api(app)
    try:
        scan_id = api.upload(tone_wav(0.5), name="note.wav").get_json()["id"]
        body = wait_for(api, scan_id, statuses=("running",))
        deadline = time.monotonic() + 5
        while body["progress"] < 0.5 and time.monotonic() < deadline:
            body = wait_for(api, scan_id, statuses=("running",))
        assert body["status"] == "running" and body["progress"] == 0.5
        assert body["stage"] == "detect" and body["report"] is None
        release.set()
        done = wait_for(api, scan_id)
        assert done["status"] == "done" and done["report"]["segments"]
    finally:
        release.set()
        app.extensions["deepfakescan"].close()


def test_history_is_newest_first_and_paginated(api):
    ids = [
        api.upload(solid_jpeg(v), name=f"{v}.jpg", query="?wait=60").get_json()["id"]
        for v in (10, 20, 30)
    ]
    first = api.call("get", "/api/v1/scans?limit=2").get_json()
    assert first["total"] == 3 and [i["id"] for i in first["items"]] == ids[::-1][:2]
    assert first["next"] == "/api/v1/scans?limit=2&offset=2"
    second = api.call("get", first["next"]).get_json()
    assert [i["id"] for i in second["items"]] == ids[:1] and second["next"] is None
    assert second["items"][0]["verdict"] == "uncertain"  # no face in a grey square


def test_history_survives_a_restart(tmp_path, brightness_model_dir):
    app = make_app(tmp_path)
    scan_id = Api(app).upload(face_jpeg("bright"), query="?wait=60").get_json()["id"]
    app.extensions["deepfakescan"].close()
    again = make_app(tmp_path)
    try:
        body = Api(again).call("get", f"/api/v1/scans/{scan_id}").get_json()
        assert body["status"] == "done" and body["report"]["verdict"] == "fake"
    finally:
        again.extensions["deepfakescan"].close()


def test_audio_report_timeline_is_stored_and_served(tmp_path, brightness_model_dir):
    app = make_app(tmp_path, scan_fn=audio_report)
    try:
        body = Api(app).upload(tone_wav(1.0), name="voice.wav", query="?wait=60").get_json()
        assert body["media_type"] == "audio"
        assert [s["fake_probability"] for s in body["report"]["segments"]] == [0.1, 0.8, 0.9]
    finally:
        app.extensions["deepfakescan"].close()


# ------------------------------------------------------------------- delete, cancel, artifacts


def test_deleting_a_finished_scan_removes_it_and_its_artifacts(api):
    body = api.upload(solid_jpeg(250), query="?wait=60").get_json()
    artifact_url = body["artifacts"][0]["url"]
    assert api.call("delete", body["url"]).status_code == 204
    assert api.call("get", body["url"]).status_code == 404
    assert api.call("get", artifact_url).status_code == 404
    assert api.call("delete", body["url"]).status_code == 404


def test_deleting_a_running_scan_cancels_it_through_its_cancel_hook(tmp_path):
    started, stopped = threading.Event(), threading.Event()

    def endless_scan(path, *, progress=None, cancel=None, settings=None, name=None, kind=None):
        started.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if cancel():
                stopped.set()
                raise ScanCancelled("the scan was cancelled")
            time.sleep(0.01)
        raise AssertionError("cancel hook never fired")

    app = make_app(tmp_path, scan_fn=endless_scan)
    api = Api(app)
    service = app.extensions["deepfakescan"]
    try:
        body = api.upload(solid_jpeg(250)).get_json()
        assert started.wait(5)
        response = api.call("delete", body["url"])
        assert response.status_code == 200 and response.get_json()["status"] == "cancelled"
        assert stopped.wait(5)
        assert wait_for(api, body["id"])["status"] == "cancelled"
        deadline = time.monotonic() + 5
        while list(service.upload_dir.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert list(service.upload_dir.iterdir()) == []
    finally:
        app.extensions["deepfakescan"].close()


def test_unknown_scan_or_artifact_is_404(api):
    assert api.call("get", "/api/v1/scans/0123456789abcdef0123456789abcdef").status_code == 404
    assert api.call("delete", "/api/v1/scans/nope").status_code == 404
    assert api.call("get", "/api/v1/scans/nope/artifacts/preview.jpg").status_code == 404
    body = api.upload(solid_jpeg(10), query="?wait=60").get_json()
    missing = api.call("get", f"{body['url']}/artifacts/heatmap-0.png")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "not_found"


# --------------------------------------------------------------------------------- errors


def test_request_without_a_file_is_400(api):
    response = api.call("post", "/api/v1/scans", data={})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_input"


@pytest.mark.parametrize("query", ["?wait=121", "?wait=-1", "?wait=soon"])
def test_wait_outside_zero_to_120_seconds_is_400(api, query):
    assert api.upload(solid_jpeg(10), query=query).status_code == 400


@pytest.mark.parametrize("query", ["?limit=0", "?limit=101", "?offset=-1", "?limit=x"])
def test_bad_pagination_is_400(api, query):
    assert api.call("get", f"/api/v1/scans{query}").status_code == 400


def test_declared_kind_that_contradicts_the_content_is_400(api):
    response = api.upload(solid_jpeg(10), kind="audio")
    assert response.status_code == 400
    assert "content is image" in response.get_json()["error"]["message"]


def test_file_over_the_byte_limit_is_413(tmp_path, brightness_model_dir):
    app = make_app(tmp_path, max_bytes=2000)
    api = Api(app)
    try:
        response = api.upload(make_jpeg(400, 300))  # a few kB: under the envelope, over the file
        assert response.status_code == 413
        assert response.get_json()["error"]["code"] == "too_large"
        # far over: refused by Flask's MAX_CONTENT_LENGTH before the body is read
        huge = api.upload(b"\xff\xd8\xff" + bytes(3 * 1024 * 1024))
        assert huge.status_code == 413 and "DEEPFAKESCAN_MAX_BYTES" in huge.get_data(True)
        assert list(app.extensions["deepfakescan"].upload_dir.iterdir()) == []
    finally:
        app.extensions["deepfakescan"].close()


def test_image_over_the_pixel_limit_is_413_before_decoding(api):
    response = api.upload(png_claiming_size(30000, 30000), name="bomb.png")
    assert response.status_code == 413
    assert "DEEPFAKESCAN_MAX_PIXELS" in response.get_json()["error"]["message"]


def test_renamed_text_file_is_unsupported_media(api):
    response = api.upload(b"Meeting notes: nothing to see here.\n" * 20, name="photo.jpg")
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "unsupported_media"


def test_damaged_image_is_422(api):
    header_only = api.upload(b"\xff\xd8\xff\xe0" + b"\x00" * 200, name="broken.jpg")
    assert header_only.status_code == 422
    data = make_jpeg(320, 240)
    truncated = api.upload(data[: len(data) // 2], name="cut.jpg", query="?wait=60")
    assert truncated.status_code == 422
    assert truncated.get_json()["error"]["code"] == "corrupt_media"


@pytest.fixture
def no_models(tmp_path, monkeypatch):
    """Neither shipped bundles nor a model directory: what a broken install looks like."""
    from deepfakescan.detectors import bundle

    monkeypatch.setattr(bundle, "SHIPPED_DIR", tmp_path / "no-shipped-models")
    monkeypatch.setenv("DEEPFAKESCAN_MODEL_DIR", str(tmp_path / "no-models"))


def test_missing_model_is_503_and_the_scan_is_kept_as_failed(tmp_path, no_models):
    app = make_app(tmp_path)
    api = Api(app)
    try:
        response = api.upload(solid_jpeg(250), query="?wait=60")
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "model_missing"
        item = api.call("get", "/api/v1/scans").get_json()["items"][0]
        assert item["status"] == "failed" and item["error"]["code"] == "model_missing"
    finally:
        app.extensions["deepfakescan"].close()


def test_unexpected_failure_is_a_bare_500_without_a_stack_trace(tmp_path):
    def broken_scan(path, **kw):
        raise RuntimeError("secret detail /srv/internal/path")

    app = make_app(tmp_path, scan_fn=broken_scan)
    try:
        response = Api(app).upload(solid_jpeg(250), query="?wait=60")
        assert response.status_code == 500
        text = response.get_data(as_text=True)
        assert "secret" not in text and "Traceback" not in text
        assert response.get_json()["error"]["code"] == "internal_error"
    finally:
        app.extensions["deepfakescan"].close()


def test_unknown_route_and_wrong_method_answer_json_not_html(api):
    missing = api.client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.is_json
    assert missing.get_json()["error"]["code"] == "not_found"
    wrong = api.client.put("/api/v1/scans")
    assert wrong.status_code == 405 and wrong.is_json
    assert "POST" in wrong.headers["Allow"]


def test_client_file_name_is_only_a_label_never_a_path(api, app):
    body = api.upload(solid_jpeg(10), name="../../etc/passwd.jpg", query="?wait=60").get_json()
    assert body["source_name"] == "passwd.jpg"
    assert list(app.extensions["deepfakescan"].upload_dir.iterdir()) == []


# ----------------------------------------------------------------------- models and health


def test_models_lists_installed_bundles_without_server_paths(api):
    body = api.call("get", "/api/v1/models").get_json()
    image = next(m for m in body["models"] if m["name"] == "image")
    assert image["valid"] and image["source"] == "model_dir" and "path" not in image


def test_health_reports_workers_queue_and_models(api):
    body = api.call("get", "/api/v1/health").get_json()
    assert body["status"] == "ok" and body["workers"] == 1 and "image" in body["models"]


def test_the_report_carries_provenance_and_a_comfyui_record_decides(api):
    """A face-free PNG with ComfyUI's ``prompt`` chunk: the models have nothing to judge, the
    file's own record makes it fake, and the API's report says so first."""
    from .test_pipeline import comfyui_png

    body = api.upload(comfyui_png(), name="render.png", query="?wait=60").get_json()
    report = body["report"]
    assert body["verdict"] == report["verdict"] == "fake"
    assert report["reasons"][0] == "The PNG carries a ComfyUI prompt graph."
    assert report["fake_probability"] is None  # the models' score: no face, no number
    provenance = report["provenance"]
    assert provenance["decided"] and provenance["model_verdict"] == "uncertain"
    [item] = provenance["items"]
    assert (item["source"], item["field"], item["generator"]) == ("png-text", "prompt", "ComfyUI")


# ---------------------------------------------------------------- the prototype's /predict


def predict(api, data: bytes, name: str = "photo.jpg", **fields):
    form = {"file": (io.BytesIO(data), name), **fields}
    return api.call("post", "/predict", data=form)


def test_predict_says_fake_with_the_probability_of_fake(api):
    body = predict(api, face_jpeg("bright")).get_json()
    assert body["prediction"] == "Fake" and body["verdict"] == "fake"
    assert body["confidence"] > 0.9


def test_predict_says_real_with_the_probability_of_real(api):
    body = predict(api, face_jpeg("dark"), fileType="image").get_json()
    assert body["prediction"] == "Real" and body["verdict"] == "real"
    assert body["confidence"] > 0.9


def test_predict_uses_the_threshold_even_inside_the_uncertain_band(tmp_path):
    def borderline(path, *, name=None, **kw):
        report = audio_report(path, name=name)
        report.fake_probability, report.verdict = 0.55, "uncertain"  # over 0.5, in [0.4, 0.6)
        return report

    app = make_app(tmp_path, scan_fn=borderline)
    try:
        body = predict(Api(app), tone_wav(1.0), name="a.wav").get_json()
        assert body == {
            "prediction": "Fake",
            "confidence": 0.55,
            "decided_by": "models",
            "verdict": "uncertain",
            "scan_id": body["scan_id"],
        }
    finally:
        app.extensions["deepfakescan"].close()


def test_predict_follows_a_provenance_record_that_declares_ai(api):
    """The report says fake because the file declares it (ComfyUI): /predict must not answer
    422 'no evidence' or 'Real' beside that verdict."""
    from .test_pipeline import comfyui_png

    body = predict(api, comfyui_png(), name="render.png").get_json()
    assert body["prediction"] == "Fake" and body["verdict"] == "fake"
    assert body["decided_by"] == "provenance" and body["confidence"] is None


def test_predict_refuses_to_guess_on_a_picture_without_a_face(api):
    response = predict(api, solid_jpeg(200))
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "no_evidence"
    assert "No face was found" in response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    ("data", "fields", "status"),
    [
        (None, {}, 400),
        (b"\xff\xd8\xff" + bytes(100), {"fileType": "sculpture"}, 400),
        ("jpeg", {"fileType": "video"}, 400),
        (b"just some text, renamed\n" * 10, {}, 415),
        (b"\xff\xd8\xff\xe0" + bytes(200), {}, 422),
    ],
)
def test_predict_errors_are_json_with_their_status(api, data, fields, status):
    if data is None:
        response = api.call("post", "/predict", data=fields)
    else:
        response = predict(api, solid_jpeg(10) if data == "jpeg" else data, **fields)
    assert response.status_code == status
    assert set(response.get_json()["error"]) == {"code", "message"}


def test_predict_without_a_model_is_503(tmp_path, no_models):
    app = make_app(tmp_path)
    try:
        assert predict(Api(app), solid_jpeg(250)).status_code == 503
    finally:
        app.extensions["deepfakescan"].close()


def test_predict_refuses_to_guess_when_there_was_nothing_to_judge(tmp_path):
    def no_speech(path, *, name=None, **kw):
        report = audio_report(path, name=name)
        report.fake_probability = report.threshold = report.uncertain_band = None
        report.verdict, report.segments = "uncertain", []
        report.reasons = ["No speech was found in this recording."]
        return report

    app = make_app(tmp_path, scan_fn=no_speech)
    try:
        response = predict(Api(app), tone_wav(1.0), name="hum.wav")
        assert response.status_code == 422
        assert response.get_json()["error"]["message"] == "No speech was found in this recording."
    finally:
        app.extensions["deepfakescan"].close()


# -------------------------------------------------------- streamed intake, lanes and waits


def multipart(*parts: tuple[str, str | None, bytes], closed: bool = True) -> bytes:
    """A multipart/form-data body with boundary ``b0undary`` from (name, filename, data)."""
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--b0undary\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data
        out += b"\r\n"
    return out + (b"--b0undary--\r\n" if closed else b"")


def post_raw(api, body: bytes, content_type="multipart/form-data; boundary=b0undary", url=None):
    return api.call("post", url or "/api/v1/scans", data=body, content_type=content_type)


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        (multipart(("file", "cut.jpg", solid_jpeg(10)), closed=False), None, "complete"),
        (multipart(("file", "a.jpg", solid_jpeg(10))), "application/octet-stream", "no file"),
        (b"\xff\xd8\xff" + bytes(200_000), None, "not a multipart"),
        (multipart(("kind", None, b"image")), None, "no file"),
        (multipart(("file", "a.jpg", solid_jpeg(10)), ("kind", None, b"i" * 2000)), None, "kind"),
    ],
    ids=["cut-off", "not-multipart", "no-boundary", "no-file-part", "long-field"],
)
def test_a_malformed_upload_is_400_and_leaves_no_file(api, app, body, content_type, words):
    kwargs = {"content_type": content_type} if content_type else {}
    response = post_raw(api, body, **kwargs)
    assert response.status_code == 400 and words in response.get_json()["error"]["message"]
    assert list(app.extensions["deepfakescan"].upload_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("data", "status"),
    [(b"\xff\xd8\xff\xe0" + bytes(200), 422), (b"\0\0\0\x18ftypmp42" + bytes(100), 422)],
)
def test_an_upload_refused_after_it_is_written_leaves_no_file(api, app, data, status):
    response = post_raw(api, multipart(("file", "bad.bin", data)))
    assert response.status_code == status
    assert list(app.extensions["deepfakescan"].upload_dir.iterdir()) == []


def test_the_declared_kind_may_follow_the_file_in_the_form(api):
    body = multipart(("file", "a.jpg", solid_jpeg(10)), ("kind", None, b"audio"))
    response = post_raw(api, body)
    assert (
        response.status_code == 400
        and "content is image" in response.get_json()["error"]["message"]
    )


def test_a_second_file_part_is_skipped_and_the_first_is_scanned(api):
    body = multipart(("file", "a.jpg", solid_jpeg(250)), ("file", "b.txt", b"notes" * 100))
    response = post_raw(api, body)
    assert response.status_code == 202 and response.get_json()["source_name"] == "a.jpg"


@pytest.fixture
def held(tmp_path):
    """An app whose scans run until ``release`` is set, with 3 HTTP threads (1 upload lane)."""
    release = threading.Event()

    def held_scan(path, *, name=None, **kw):
        release.wait(30)
        return audio_report(path, name=name)

    app = make_app(tmp_path, scan_fn=held_scan, http_threads=3, max_wait_seconds=30)
    yield app, release
    release.set()
    app.extensions["deepfakescan"].close()


def test_uploads_beyond_the_lanes_get_429_and_health_still_answers(held):
    app, release = held
    api = Api(app)
    answers = []
    waiting = threading.Thread(
        target=lambda: answers.append(api.upload(tone_wav(1.0), "a.wav", query="?wait=30"))
    )
    waiting.start()  # holds the one upload lane while it waits for its scan
    deadline = time.monotonic() + 10
    while not app.extensions["deepfakescan"].store.counts()["running"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    refused = api.upload(tone_wav(1.0), "b.wav")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "DEEPFAKESCAN_HTTP_THREADS" in refused.get_json()["error"]["message"]
    assert api.call("get", "/api/v1/health").status_code == 200
    release.set()
    waiting.join(30)
    assert answers[0].status_code == 200
    assert api.upload(tone_wav(1.0), "c.wav").status_code == 202  # the lane is free again


def test_wait_is_capped_by_the_configured_longest_wait(tmp_path):
    def slow_scan(path, *, name=None, **kw):
        time.sleep(3)
        return audio_report(path, name=name)

    app = make_app(tmp_path, scan_fn=slow_scan, max_wait_seconds=0.2)
    try:
        response = Api(app).upload(tone_wav(1.0), "a.wav", query="?wait=100")
        assert response.status_code == 202  # not finished: the wait stopped at 0.2 s
        assert response.get_json()["status"] in ("queued", "running")
        answer = predict(Api(app), tone_wav(1.0), name="b.wav")
        assert answer.status_code == 504
        message = answer.get_json()["error"]["message"]
        assert "DEEPFAKESCAN_MAX_WAIT_SECONDS" in message and "/api/v1/scans/" in message
    finally:
        app.extensions["deepfakescan"].close()


def test_a_stopping_server_answers_its_waiting_requests_at_once(held):
    app, _ = held
    api = Api(app)
    answers = []
    waiting = threading.Thread(
        target=lambda: answers.append(api.upload(tone_wav(1.0), "a.wav", query="?wait=30"))
    )
    waiting.start()
    deadline = time.monotonic() + 10
    while not app.extensions["deepfakescan"].store.counts()["running"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    app.extensions["deepfakescan"].stop_waiting()
    waiting.join(10)
    assert not waiting.is_alive() and answers[0].status_code == 202


# ------------------------------------------------------------------------------- the page


def test_page_lists_history_with_verdict_badges_and_loads_nothing_from_outside(api):
    api.upload(face_jpeg("bright"), name="<img src=x onerror=alert(1)>.jpg", query="?wait=60")
    page = api.client.get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert 'class="badge badge-fake' in html and "Likely fake" in html
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in html  # a file name is text, not markup
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not ref.startswith(("http:", "https:", "//")), ref
    script = api.client.get("/static/app.js").get_data(as_text=True)
    assert "innerHTML" not in script
    assert re.findall(r"https?://(?!www\.w3\.org/2000/svg)", script) == []


def test_result_page_of_an_unknown_scan_is_404(api):
    response = api.client.get("/scans/0123456789abcdef0123456789abcdef")
    assert response.status_code == 404 and response.is_json

"""Who may ask what: API keys and their scans, the page's session, Host, CSRF, CORS, limits.

Each test names what a user or an operator is promised (issue #23): another key's scan does not
exist for you, a revoked key stops at once (its page session too), a server open to the
network without keys does not start, another host name or another site's page is refused,
uploads over the limits get 429 with Retry-After, and no error names a path on the server.
Every answer is checked against the OpenAPI document, like the API tests' answers.
"""

from __future__ import annotations

import io

import pytest

from deepfakescan.config import Settings
from deepfakescan.jobs import JobStore, KeyRing
from deepfakescan.web import create_app
from deepfakescan.web.serve import check_access

from .conftest import solid_jpeg
from .fixtures import make_jpeg, make_video
from .test_openapi import check_response

SECRET = "test-secret-not-for-production"
SAME_SITE = {"Sec-Fetch-Site": "same-origin", "Origin": "null"}  # our page (no-referrer)
OTHER_SITE = {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}


def make_app(tmp_path, **settings):
    settings.setdefault("workers", 1)
    settings.setdefault("secret_key", SECRET)
    return create_app({"SETTINGS": Settings.from_env({}, data_dir=tmp_path / "data", **settings)})


@pytest.fixture
def app(tmp_path, brightness_model_dir):
    app = make_app(tmp_path)
    yield app
    app.extensions["deepfakescan"].close()


@pytest.fixture
def keys(app) -> KeyRing:
    return KeyRing(app.extensions["deepfakescan"].store)


class Client:
    """A test client that sends a key (or a cookie) and checks each answer against the spec."""

    def __init__(self, app, key: str | None = None, headers: dict | None = None):
        self.app, self.client = app, app.test_client()
        self.headers = dict(headers or {})
        if key is not None:
            self.headers["Authorization"] = f"Bearer {key}"

    def call(self, method: str, url: str, headers: dict | None = None, **kw):
        response = getattr(self.client, method)(url, headers=self.headers | (headers or {}), **kw)
        if url.startswith(("/api/", "/predict")) and method != "options":
            check_response(self.app, response)
        return response

    def upload(self, data: bytes = b"", name: str = "photo.jpg", query: str = "", **kw):
        form = {"file": (io.BytesIO(data or solid_jpeg(200)), name)}
        return self.call("post", f"/api/v1/scans{query}", data=form, **kw)


def sign_in(app, key: str) -> Client:
    page = Client(app)
    response = page.call("post", "/signin", data={"key": key}, headers=SAME_SITE)
    assert response.status_code == 303
    return page


# ------------------------------------------------------------------------ keys and owners


def test_another_keys_scan_is_404_and_an_admin_key_sees_every_scan(app, keys):
    _, alice_key = keys.create("alice")
    _, bob_key = keys.create("bob")
    _, admin_key = keys.create("desk", admin=True)
    alice, bob, admin = Client(app, alice_key), Client(app, bob_key), Client(app, admin_key)
    scan = alice.upload(make_jpeg(320, 240), query="?wait=60").get_json()
    assert scan["status"] == "done" and scan["artifacts"]
    artifact = scan["artifacts"][0]["url"]

    assert alice.call("get", scan["url"]).status_code == 200
    assert alice.call("get", artifact).status_code == 200
    for method, url in (("get", scan["url"]), ("get", artifact), ("delete", scan["url"])):
        assert bob.call(method, url).status_code == 404, (method, url)
    assert bob.call("get", "/api/v1/scans").get_json()["total"] == 0
    assert bob.call("get", f"/scans/{scan['id']}").status_code == 404  # the page too

    bob.upload()
    listed = admin.call("get", "/api/v1/scans").get_json()
    assert listed["total"] == 2
    assert [i["id"] for i in alice.call("get", "/api/v1/scans").get_json()["items"]] == [scan["id"]]
    assert admin.call("delete", scan["url"]).status_code == 204


def test_once_a_key_exists_every_route_but_page_static_and_health_needs_one(app, keys):
    anyone = Client(app)
    assert anyone.call("get", "/api/v1/scans").status_code == 200  # no key yet: open
    keys.create("first")
    for method, url in [
        ("get", "/api/v1/scans"),
        ("get", "/api/v1/scans/0123456789abcdef0123456789abcdef"),
        ("get", "/api/v1/scans/0123456789abcdef0123456789abcdef/artifacts/preview.jpg"),
        ("get", "/api/v1/models"),
        ("get", "/api/v1/openapi.json"),
        ("post", "/predict"),
        ("post", "/api/v1/scans"),
    ]:
        response = anyone.call(method, url)
        assert response.status_code == 401, url
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert anyone.call("get", "/api/v1/health").status_code == 200
    assert anyone.call("get", "/static/app.css").status_code == 200
    page = anyone.call("get", "/").get_data(as_text=True)
    assert 'name="key"' in page and "Recent scans" not in page  # the sign-in form, no history
    wrong = Client(app, "dfs_not-a-key")
    assert wrong.call("get", "/api/v1/scans").status_code == 401


def test_require_keys_closes_the_server_before_the_first_key(tmp_path, brightness_model_dir):
    app = make_app(tmp_path, require_keys=True)
    try:
        assert Client(app).call("get", "/api/v1/scans").status_code == 401
    finally:
        app.extensions["deepfakescan"].close()


def test_page_signs_in_with_a_key_into_a_strict_http_only_cookie(app, keys):
    _, key = keys.create("editor")
    page = Client(app)
    refused = page.call("post", "/signin", data={"key": "dfs_wrong"}, headers=SAME_SITE)
    assert refused.status_code == 401 and "not valid" in refused.get_data(as_text=True)
    response = page.call("post", "/signin", data={"key": key}, headers=SAME_SITE)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert key not in cookie  # the cookie names the key's id, never the key
    html = page.call("get", "/").get_data(as_text=True)
    assert "Recent scans" in html and "Sign out" in html
    assert page.upload(headers=SAME_SITE).status_code == 202
    assert page.call("get", "/api/v1/scans").get_json()["total"] == 1
    page.call("post", "/signout", headers=SAME_SITE)
    assert page.call("get", "/api/v1/scans").status_code == 401


def test_revoked_key_is_refused_at_once_and_its_page_session_ends(app, keys):
    listed, key = keys.create("leaver")
    page, script = sign_in(app, key), Client(app, key)
    assert page.call("get", "/api/v1/scans").status_code == 200
    assert script.call("get", "/api/v1/scans").status_code == 200
    assert keys.revoke(listed.id)
    assert page.call("get", "/api/v1/scans").status_code == 401
    assert script.call("get", "/api/v1/scans").status_code == 401
    assert 'name="key"' in page.call("get", "/").get_data(as_text=True)
    assert not keys.revoke(listed.id)  # already revoked


def test_keys_are_stored_as_digests_only(app, keys):
    import sqlalchemy as sa

    _, key = keys.create("x")
    with app.extensions["deepfakescan"].store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM api_keys")).all()
    assert key not in repr(rows) and len(key) >= 43  # 256 random bits, base64url


# ------------------------------------------------------------------------- serve's refusals


def test_non_loopback_bind_is_refused_without_keys(tmp_path, capsys):
    from deepfakescan.cli import main

    code = main(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "data")])
    assert code == 2
    assert "--insecure-no-auth" in capsys.readouterr().err
    open_to_all = Settings.from_env({}, host="0.0.0.0", data_dir=tmp_path / "data")
    assert check_access(open_to_all, insecure_no_auth=True) is False  # said on purpose
    assert check_access(Settings.from_env({}, data_dir=tmp_path / "data")) is False  # loopback


def test_keys_without_a_session_secret_refuse_to_start(tmp_path):
    from deepfakescan.errors import BadInput

    def settings(**kw):
        return Settings.from_env({}, host="0.0.0.0", data_dir=tmp_path / "data", **kw)

    with pytest.raises(BadInput, match="DEEPFAKESCAN_SECRET_KEY"):
        check_access(settings(require_keys=True))
    assert check_access(settings(require_keys=True, secret_key=SECRET)) is True
    store = JobStore(tmp_path / "data" / "scans.sqlite3")
    KeyRing(store).create("first")  # a key made earlier turns keys on without the setting
    store.close()
    with pytest.raises(BadInput, match="DEEPFAKESCAN_SECRET_KEY"):
        check_access(settings())


# ------------------------------------------------------------------ Host, CSRF, CORS, headers


def test_bad_host_is_400_json_and_health_still_answers_probes(app):
    anyone = Client(app)
    response = anyone.call("get", "/api/v1/scans", headers={"Host": "rebind.evil.example"})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "bad_host"
    assert anyone.call("get", "/", headers={"Host": "rebind.evil.example"}).status_code == 400
    assert (
        anyone.call("get", "/api/v1/scans", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    )
    assert anyone.call("get", "/api/v1/scans", headers={"Host": "[::1]:8000"}).status_code == 200
    assert anyone.call("get", "/api/v1/health", headers={"Host": "10.0.0.7"}).status_code == 200


def test_allowed_hosts_setting_names_the_hosts(tmp_path, brightness_model_dir):
    app = make_app(tmp_path, allowed_hosts="scan.example")
    try:
        host = {"Host": "scan.example:443"}
        assert Client(app).call("get", "/api/v1/scans", headers=host).status_code == 200
        assert Client(app).call("get", "/api/v1/scans").status_code == 400  # localhost now
    finally:
        app.extensions["deepfakescan"].close()


def test_cross_origin_cookie_post_is_refused(app, keys):
    _, key = keys.create("editor")
    page = sign_in(app, key)
    refused = page.upload(headers=OTHER_SITE)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    no_fetch_metadata = {"Origin": "https://evil.example"}  # an older browser
    assert page.upload(headers=no_fetch_metadata).status_code == 403
    scan = page.upload(headers=SAME_SITE).get_json()
    assert page.call("delete", scan["url"], headers=OTHER_SITE).status_code == 403
    assert page.call("get", "/api/v1/scans").get_json()["total"] == 1
    # a Bearer key is not sent by a browser on its own: no CSRF to fear
    assert Client(app, key).upload(headers=OTHER_SITE).status_code == 202


def test_another_sites_page_cannot_post_scans_to_an_open_local_server(app):
    anyone = Client(app)
    assert anyone.upload(headers=OTHER_SITE).status_code == 403
    assert anyone.upload(headers={"Origin": "null"}).status_code == 403  # sandboxed frame
    assert anyone.upload(headers=SAME_SITE).status_code == 202
    assert anyone.upload().status_code == 202  # curl: no browser, no CSRF


def test_cors_is_off_unless_origins_are_configured(tmp_path, app, keys):
    _, key = keys.create("bot")
    origin = {"Origin": "https://newsroom.example"}
    response = Client(app, key).call("get", "/api/v1/scans", headers=origin)
    assert "Access-Control-Allow-Origin" not in response.headers
    other = make_app(tmp_path / "cors", cors_origins="https://newsroom.example")
    try:
        KeyRing(other.extensions["deepfakescan"].store).create("x")
        preflight = Client(other).call("options", "/api/v1/scans", headers=origin)
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://newsroom.example"
        assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
        assert "Access-Control-Allow-Credentials" not in preflight.headers
        evil = Client(other).call("options", "/api/v1/scans", headers=OTHER_SITE)
        assert "Access-Control-Allow-Origin" not in evil.headers
    finally:
        other.extensions["deepfakescan"].close()


def test_api_json_artifacts_and_pages_are_never_cached_and_carry_isolation_headers(app):
    anyone = Client(app)
    scan = anyone.upload(make_jpeg(320, 240), query="?wait=60").get_json()
    for url in ("/api/v1/scans", scan["url"], scan["artifacts"][0]["url"], "/"):
        headers = anyone.call("get", url).headers
        assert headers["Cache-Control"] == "no-store", url
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert headers["Cross-Origin-Resource-Policy"] == "same-origin"
        assert "camera=()" in headers["Permissions-Policy"]
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert "Retry-After" not in headers
    assert "no-store" not in anyone.call("get", "/static/app.css").headers.get("Cache-Control", "")


# -------------------------------------------------------------------------------- limits


def test_an_unreadable_upload_rate_names_its_variable(tmp_path):
    with pytest.raises(ValueError, match="DEEPFAKESCAN_UPLOAD_RATE"):
        make_app(tmp_path, upload_rate="lots", max_queued=1)


def test_uploads_over_the_rate_get_429_with_retry_after_per_key(tmp_path, brightness_model_dir):
    app = make_app(tmp_path, upload_rate="2/minute")
    try:
        keys = KeyRing(app.extensions["deepfakescan"].store)
        alice, bob = Client(app, keys.create("a")[1]), Client(app, keys.create("b")[1])
        assert [alice.upload().status_code for _ in range(2)] == [202, 202]
        refused = alice.upload()
        assert refused.status_code == 429
        assert refused.get_json()["error"]["code"] == "rate_limited"
        assert "DEEPFAKESCAN_UPLOAD_RATE" in refused.get_json()["error"]["message"]
        assert 0 < int(refused.headers["Retry-After"]) <= 60
        assert alice.call("post", "/predict", data={}).status_code == 429  # shared by /predict
        assert bob.upload().status_code == 202  # another key counts on its own
    finally:
        app.extensions["deepfakescan"].close()


def test_upload_bytes_per_hour_are_limited(tmp_path, brightness_model_dir):
    app = make_app(tmp_path, upload_bytes_per_hour=5000)
    try:
        anyone = Client(app)
        assert anyone.upload(solid_jpeg(200)).status_code == 202  # about 1 kB
        refused = anyone.upload(make_jpeg(640, 480))  # about 10 kB
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        assert "BYTES_PER_HOUR" in refused.get_json()["error"]["message"]
    finally:
        app.extensions["deepfakescan"].close()


def test_a_full_queue_refuses_uploads_with_429_and_retry_after(tmp_path, brightness_model_dir):
    app = make_app(tmp_path, max_queued=1)
    try:
        store = app.extensions["deepfakescan"].store
        store.create("f" * 32, source_name="waiting.jpg", media_type="image")  # stays queued
        refused = Client(app).upload()
        assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "busy"
        assert int(refused.headers["Retry-After"]) > 0
        assert list(app.extensions["deepfakescan"].upload_dir.iterdir()) == []  # never read
    finally:
        app.extensions["deepfakescan"].close()


# --------------------------------------------------------------------------- honest errors


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"\xff\xd8\xff\xe0" + bytes(200), "broken.jpg"),  # Pillow names its file object
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(500), "noise.mp3"),  # PyAV names the path
        (b"fLaC" + bytes(500), "noise.flac"),  # fails in the scan, stored and served later
        ("video-head", "clip.mp4"),
    ],
)
def test_error_bodies_contain_no_filesystem_path(app, data, name):
    if data == "video-head":
        data = make_video()[:200]
    anyone = Client(app)
    response = anyone.upload(data, name=name, query="?wait=60")
    assert response.status_code == 422
    data_dir = str(app.config["SETTINGS"].data_path)
    for body in (response.get_data(as_text=True), anyone.call("get", "/api/v1/scans").data):
        text = body if isinstance(body, str) else body.decode()
        assert data_dir not in text and "/uploads/" not in text and "name='/" not in text
    assert name in response.get_json()["error"]["message"]


def test_declared_body_over_the_limit_is_413_json_before_it_is_read(app):
    class Unread(io.BytesIO):
        def read(self, *a):
            raise AssertionError("the body was read")

        readline = readinto = read

    response = app.test_client().post(
        "/api/v1/scans",
        input_stream=Unread(),
        headers={"Content-Type": "multipart/form-data; boundary=x"},
        environ_overrides={"CONTENT_LENGTH": str(10 * 1024**3)},
    )
    assert response.status_code == 413 and response.is_json
    assert "DEEPFAKESCAN_MAX_BYTES" in response.get_json()["error"]["message"]


# ----------------------------------------------------------------------- in a real browser

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def served(request, tmp_path, brightness_model_dir):
    """The app on waitress (with one key made when parametrised ``True``): the server, its
    port, the key, and the (method, path, status) of every request that reached the app."""
    import os
    import threading

    from waitress import create_server

    if not os.path.exists(CHROMIUM):
        pytest.skip("/usr/bin/chromium is missing (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    app = make_app(tmp_path)
    key = None
    if getattr(request, "param", False):
        _, key = KeyRing(app.extensions["deepfakescan"].store).create("editor")
    answers = []

    def recording(environ, start_response, wsgi_app=app.wsgi_app):
        def start(status, headers, *rest):
            answers.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], int(status[:3])))
            return start_response(status, headers, *rest)

        return wsgi_app(environ, start)

    app.wsgi_app = recording
    srv = create_server(app, host="127.0.0.1", port=0, threads=4)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            srv.asyncore.loop(timeout=0.05, map=srv._map, count=1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield srv.effective_port, key, answers
    stop.set()
    thread.join(5)
    srv.close()
    srv.task_dispatcher.shutdown()
    app.extensions["deepfakescan"].close()


FOREIGN_POST = """async (url) => {
    const body = new FormData();
    body.append("file", new Blob([new Uint8Array([255, 216, 255])]), "x.jpg");
    const options = {method: "POST", body, mode: "no-cors", credentials: "include"};
    await fetch(url, options).catch(() => null);  // CORP hides the answer from that page
}"""


def browse(port: int, key: str | None, photo) -> None:
    """Upload ``photo`` on the page (signing in first with ``key``), then post a scan from
    another origin: the same server under the name localhost instead of 127.0.0.1."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_context(bypass_csp=True).new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        if key is not None:
            page.fill("#key-input", key)
            page.click("button[type=submit]")
        page.set_input_files("#file-input", str(photo))
        page.locator("#result article").wait_for(timeout=60_000)
        page.goto(f"http://localhost:{port}/api/v1/health")
        page.evaluate(FOREIGN_POST, f"http://127.0.0.1:{port}/api/v1/scans")
        browser.close()


@pytest.mark.slow
@pytest.mark.parametrize("served", [True], indirect=True)
def test_in_a_browser_the_page_signs_in_and_uploads_and_the_cookie_stays_home(served, tmp_path):
    port, key, answers = served
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(make_jpeg(320, 240))
    browse(port, key, photo)
    scans = [s for m, path, s in answers if (m, path) == ("POST", "/api/v1/scans")]
    assert scans == [202, 401]  # the page's upload; the other origin's post has no cookie


@pytest.mark.slow
@pytest.mark.parametrize("served", [False], indirect=True)
def test_in_a_browser_another_origins_page_cannot_post_to_an_open_server(served, tmp_path):
    port, _, answers = served
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(make_jpeg(320, 240))
    browse(port, None, photo)
    scans = [s for m, path, s in answers if (m, path) == ("POST", "/api/v1/scans")]
    assert scans == [202, 403]  # the page's own upload passes the Origin check; the other not

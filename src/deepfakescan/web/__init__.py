"""Web app and REST API (Flask app factory, as in the flaskr tutorial).

Flask is imported inside ``create_app``: the CLI imports ``web.serve`` to register ``serve``,
and ``deepfakescan scan`` should not pay for loading Flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

MiB = 1024 * 1024
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline';"
    " script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none';"
    " form-action 'self'"
)


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: settings, the scan service (store + workers), blueprints, error handlers.

    ``test_config`` may hold ``SETTINGS`` (a ``Settings``), ``SCAN_FN`` (stands in for
    ``pipeline.scan``), ``START_WORKERS`` (False to leave jobs queued) and any Flask key.
    The scan service is created once per app (``app.extensions["deepfakescan"]``; call its
    ``close()`` at shutdown); model sessions are cached per process by the bundle loader.
    """
    from flask import Flask

    from ..config import Settings
    from ..jobs import ScanService
    from . import api, ui
    from .errors import register_error_handlers

    app = Flask(__name__)
    test_config = dict(test_config or {})
    settings = test_config.pop("SETTINGS", None) or Settings.from_env()
    app.config.from_mapping(
        SETTINGS=settings,
        # the multipart envelope adds a little to the file; the file itself is checked exactly
        MAX_CONTENT_LENGTH=settings.max_bytes + MiB,
        START_WORKERS=True,
        JSON_SORT_KEYS=False,
    )
    app.config.update(test_config)
    app.json.sort_keys = False

    service = ScanService(settings, scan_fn=app.config.get("SCAN_FN"))
    if app.config["START_WORKERS"]:
        service.start()
    app.extensions["deepfakescan"] = service

    @app.after_request
    def security_headers(response):
        # everything the page needs comes from this server: no CDN, no inline script
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    register_error_handlers(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(api.legacy)
    app.register_blueprint(ui.bp)
    return app

"""Web app and REST API (Flask app factory, as in the flaskr tutorial).

Flask is imported inside ``create_app``: the CLI imports ``web.serve`` to register ``serve``,
and ``deepfakescan scan`` should not pay for loading Flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

MiB = 1024 * 1024


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: settings, the scan service (store + workers), access checks and rate
    limits, blueprints, error handlers.

    ``test_config`` may hold ``SETTINGS`` (a ``Settings``), ``SCAN_FN`` (stands in for
    ``pipeline.scan``), ``START_WORKERS`` (False to leave jobs queued) and any Flask key.
    The scan service is created once per app (``app.extensions["deepfakescan"]``; call its
    ``close()`` at shutdown); model sessions are cached per process by the bundle loader.
    """
    from flask import Flask

    from ..config import Settings
    from ..jobs import KeyRing, ScanService
    from . import access, api, ui
    from .errors import register_error_handlers
    from .limits import check_limits, init_lanes, init_limits

    app = Flask(__name__)
    test_config = dict(test_config or {})
    settings = test_config.pop("SETTINGS", None) or Settings.from_env()
    check_limits(settings)  # before any thread starts: a bad rate stops here
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

    # before the limiter: its key is the caller that access identifies, and its headers are
    # added before access's after-request hook sees the response
    access.init_app(app, settings, KeyRing(service.store))
    init_lanes(app, settings)  # after access: a caller refused there takes no lane
    register_error_handlers(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(api.legacy)
    app.register_blueprint(ui.bp)
    init_limits(app, settings)
    return app

"""Upload rate and volume limits per API key (or per client address without keys).

Flask-Limiter counts in memory in the embedded mode, and in Redis when a broker is configured,
so that every web node shares one count per key. Two limits, both shared by ``POST
/api/v1/scans`` and ``POST /predict``: uploads per period (``DEEPFAKESCAN_UPLOAD_RATE``) and
declared bytes per hour (``DEEPFAKESCAN_UPLOAD_BYTES_PER_HOUR``). Over either: 429 with
``Retry-After`` and the usual JSON error. The queue cap is the scan service's (``Busy``).

A limiter is made per app (not at import), so each app, and each test, counts on its own.

Upload lanes: an upload holds its HTTP thread while its body streams in and while it waits
for its scan (``?wait=``, ``/predict``), so uploads at once are capped below the server's
threads (``upload_lanes``); one more gets 429 at once, before its body is read, and health,
status polls and the page keep the reserved threads whatever the uploads do.
"""

from __future__ import annotations

import threading

from flask import Flask, g, request

from ..config import Settings
from ..errors import Busy

UPLOAD_ENDPOINTS = ("api.create_scan", "legacy.predict")
STORAGE_TIMEOUT_S = 2.0
"""A rate-limit store that does not answer in this time is skipped, not waited for."""
LANE_RETRY_AFTER_S = 10
"""What an upload refused for want of a free lane is told to wait."""


def upload_lanes(http_threads: int) -> int:
    """Uploads served at once: every HTTP thread but a reserve of a quarter (at least 2)."""
    return max(1, http_threads - max(2, http_threads // 4))


def init_lanes(app: Flask, settings: Settings) -> None:
    """Give each upload request a lane for its whole life, or refuse it with 429."""
    lanes = upload_lanes(settings.http_threads)
    free = threading.BoundedSemaphore(lanes)

    def take_lane() -> None:
        if request.endpoint not in UPLOAD_ENDPOINTS:
            return
        if not free.acquire(blocking=False):
            raise Busy(
                f"{lanes} uploads are being received or waited on, the most this server takes"
                " at once (DEEPFAKESCAN_HTTP_THREADS): try again shortly",
                retry_after_s=LANE_RETRY_AFTER_S,
            )
        g.upload_lane = True

    def give_lane(_exc: BaseException | None) -> None:
        if g.pop("upload_lane", False):
            free.release()

    app.before_request(take_lane)
    app.teardown_request(give_lane)


def rate_key() -> str:
    """The API key's id when there is one, else the client's address."""
    caller = g.get("principal")
    if caller is not None and caller.key_id is not None:
        return f"key:{caller.key_id}"
    return f"ip:{request.remote_addr}"


def storage_uri(settings: Settings) -> str:
    """Redis (the broker) when scaled out, so every node counts together; memory otherwise."""
    broker = settings.broker_url or ""
    return broker if broker.startswith(("redis://", "rediss://")) else "memory://"


def check_limits(settings: Settings) -> None:
    """Raise ``ValueError`` naming the variable when the upload rate cannot be parsed."""
    from limits import parse_many

    try:
        parse_many(settings.upload_rate)
    except ValueError as e:
        raise ValueError(
            f"DEEPFAKESCAN_UPLOAD_RATE={settings.upload_rate!r} is not a rate such as"
            " '60/minute' or '10/minute;500/day'"
        ) from e


def init_limits(app: Flask, settings: Settings):
    """Attach a limiter to ``app`` and wrap the upload views with both limits (``settings``
    passed ``check_limits`` already)."""
    from flask_limiter import Limiter

    uri = storage_uri(settings)
    options = {}
    if uri != "memory://":
        options = {"socket_timeout": STORAGE_TIMEOUT_S, "socket_connect_timeout": STORAGE_TIMEOUT_S}
    limiter = Limiter(
        key_func=rate_key,
        app=app,
        storage_uri=uri,
        storage_options=options,
        headers_enabled=True,
        key_prefix="deepfakescan",
        swallow_errors=True,  # Redis away: uploads are not refused for want of a counter
    )

    def upload_cost() -> int:
        declared = request.content_length
        return settings.max_bytes if declared is None else max(1, declared)

    per_period = limiter.shared_limit(
        settings.upload_rate,
        scope="uploads",
        error_message=f"too many uploads: at most {settings.upload_rate}"
        " (DEEPFAKESCAN_UPLOAD_RATE); try again after Retry-After seconds",
    )
    volume = limiter.shared_limit(
        f"{settings.upload_bytes_per_hour}/hour",
        scope="upload-bytes",
        cost=upload_cost,
        error_message=f"too many bytes uploaded: at most {settings.upload_bytes_per_hour} an"
        " hour (DEEPFAKESCAN_UPLOAD_BYTES_PER_HOUR); try again after Retry-After seconds",
    )
    for endpoint in UPLOAD_ENDPOINTS:
        app.view_functions[endpoint] = volume(per_period(app.view_functions[endpoint]))
    return limiter

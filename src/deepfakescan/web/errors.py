"""Every error leaves the server as JSON ``{"error": {"code", "message"}}`` with its status.

Never an HTML error page and never a stack trace: a newsroom script parsing our answers, or the
page showing them inline, gets the same shape for a 404 route, a 413 body, a corrupt file or a
bug. Domain errors carry their own status (``deepfakescan.errors``); Werkzeug's HTTP errors are
mapped to short codes; anything else is logged with its traceback and answered as a bare 500.
No message names a server path (``without_paths``): a decoder's or loader's words may.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..errors import BadInput, Busy, DeepfakescanError, without_paths

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_input",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media",
    429: "rate_limited",
}
AUTHENTICATE = 'Bearer realm="deepfakescan"'


class Unauthorized(DeepfakescanError):
    """No API key, or one that is unknown or revoked (keys are on)."""

    status = 401
    code = "unauthorized"


class Forbidden(DeepfakescanError):
    """A state-changing request sent by another site's page (CSRF), refused."""

    status = 403
    code = "forbidden"


class BadHost(BadInput):
    """A ``Host`` header this server does not answer to (DNS rebinding)."""

    code = "bad_host"


def error_response(status: int, code: str, message: str):
    """The one error shape, used by the handlers and by views that answer a stored failure."""
    return jsonify({"error": {"code": code, "message": message}}), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DeepfakescanError)
    def domain_error(e: DeepfakescanError):
        response, status = error_response(e.status, e.code, without_paths(e.message))
        if isinstance(e, Busy):
            response.headers["Retry-After"] = str(max(1, e.retry_after_s))
        if isinstance(e, Unauthorized):
            response.headers["WWW-Authenticate"] = AUTHENTICATE
        return response, status

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(e: RequestEntityTooLarge):
        limit = current_app.config["SETTINGS"].max_bytes
        return error_response(
            413,
            "too_large",
            f"the upload is over the limit of {limit} bytes (DEEPFAKESCAN_MAX_BYTES)",
        )

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        status = e.code or 500
        code = HTTP_CODES.get(status) or (e.name or "error").lower().replace(" ", "_")
        response, status = error_response(status, code, e.description or e.name)
        if status == 405 and getattr(e, "valid_methods", None):
            response.headers["Allow"] = ", ".join(e.valid_methods)
        return response, status

    @app.errorhandler(Exception)
    def unexpected(e: Exception):
        log.exception("unhandled error")
        return error_response(
            500, "internal_error", "something went wrong on the server; the log has the details"
        )

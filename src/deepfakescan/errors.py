"""Typed errors, each carrying the HTTP status the web layer will answer with.

Errors are raised at the edge of the domain (media/, detectors/) with a message a user can act
on; the CLI maps every one of them to exit code 2 and the web layer to
``{"error": {"code", "message"}}`` with ``status``. Nothing below the web layer formats HTTP.
"""

from __future__ import annotations

import re


class DeepfakescanError(Exception):
    """Base class: a failure we expected and can explain to the user."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class BadInput(DeepfakescanError):
    """The request itself is wrong: no file, a bad parameter, a path that does not exist."""

    status = 400
    code = "bad_input"


class EmptyInput(BadInput):
    """Zero bytes: nothing to analyse."""

    code = "empty_input"


class TooLarge(DeepfakescanError):
    """Over a hard limit (bytes, still-image pixels); refused before any pixel is decoded."""

    status = 413
    code = "too_large"


class UnsupportedMedia(DeepfakescanError):
    """The bytes are not an image, audio or video format we decode (whatever the name says)."""

    status = 415
    code = "unsupported_media"


class CorruptMedia(DeepfakescanError):
    """The format was recognised but the content is truncated, damaged or undecodable."""

    status = 422
    code = "corrupt_media"


class ModelMissing(DeepfakescanError):
    """No model is installed for the task, or its bundle is invalid: we refuse to guess a score."""

    status = 503
    code = "model_missing"


class ScanCancelled(DeepfakescanError):
    """The caller's ``cancel()`` hook asked the scan to stop."""

    status = 409
    code = "cancelled"


class StoreUnavailable(DeepfakescanError):
    """The job store's database cannot be reached (server down, network cut): try again later."""

    status = 503
    code = "store_unavailable"


class Busy(DeepfakescanError):
    """Too much at once: the scan queue is full, or a client is over its upload rate."""

    status = 429
    code = "busy"

    def __init__(self, message: str, *, retry_after_s: int = 30) -> None:
        super().__init__(message)
        self.retry_after_s = int(retry_after_s)
        """When to try again, in seconds (the web layer's ``Retry-After``)."""


_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/\\-])(?:/|[A-Za-z]:\\)(?:[\w.@+~-]+[/\\])*[\w.@+~-]+")
_FILE_OBJECT = re.compile(r"<_?io\.\w+ name=(?:'[^']*'|\"[^\"]*\"|\d+)>")
"""Pillow names the file object it was given: ``<_io.BufferedReader name='/srv/...'>``."""


def without_paths(message: str, name: str = "the file") -> str:
    """``message`` with every absolute path in it replaced by ``name``.

    Decoders and loaders name the file they were given (``Invalid data found when processing
    input: '/srv/.../uploads/0fc5...'``): a client must learn what was wrong with its file, not
    where the server keeps it. Used wherever an error leaves for a client (the web layer, the
    stored outcome of a scan).
    """
    message = _FILE_OBJECT.sub(lambda _: name, message)
    return _ABSOLUTE_PATH.sub(lambda _: name, message)

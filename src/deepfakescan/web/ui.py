"""The web page: upload, progress, result cards and history, rendered on the server.

The HTML works without JavaScript for reading (history is rendered here); ``static/app.js``
adds drag and drop, upload and scan progress and the result cards, all from the REST API.
With API keys on, the page asks for a key first (``signin``) and then shows the scans of that
key only; its requests to the API carry the session cookie.
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from ..media.sniff import ACCEPTED
from .access import SESSION_KEY, keyring, principal
from .api import get_record_or_404, get_service, scan_summary

bp = Blueprint("ui", __name__)

HISTORY_ROWS = 20
MAX_KEY_CHARS = 200


def human_size(n: int) -> str:
    """Bytes as people say them (the limit shown on the page): 500 MB, 195 KB."""
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= size:
            return (
                f"{n / size:.0f} {unit}"
                if n % size == 0 or n >= 10 * size
                else f"{n / size:.1f} {unit}"
            )
    return f"{n} bytes"


def _page_context() -> dict:
    settings = current_app.config["SETTINGS"]
    scope = principal().scope
    records, total = get_service().store.list(limit=HISTORY_ROWS, owner=scope)
    return {
        "max_bytes": settings.max_bytes,
        "max_size": human_size(settings.max_bytes),
        "accepted": ACCEPTED,
        "history": [scan_summary(r) for r in records],
        "history_total": total,
    }


def _signin_page(error: str | None = None, status: int = 200):
    return render_template("signin.html", error=error), status


@bp.get("/")
def index():
    if principal() is None:
        return _signin_page()
    return render_template("index.html", scan_id=None, **_page_context())


@bp.get("/scans/<scan_id>")
def scan_page(scan_id: str):
    if principal() is None:
        return _signin_page()
    get_record_or_404(scan_id)
    return render_template("index.html", scan_id=scan_id, **_page_context())


@bp.post("/signin")
def signin():
    """Exchange an API key for the page's session cookie (it holds the key's id, not the key)."""
    if not current_app.config.get("SECRET_KEY"):
        return _signin_page("Signing in needs DEEPFAKESCAN_SECRET_KEY on the server.", 503)
    key = keyring().verify((request.form.get("key") or "").strip()[:MAX_KEY_CHARS])
    if key is None:
        return _signin_page("That key is not valid, or it has been revoked.", 401)
    session.clear()
    session[SESSION_KEY] = key.id
    session.permanent = True
    return redirect(url_for("ui.index"), 303)


@bp.post("/signout")
def signout():
    if current_app.config.get("SECRET_KEY"):
        session.clear()
    return redirect(url_for("ui.index"), 303)

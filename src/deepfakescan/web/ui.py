"""The web page: upload, progress, result cards and history, rendered on the server.

The HTML works without JavaScript for reading (history is rendered here); ``static/app.js``
adds drag and drop, upload and scan progress and the result cards, all from the REST API.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from ..media.sniff import ACCEPTED
from .api import get_record_or_404, get_service, scan_summary

bp = Blueprint("ui", __name__)

HISTORY_ROWS = 20


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
    records, total = get_service().store.list(limit=HISTORY_ROWS)
    return {
        "max_bytes": settings.max_bytes,
        "max_size": human_size(settings.max_bytes),
        "accepted": ACCEPTED,
        "history": [scan_summary(r) for r in records],
        "history_total": total,
    }


@bp.get("/")
def index():
    return render_template("index.html", scan_id=None, **_page_context())


@bp.get("/scans/<scan_id>")
def scan_page(scan_id: str):
    get_record_or_404(scan_id)
    return render_template("index.html", scan_id=scan_id, **_page_context())

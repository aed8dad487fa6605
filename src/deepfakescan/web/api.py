"""REST API under ``/api/v1`` and the prototype's ``POST /predict``.

Views are thin: parse the request, call the ``ScanService`` held by the app, shape JSON. Every
response shape is declared in ``openapi.py``; every error goes through ``errors.py``. Who may
call them is settled before (``access.py``); here a caller only sees the scans it may see
(another key's scan is an unknown scan: 404).
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for

from .. import __version__
from ..errors import BadInput, DeepfakescanError
from ..jobs import ScanService
from ..jobs.store import ScanRecord
from .access import caller
from .errors import error_response
from .intake import receive
from .openapi import MAX_WAIT_S, build_openapi

bp = Blueprint("api", __name__, url_prefix="/api/v1")
legacy = Blueprint("legacy", __name__)

PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def get_service() -> ScanService:
    return current_app.extensions["deepfakescan"]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def scan_summary(record: ScanRecord) -> dict:
    """The history row of a scan (no report): what a list or a badge needs."""
    error = None
    if record.error_code is not None:
        error = {"code": record.error_code, "message": record.error_message or ""}
    return {
        "id": record.id,
        "url": url_for("api.get_scan", scan_id=record.id),
        "page_url": url_for("ui.scan_page", scan_id=record.id),
        "status": record.status,
        "progress": round(float(record.progress), 4),
        "stage": record.stage,
        "source_name": record.source_name,
        "media_type": record.media_type,
        "verdict": record.verdict,
        "fake_probability": record.fake_probability,
        "created_at": _iso(record.created_at),
        "started_at": _iso(record.started_at),
        "finished_at": _iso(record.finished_at),
        "error": error,
    }


def scan_detail(record: ScanRecord) -> dict:
    """A scan with its report and links to the artifacts still stored."""
    out = scan_summary(record)
    out["report"] = record.report
    out["artifacts"] = [
        dict(a, url=url_for("api.get_artifact", scan_id=record.id, name=a["name"]))
        for a in record.artifacts
    ]
    return out


def _query_number(name: str, default: float, low: float, high: float, *, integer: bool) -> float:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise BadInput(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise BadInput(f"{name} must be between {low:g} and {high:g}, not {raw}")
    return value


def _upload(kind_field: str) -> ScanRecord:
    """Stream the request's file into its upload file and queue it (``intake.py``)."""
    owner = caller().key_id
    service = get_service()
    upload, fields = receive(service)
    with upload:  # a refusal below removes the file
        kind = (fields.get(kind_field) or "").strip().lower() or None
        return service.submit_file(upload, kind=kind, owner=owner)


def _failed(record: ScanRecord):
    return error_response(
        record.error_status or 500,
        record.error_code or "internal_error",
        record.error_message or "",
    )


@bp.post("/scans")
def create_scan():
    wait = _query_number("wait", 0.0, 0.0, MAX_WAIT_S, integer=False)
    wait = min(wait, get_service().settings.max_wait_seconds)  # a thread is held meanwhile
    record = _upload("kind")
    location = url_for("api.get_scan", scan_id=record.id)
    if wait > 0:
        record = get_service().wait(record.id, wait) or record
        if record.status == "failed":
            return _failed(record)
        if record.finished:
            return jsonify(scan_detail(record)), 200, {"Location": location}
    return jsonify(scan_detail(record)), 202, {"Location": location}


@bp.get("/scans")
def list_scans():
    limit = int(_query_number("limit", PAGE_SIZE, 1, MAX_PAGE_SIZE, integer=True))
    offset = int(_query_number("offset", 0, 0, 2**31, integer=True))
    scope = caller().scope
    records, total = get_service().store.list(limit=limit, offset=offset, owner=scope)
    nxt = None
    if offset + limit < total:
        nxt = url_for("api.list_scans", limit=limit, offset=offset + limit)
    return jsonify(
        {
            "items": [scan_summary(r) for r in records],
            "total": total,
            "limit": limit,
            "offset": offset,
            "next": nxt,
        }
    )


class NotFound(DeepfakescanError):
    """An unknown scan or artifact (the web layer's own error; the domain has no 404)."""

    status = 404
    code = "not_found"


def get_record_or_404(scan_id: str) -> ScanRecord:
    """The scan, if it exists and this caller may see it: another key's scan is unknown."""
    record = get_service().store.get(scan_id)
    if record is None or not caller().can_see(record.owner):
        raise NotFound(f"no scan with id {scan_id!r}")
    return record


@bp.get("/scans/<scan_id>")
def get_scan(scan_id: str):
    return jsonify(scan_detail(get_record_or_404(scan_id)))


@bp.delete("/scans/<scan_id>")
def delete_scan(scan_id: str):
    get_record_or_404(scan_id)
    record, deleted = get_service().cancel_or_delete(scan_id)
    if record is not None:
        return jsonify(scan_detail(record))
    if deleted:
        return "", 204
    raise NotFound(f"no scan with id {scan_id!r}")


@bp.get("/scans/<scan_id>/artifacts/<name>")
def get_artifact(scan_id: str, name: str):
    get_record_or_404(scan_id)
    artifact = get_service().store.artifact(scan_id, name)
    if artifact is None:
        raise NotFound(f"scan {scan_id} has no artifact {name!r} (or it has expired)")
    response = Response(artifact.data, mimetype=artifact.media_type)
    response.headers["Cache-Control"] = "no-store"  # a copy of someone's photo: never cached
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/models")
def list_models():
    from ..detectors.bundle import list_models as installed

    models = []
    for info in installed(get_service().settings):
        entry = info.to_dict()
        entry.pop("path", None)  # the server's file layout is not the client's business
        models.append(entry)
    return jsonify({"models": models})


@bp.get("/health")
def health():
    """200 when every configured part is up, else 503 naming the parts that are down."""
    from ..detectors.bundle import list_models as installed
    from ..jobs import health as parts

    service = get_service()
    state = parts.check(service)
    models = [m.name for m in installed(service.settings, verify_sha=False) if m.valid]
    body = {
        "status": "unavailable" if state.down else "ok",
        "version": __version__,
        "mode": "scaled" if service.distributed else "embedded",
        "workers": state.workers,
        "queued": state.queued,
        "running": state.running,
        "models": models,
        "parts": state.parts,
        "down": state.down,
    }
    return jsonify(body), 503 if state.down else 200


@bp.get("/openapi.json")
def openapi():
    return jsonify(build_openapi())


@bp.get("/docs")
def docs():
    return render_template("docs.html", spec=build_openapi())


@legacy.post("/predict")
def predict():
    """The prototype's contract: Real or Fake, with the probability of that label."""
    record = _upload("fileType")
    timeout_s = get_service().settings.max_wait_seconds
    record = get_service().wait(record.id, timeout_s) or record
    if record.status == "failed":
        return _failed(record)
    if record.status == "cancelled":
        return error_response(409, "cancelled", "the scan was cancelled")
    if not record.finished or record.report is None:
        return error_response(
            504,
            "timeout",
            f"the scan did not finish within {timeout_s:g} s (DEEPFAKESCAN_MAX_WAIT_SECONDS);"
            f" it goes on: GET {url_for('api.get_scan', scan_id=record.id)}",
        )
    report = record.report
    if (report.get("provenance") or {}).get("decided"):
        # the file declares itself AI-made: the report's verdict, with no model figure to give
        answer = {"prediction": "Fake", "confidence": None, "decided_by": "provenance"}
        return jsonify({**answer, "verdict": report["verdict"], "scan_id": record.id})
    probability, threshold = report["fake_probability"], report["threshold"]
    if probability is None or threshold is None:
        return error_response(422, "no_evidence", " ".join(report["reasons"]))
    fake = probability >= threshold
    return jsonify(
        {
            "prediction": "Fake" if fake else "Real",
            "confidence": round(probability if fake else 1.0 - probability, 6),
            "decided_by": "models",
            "verdict": report["verdict"],
            "scan_id": record.id,
        }
    )

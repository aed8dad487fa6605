"""The OpenAPI 3.1 document of the REST API, built in code beside the views it describes.

Why in code: its enums are the constants the code itself uses (``report``, ``jobs.store``,
``detectors.bundle``), the schemas here are the ones the tests validate every response against,
and a test checks that every route Flask knows under ``/api/v1`` (and ``/predict``) is described
here and nothing else is, so the document cannot drift from the code unnoticed. The report itself is
described by ``docs/report.schema.json`` (JSON Schema 2020-12), which the tests also apply.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..detectors.bundle import MODEL_SOURCES
from ..jobs.store import STATUSES
from ..report import ARTIFACT_KINDS, MEDIA_KINDS, SCHEMA_VERSION, VERDICTS

MAX_WAIT_S = 120
HEALTH_PARTS = ("database", "broker", "workers")

_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


_ERROR_TEXT = {
    400: "No file, or a bad parameter (unknown fileType, declared type not matching the content,"
    " a wait outside 0-120 s); bad_host: a Host header the server does not answer to"
    " (DEEPFAKESCAN_ALLOWED_HOSTS).",
    401: "API keys are on and the request has no valid key: send 'Authorization: Bearer KEY'"
    " (or sign in on the page). A revoked key is refused at once.",
    403: "A state-changing request sent by another site's page (cross-site form or script),"
    " refused; requests with a Bearer key are not affected.",
    404: "Unknown scan, artifact or route.",
    405: "Method not allowed on this route.",
    409: "The scan was cancelled while the request waited for it (POST /predict only).",
    413: "Over the byte limit (DEEPFAKESCAN_MAX_BYTES) or the image pixel limit"
    " (DEEPFAKESCAN_MAX_PIXELS).",
    415: "Not an image, audio or video format we decode (judged by content, not by name).",
    422: "The format was recognised but the file is damaged, or there was nothing to judge.",
    429: "Over the upload rate or volume of this key (or client address), the scan queue is"
    " full, or the server is receiving or waiting on as many uploads as it takes at once"
    " (DEEPFAKESCAN_UPLOAD_RATE, DEEPFAKESCAN_UPLOAD_BYTES_PER_HOUR, DEEPFAKESCAN_MAX_QUEUED,"
    " DEEPFAKESCAN_HTTP_THREADS): try again after the Retry-After header's seconds.",
    500: "Unexpected server error (no details are given; the server log has them).",
    503: "No model installed for this kind of media (model_missing), or the scan history's"
    " database cannot be reached (store_unavailable): try again later.",
    504: "The scan did not finish within DEEPFAKESCAN_MAX_WAIT_SECONDS (POST /predict only);"
    " it goes on, and the message names its URL.",
}

_SUMMARY_PROPS: dict[str, Any] = {
    "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    "url": {"type": "string", "description": "This scan's resource URL."},
    "status": {"type": "string", "enum": list(STATUSES)},
    "progress": {"type": "number", "minimum": 0, "maximum": 1},
    "stage": {"type": "string", "description": "What the scan is doing (sniff, decode, ...)."},
    "source_name": {"type": "string", "description": "The uploaded file's name (display only)."},
    "media_type": {"type": ["string", "null"], "enum": [*MEDIA_KINDS, None]},
    "verdict": {"type": ["string", "null"], "enum": [*VERDICTS, None]},
    "fake_probability": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    "created_at": {"type": "string", "format": "date-time"},
    "started_at": _NULLABLE_TIME,
    "finished_at": _NULLABLE_TIME,
    "error": {"anyOf": [_ref("ErrorBody"), {"type": "null"}]},
    "page_url": {"type": "string", "description": "The result page for people."},
}

SCHEMAS: dict[str, Any] = {
    "ErrorBody": {
        "type": "object",
        "additionalProperties": False,
        "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
    },
    "Error": {
        "type": "object",
        "additionalProperties": False,
        "required": ["error"],
        "properties": {"error": _ref("ErrorBody")},
    },
    "ArtifactLink": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "kind", "media_type", "url"],
        "properties": {
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": list(ARTIFACT_KINDS)},
            "media_type": {"type": "string"},
            "url": {"type": "string"},
        },
    },
    "ScanSummary": {
        "type": "object",
        "additionalProperties": False,
        "required": list(_SUMMARY_PROPS),
        "properties": _SUMMARY_PROPS,
    },
    "Scan": {
        "type": "object",
        "additionalProperties": False,
        "required": [*_SUMMARY_PROPS, "report", "artifacts"],
        "properties": {
            **_SUMMARY_PROPS,
            "report": {"anyOf": [_ref("Report"), {"type": "null"}]},
            "artifacts": {"type": "array", "items": _ref("ArtifactLink")},
        },
    },
    "ScanPage": {
        "type": "object",
        "additionalProperties": False,
        "required": ["items", "total", "limit", "offset", "next"],
        "properties": {
            "items": {"type": "array", "items": _ref("ScanSummary")},
            "total": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 1},
            "offset": {"type": "integer", "minimum": 0},
            "next": {"type": ["string", "null"], "description": "URL of the next page."},
        },
    },
    "Report": {
        "type": "object",
        "description": "Report.to_dict(): the JSON Schema is docs/report.schema.json"
        f" (schema_version {SCHEMA_VERSION}: verdict, calibrated fake_probability, threshold,"
        " uncertain_band, reasons, media, faces, segments, tracks, artifacts, ...; whole_image,"
        " the whole-image model's own score and verdict, only when that model ran; provenance,"
        " what the file declares about itself, always).",
        "required": [
            "schema_version",
            "verdict",
            "fake_probability",
            "reasons",
            "media",
            "provenance",
        ],
        "properties": {
            "provenance": {
                "type": "object",
                "description": "The file's own records (C2PA manifests, XMP/IPTC, EXIF, generator"
                " text chunks, container tags): items (source, field, value, verified, signer,"
                " claim_generator, actions, digital_source_type, ...), warnings, hint, decided"
                " (a record declaring AI generation set the verdict to fake, its reasons first)"
                " and model_verdict (the models' own; fake_probability stays theirs). items is"
                " empty when the file declares nothing, which counts for nothing.",
                "required": ["items", "warnings", "hint", "decided", "model_verdict"],
            },
            "whole_image": {
                "type": "object",
                "description": "The whole-image detector's fake_probability, verdict, threshold,"
                " uncertain_band, crops, artifact (an image's crop map) and frames (a video's"
                " per-frame scores); absent when that model did not run.",
                "required": ["fake_probability", "verdict", "threshold", "uncertain_band"],
            },
        },
    },
    "Prediction": {
        "type": "object",
        "additionalProperties": False,
        "required": ["prediction", "confidence", "decided_by", "verdict", "scan_id"],
        "properties": {
            "prediction": {"type": "string", "enum": ["Real", "Fake"]},
            "confidence": {
                "type": ["number", "null"],
                "minimum": 0,
                "maximum": 1,
                "description": "Calibrated probability of the predicted label; null when the"
                " file's own provenance record decided (no model figure applies).",
            },
            "decided_by": {
                "type": "string",
                "enum": ["models", "provenance"],
                "description": "What decided: the models' score against their threshold, or"
                " a provenance record declaring AI generation (see the report's provenance).",
            },
            "verdict": {"type": "string", "enum": list(VERDICTS)},
            "scan_id": {"type": "string"},
        },
    },
    "Model": {
        "type": "object",
        "required": ["name", "version", "task", "source", "valid", "problem"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": ["string", "null"]},
            "task": {"type": ["string", "null"]},
            "source": {"type": "string", "enum": list(MODEL_SOURCES)},
            "valid": {"type": "boolean"},
            "problem": {"type": ["string", "null"]},
        },
    },
    "ModelList": {
        "type": "object",
        "additionalProperties": False,
        "required": ["models"],
        "properties": {"models": {"type": "array", "items": _ref("Model")}},
    },
    "Health": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "status",
            "version",
            "mode",
            "workers",
            "queued",
            "running",
            "models",
            "parts",
            "down",
        ],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "version": {"type": "string"},
            "mode": {
                "type": "string",
                "enum": ["embedded", "scaled"],
                "description": "embedded: scans run on this process's threads; scaled: on"
                " Celery workers (DEEPFAKESCAN_BROKER_URL).",
            },
            "workers": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "Scans that can run at once: this process's scan threads, or"
                " the worker processes seen lately (null while the database is down).",
            },
            "queued": {"type": ["integer", "null"], "minimum": 0},
            "running": {"type": ["integer", "null"], "minimum": 0},
            "models": {"type": "array", "items": {"type": "string"}},
            "parts": {
                "type": "object",
                "description": "database, broker (when configured) and workers.",
                "additionalProperties": _ref("HealthPart"),
            },
            "down": {
                "type": "array",
                "items": {"type": "string", "enum": list(HEALTH_PARTS)},
                "description": "The parts that are down (empty when status is ok).",
            },
        },
    },
    "HealthPart": {
        "type": "object",
        "additionalProperties": False,
        "required": ["up", "detail"],
        "properties": {"up": {"type": "boolean"}, "detail": {"type": "string"}},
    },
}

_SCAN_ID = {
    "name": "scan_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The id returned by POST /api/v1/scans.",
}


def _upload(type_field: str, description: str) -> dict:
    """A multipart body: the file, and an optional declared media type checked against it."""
    declared = {"type": "string", "enum": list(MEDIA_KINDS), "description": description}
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        type_field: declared,
                    },
                }
            }
        },
    }


_UPLOAD = _upload("kind", "Expected media type, checked against the content.")

PATHS: dict[str, Any] = {
    "/api/v1/scans": {
        "post": {
            "operationId": "createScan",
            "summary": "Upload a file and queue its scan",
            "description": "Validates the upload (size, type sniffed from the content, image"
            " pixels) and queues the scan. Answers 202 with the scan; with ?wait=SECONDS"
            f" (at most {MAX_WAIT_S}; the server waits no longer than its"
            " DEEPFAKESCAN_MAX_WAIT_SECONDS, 60 by default) answers 200 with the report if it"
            " finishes in time, or the scan's error status if it fails.",
            "parameters": [
                {
                    "name": "wait",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S},
                }
            ],
            "requestBody": _UPLOAD,
            "responses": {
                "200": _json(_ref("Scan"), "Finished within ?wait (done or cancelled)."),
                "202": _json(_ref("Scan"), "Queued (or still running after ?wait)."),
                **_errors(400, 413, 415, 422, 500, 503),
            },
        },
        "get": {
            "operationId": "listScans",
            "summary": "History of scans, newest first",
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                },
                {
                    "name": "offset",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0, "default": 0},
                },
            ],
            "responses": {
                "200": _json(_ref("ScanPage"), "One page of history."),
                **_errors(400, 503),
            },
        },
    },
    "/api/v1/scans/{scan_id}": {
        "get": {
            "operationId": "getScan",
            "summary": "Status, progress and (when done) the report of one scan",
            "parameters": [_SCAN_ID],
            "responses": {"200": _json(_ref("Scan"), "The scan."), **_errors(404, 503)},
        },
        "delete": {
            "operationId": "deleteScan",
            "summary": "Cancel a queued or running scan, or delete a finished one",
            "description": "A queued or running scan is cancelled (200, kept in history as"
            " cancelled); a finished scan is deleted with its artifacts (204).",
            "parameters": [_SCAN_ID],
            "responses": {
                "200": _json(_ref("Scan"), "Cancelled."),
                "204": {"description": "Deleted."},
                **_errors(404, 503),
            },
        },
    },
    "/api/v1/scans/{scan_id}/artifacts/{name}": {
        "get": {
            "operationId": "getArtifact",
            "summary": "A heatmap, thumbnail or preview named in the scan's report",
            "parameters": [
                _SCAN_ID,
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "The artifact's bytes, with its media type.",
                    "content": {"image/*": {}, "application/octet-stream": {}},
                },
                **_errors(404, 503),
            },
        }
    },
    "/api/v1/models": {
        "get": {
            "operationId": "listModels",
            "summary": "Installed models and their cards",
            "responses": {"200": _json(_ref("ModelList"), "Every bundle the server sees.")},
        }
    },
    "/api/v1/health": {
        "get": {
            "operationId": "health",
            "summary": "Database, broker and workers up? Queue depth and loadable models",
            "description": "Answers within 100 ms, for load balancers: 200 when every"
            " configured part is up, 503 naming the parts that are down.",
            "responses": {
                "200": _json(_ref("Health"), "Every configured part is up."),
                "503": _json(_ref("Health"), "A part is down (see down and parts)."),
            },
        }
    },
    "/api/v1/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document.")},
        }
    },
    "/api/v1/docs": {
        "get": {
            "operationId": "docs",
            "summary": "This document as a readable page",
            "responses": {
                "200": {"description": "HTML page.", "content": {"text/html": {}}},
            },
        }
    },
    "/predict": {
        "post": {
            "operationId": "predict",
            "summary": "Drop-in for the original prototype: Real or Fake, synchronously",
            "description": "Scans the upload and waits for it (at most"
            " DEEPFAKESCAN_MAX_WAIT_SECONDS, then 504). prediction is Fake when the"
            " calibrated fake probability is at or above the model's threshold; confidence is"
            " the probability of that label; verdict adds the uncertain band. A file whose own"
            " provenance declares AI generation is Fake with decided_by provenance and no"
            " confidence. A file with nothing to judge (no face, no speech) answers 422"
            " rather than a guess.",
            "requestBody": _upload(
                "fileType",
                "The prototype's field: image, audio or video, checked against the content.",
            ),
            "responses": {
                "200": _json(_ref("Prediction"), "The prediction."),
                **_errors(400, 409, 413, 415, 422, 500, 503, 504),
            },
        }
    },
}


_PUBLIC_OPERATIONS = frozenset({"health"})
_UPLOAD_OPERATIONS = frozenset({"createScan", "predict"})
SECURITY_SCHEMES = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from `deepfakescan keys create`, needed once keys are on."
        " A key sees only its own scans (others' are 404); an admin key sees all.",
    },
    "pageSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "deepfakescan_session",
        "description": "The page's session after signing in with a key (same-site only).",
    },
}


def _with_access(paths: dict) -> dict:
    """Every operation but health with the answers of the access checks (``access.py``):
    400 for a bad Host, 401 without a key, 403 for a cross-site post, 429 over upload limits."""
    out: dict[str, Any] = {}
    for path, operations in paths.items():
        out[path] = {}
        for method, operation in operations.items():
            operation = dict(operation)
            name = operation["operationId"]
            if name in _PUBLIC_OPERATIONS:
                operation["security"] = []
            else:
                extra = [400, 401]
                extra += [403] if method in ("post", "delete") else []
                extra += [429] if name in _UPLOAD_OPERATIONS else []
                operation["responses"] = _errors(*extra) | operation["responses"]
            out[path][method] = operation
    return out


def build_openapi() -> dict:
    """The OpenAPI 3.1 document served at ``/api/v1/openapi.json``."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "deepfakescan API",
            "version": __version__,
            "description": "Offline deepfake detection for images, audio and video. Upload a"
            " file, follow its progress, read a calibrated verdict with its evidence. Errors"
            ' are always JSON: {"error": {"code", "message"}}.',
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": _with_access(PATHS),
        "security": [{"apiKey": []}, {"pageSession": []}, {}],
        "components": {
            "securitySchemes": SECURITY_SCHEMES,
            "schemas": SCHEMAS,
            "responses": {
                f"E{status}": _json(_ref("Error"), text) for status, text in _ERROR_TEXT.items()
            },
        },
    }

"""The OpenAPI document describes exactly the routes Flask serves, and every response fits it.

``check_response`` is shared with the API tests: each response they get is validated against
the operation's declared schema for its status, and any report inside against
docs/report.schema.json.
"""

from __future__ import annotations

import re

import jsonschema
import pytest
from markupsafe import escape

from deepfakescan.config import Settings
from deepfakescan.report import SCHEMA_VERSION
from deepfakescan.web import create_app
from deepfakescan.web.openapi import build_openapi

from .conftest import REPORT_SCHEMA, validate_report

SPEC = build_openapi()
DOCUMENTED_PREFIXES = ("/api/v1", "/predict")


def _template(rule: str) -> str:
    """Flask's ``/scans/<scan_id>`` as OpenAPI's ``/scans/{scan_id}``."""
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def check_response(app, response) -> None:
    """Fail unless ``response`` matches the document: a declared status and its JSON schema."""
    request = response.request
    rule, _ = app.url_map.bind("localhost").match(request.path, request.method, return_rule=True)
    operation = SPEC["paths"][_template(rule.rule)][request.method.lower()]
    declared = operation["responses"]
    status = str(response.status_code)
    assert status in declared, f"{request.method} {rule.rule} answered undeclared {status}"
    entry = declared[status]
    if "$ref" in entry:
        entry = SPEC["components"]["responses"][entry["$ref"].rsplit("/", 1)[-1]]
    content = entry.get("content", {})
    if "application/json" not in content:
        assert not response.is_json or response.status_code == 204
        return
    assert response.is_json, f"{request.method} {rule.rule} {status} is not JSON"
    schema = dict(content["application/json"]["schema"], components=SPEC["components"])
    body = response.get_json()
    jsonschema.Draft202012Validator(schema).validate(body)
    if isinstance(body, dict) and body.get("report") is not None:
        validate_report(body["report"])


@pytest.fixture
def bare_app(tmp_path):
    app = create_app(
        {"SETTINGS": Settings.from_env(data_dir=tmp_path / "data"), "START_WORKERS": False}
    )
    yield app
    app.extensions["deepfakescan"].close()


def test_every_api_route_is_documented_and_nothing_else(bare_app):
    served = {
        (_template(rule.rule), method.lower())
        for rule in bare_app.url_map.iter_rules()
        if rule.rule.startswith(DOCUMENTED_PREFIXES)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, ops in SPEC["paths"].items() for method in ops}
    assert served == documented


def test_every_reference_in_the_document_resolves():
    refs: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(SPEC)
    assert refs
    for ref in refs:
        node = SPEC
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
    for schema in SPEC["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_operation_ids_are_unique_and_every_operation_declares_errors_as_json():
    ids = [op["operationId"] for ops in SPEC["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for response in SPEC["components"]["responses"].values():
        assert response["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }


def test_openapi_json_is_served_and_matches_the_code(bare_app):
    response = bare_app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == SPEC
    check_response(bare_app, response)


def test_docs_page_lists_every_operation(bare_app):
    response = bare_app.test_client().get("/api/v1/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for path, ops in SPEC["paths"].items():
        assert path in page
        for op in ops.values():
            assert str(escape(op["summary"])) in page
    check_response(bare_app, response)


def test_the_documented_report_names_the_schema_version_and_the_whole_image_field():
    report = SPEC["components"]["schemas"]["Report"]
    assert f"schema_version {SCHEMA_VERSION}" in report["description"]
    whole = report["properties"]["whole_image"]
    published = REPORT_SCHEMA["$defs"]["whole_image"]
    assert set(whole["required"]) <= set(published["required"])
    assert "whole_image" not in report["required"]  # absent when the model did not run


def test_the_documented_report_always_carries_the_provenance_section():
    report = SPEC["components"]["schemas"]["Report"]
    documented = report["properties"]["provenance"]
    published = REPORT_SCHEMA["$defs"]["provenance"]
    assert documented["required"] == published["required"]
    assert "provenance" in report["required"] and "provenance" in REPORT_SCHEMA["required"]

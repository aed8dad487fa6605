"""The report's verdict rule and artifact names: the contract every interface relies on."""

from typing import get_args

import pytest

from deepfakescan.provenance.model import Source, Validation
from deepfakescan.report import (
    ARTIFACT_KINDS,
    MEDIA_KINDS,
    MODALITIES,
    SCHEMA_VERSION,
    VERDICTS,
    Artifact,
    FrameScore,
    MediaInfo,
    Report,
    WholeImage,
    verdict_for,
)

from .conftest import REPORT_SCHEMA, validate_report


@pytest.mark.parametrize(
    ("p", "verdict"),
    [
        (0.0, "real"),
        (0.39, "real"),
        (0.4, "uncertain"),
        (0.59, "uncertain"),
        (0.6, "fake"),
        (1.0, "fake"),
        (None, "uncertain"),
    ],
)
def test_verdict_uses_the_uncertain_band(p, verdict):
    assert verdict_for(p, (0.4, 0.6)) == verdict


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b.png", "", "UPPER.png", "x" * 80])
def test_artifact_names_cannot_become_paths(name):
    with pytest.raises(ValueError):
        Artifact(name=name, kind="heatmap", media_type="image/png")


def test_artifact_bytes_stay_out_of_the_json():
    report = Report(
        verdict="uncertain",
        fake_probability=None,
        threshold=None,
        uncertain_band=None,
        reasons=["No face was found."],
        media=MediaInfo(type="image", format="png", size_bytes=10, width=2, height=2),
    )
    report.add_artifact(Artifact("preview.jpg", "preview", "image/jpeg"), b"\xff\xd8")
    data = report.to_dict()
    validate_report(data)
    assert data["artifacts"] == [
        {"name": "preview.jpg", "kind": "preview", "media_type": "image/jpeg", "description": ""}
    ]
    assert "artifact_data" not in data


@pytest.mark.parametrize(
    ("where", "values"),
    [
        (("properties", "verdict"), VERDICTS),
        (("$defs", "face", "properties", "verdict"), VERDICTS),
        (("$defs", "track", "properties", "verdict"), VERDICTS),
        (("$defs", "whole_image", "properties", "verdict"), VERDICTS),
        (("$defs", "media", "properties", "type"), MEDIA_KINDS),
        (("$defs", "segment", "properties", "modality"), MODALITIES),
        (("$defs", "artifact", "properties", "kind"), ARTIFACT_KINDS),
        (("$defs", "provenance_record", "properties", "source"), get_args(Source)),
        (
            ("$defs", "provenance_record", "properties", "validation", "anyOf", 0),
            get_args(Validation),
        ),
        (("$defs", "provenance", "properties", "model_verdict", "anyOf", 0), VERDICTS),
    ],
)
def test_the_published_schema_lists_the_same_vocabulary_as_the_code(where, values):
    node = REPORT_SCHEMA
    for key in where:
        node = node[key]
    assert node["enum"] == list(values)


def _bare_report(**fields) -> Report:
    return Report(
        verdict="uncertain",
        fake_probability=None,
        threshold=None,
        uncertain_band=None,
        reasons=["No face was found."],
        media=MediaInfo(type="image", format="png", size_bytes=10, width=2, height=2),
        **fields,
    )


def test_the_published_schema_is_the_version_reports_carry():
    assert REPORT_SCHEMA["properties"]["schema_version"]["const"] == SCHEMA_VERSION == "1.1"
    assert REPORT_SCHEMA["$id"].endswith(f"report-{SCHEMA_VERSION}.json")


def test_without_the_whole_image_model_the_json_has_the_required_fields_only():
    """1.0's fields plus ``provenance``, which 1.1 reports always carry (empty here)."""
    data = _bare_report().to_dict()
    validate_report(data)
    assert "whole_image" not in data
    assert sorted(data) == sorted(REPORT_SCHEMA["required"])
    assert data["provenance"] == {
        "items": [],
        "warnings": [],
        "hint": None,
        "decided": False,
        "model_verdict": None,
    }


@pytest.mark.parametrize(
    ("whole", "expected"),
    [
        (
            WholeImage(0.6123456789, "fake", 0.5, (0.4, 0.6), 16, "whole-image.jpg"),
            {
                "fake_probability": 0.612346,
                "verdict": "fake",
                "threshold": 0.5,
                "uncertain_band": [0.4, 0.6],
                "crops": 16,
                "artifact": "whole-image.jpg",
                "frames": None,
            },
        ),
        (
            WholeImage(0.2, "real", 0.5, (0.4, 0.6), 4, frames=[FrameScore(0.5004, 0.2)]),
            {
                "fake_probability": 0.2,
                "verdict": "real",
                "threshold": 0.5,
                "uncertain_band": [0.4, 0.6],
                "crops": 4,
                "artifact": None,
                "frames": [{"time_s": 0.5, "fake_probability": 0.2}],
            },
        ),
    ],
    ids=["image", "video"],
)
def test_the_whole_image_score_is_a_field_of_the_json(whole, expected):
    data = _bare_report(whole_image=whole).to_dict()
    validate_report(data)
    assert data["whole_image"] == expected

"""The provenance verdict rule on stubbed inputs: an AI record decides, a camera only supports."""

from __future__ import annotations

import pytest

from deepfakescan.provenance import Judgement, Provenance, ProvenanceItem
from deepfakescan.provenance.verdict import decide, section
from deepfakescan.report import VERDICTS

from .conftest import validate_report

MODEL_REASONS = ("The face looks authentic: 12%.", "The whole-image detector looks authentic.")
AI = Judgement("fake", ("The PNG carries a ComfyUI prompt graph.",))
INVALID_AI = Judgement(
    "fake",
    (
        "The file's C2PA manifest declares it was created by a generative model, but its"
        " signature or hashes do not verify (the file changed after signing, or the manifest"
        " is forged).",
    ),
)
TRUSTED_CAMERA = Judgement(
    "real",
    (
        "The file's C2PA manifest, signed by “Cam” (on your trust list), declares a camera"
        " capture (supporting evidence only: it does not override the models).",
    ),
)
UNTRUSTED_CAMERA = Judgement(None, ("The file's C2PA manifest ... declares a camera capture;",))
NOTHING = Judgement(None, ())


@pytest.mark.parametrize("model_verdict", VERDICTS)
@pytest.mark.parametrize("judgement", [AI, INVALID_AI], ids=["record", "unverified-c2pa"])
def test_an_ai_record_makes_the_verdict_fake_with_its_reason_first(model_verdict, judgement):
    out = decide(model_verdict, MODEL_REASONS, judgement)
    assert out.verdict == "fake" and out.decided
    assert out.reasons[0] == judgement.reasons[0]
    assert out.reasons[-2:] == MODEL_REASONS  # the models' own sentences stay, after
    note = out.reasons[1]
    assert note.startswith("The verdict is fake because of what the file declares")


def test_the_note_says_what_the_models_concluded_alone():
    assert "found it authentic" in decide("real", MODEL_REASONS, AI).reasons[1]
    assert "reached no verdict" in decide("uncertain", ("No face was found.",), AI).reasons[1]
    assert "also found it manipulated" in decide("fake", MODEL_REASONS, AI).reasons[1]


@pytest.mark.parametrize("model_verdict", VERDICTS)
def test_a_trusted_camera_manifest_supports_but_never_overrides(model_verdict):
    out = decide(model_verdict, MODEL_REASONS, TRUSTED_CAMERA)
    assert out.verdict == model_verdict and not out.decided
    assert out.reasons == (*MODEL_REASONS, *TRUSTED_CAMERA.reasons)


@pytest.mark.parametrize("model_verdict", VERDICTS)
def test_an_uncounted_record_is_said_after_the_models(model_verdict):
    out = decide(model_verdict, MODEL_REASONS, UNTRUSTED_CAMERA)
    assert (out.verdict, out.decided) == (model_verdict, False)
    assert out.reasons == (*MODEL_REASONS, *UNTRUSTED_CAMERA.reasons)


@pytest.mark.parametrize("model_verdict", VERDICTS)
def test_no_record_changes_nothing(model_verdict):
    out = decide(model_verdict, MODEL_REASONS, NOTHING)
    assert out == (model_verdict, MODEL_REASONS, False)


def test_the_section_lists_every_record_and_keeps_the_models_verdict():
    item = ProvenanceItem(
        "c2pa",
        "active manifest",
        "Test Diffusion 1.0",
        verified=True,
        validation="untrusted",
        signer="Test Generator",
        claim_generator="Test Diffusion 1.0",
        actions=("c2pa.created",),
        digital_source_type="trainedAlgorithmicMedia",
        declares_ai=True,
    )
    found = Provenance(items=(item,), warnings=("XMP: could not be read",))
    judgement = Judgement("fake", ("...",))
    out = section(found, judgement, decide("real", MODEL_REASONS, judgement), "real")
    assert (out.hint, out.decided, out.model_verdict) == ("fake", True, "real")
    assert out.warnings == ["XMP: could not be read"]
    [record] = out.items
    assert (record.source, record.signer, record.actions) == (
        "c2pa",
        "Test Generator",
        ["c2pa.created"],
    )
    assert record.digital_source_type == "trainedAlgorithmicMedia" and record.verified


def test_the_section_fits_the_published_schema():
    from deepfakescan.report import MediaInfo, Report

    found = Provenance(items=(ProvenanceItem("png-text", "prompt", "{}", declares_ai=True),))
    decision = decide("uncertain", ("No face was found.",), AI)
    report = Report(
        verdict=decision.verdict,
        fake_probability=None,
        threshold=None,
        uncertain_band=None,
        reasons=list(decision.reasons),
        media=MediaInfo(type="image", format="png", size_bytes=10, width=2, height=2),
        provenance=section(found, AI, decision, "uncertain"),
    )
    data = report.to_dict()
    validate_report(data)
    assert data["provenance"]["items"][0]["source"] == "png-text"
    assert data["provenance"]["model_verdict"] == "uncertain"

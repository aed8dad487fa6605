"""The combined verdict: either model seeing a fake is enough, real needs every judge to agree."""

from __future__ import annotations

import pytest

from deepfakescan.detectors.verdict import Judgement, combine
from deepfakescan.report import verdict_for

BAND = (0.3, 0.7)


def face(p, band=BAND, reasons=()):
    return Judgement(
        "image",
        p,
        0.5,
        band,
        "the face detector",
        "the face" if p is not None else "no face",
        tuple(reasons),
    )


def whole(p, band=(0.2, 0.6)):
    return Judgement("image-synthetic", p, 0.4, band, "the whole-image detector", "16 crops")


@pytest.mark.parametrize("p", [None, 0.0, 0.1, 0.2999, 0.3, 0.5, 0.6999, 0.7, 0.95, 1.0])
def test_face_model_alone_agrees_with_todays_rule(p):
    reasons = ["the face detector's own sentence"]
    out = combine([face(p, reasons=reasons)])
    assert out.verdict == verdict_for(p, BAND)
    assert out.probability == p
    assert (out.threshold, out.band) == (0.5, BAND)
    assert out.reasons == reasons


def test_either_model_saying_fake_makes_it_fake():
    for judgements in ([face(0.9), whole(0.1)], [face(0.1), whole(0.9)], [face(None), whole(0.9)]):
        out = combine(judgements)
        assert out.verdict == "fake"
        assert out.probability == 0.9


def test_fake_shows_the_model_furthest_above_its_own_fake_edge():
    # face: 0.85 - 0.7 = 0.15 above; whole image: 0.8 - 0.6 = 0.2 above -> whole image decides
    out = combine([face(0.85), whole(0.8)])
    assert out.verdict == "fake"
    assert out.decided_by == "image-synthetic"
    assert out.probability == 0.8
    assert (out.threshold, out.band) == (0.4, (0.2, 0.6))


def test_both_real_is_real_showing_the_most_suspicious():
    # face: 0.25 - 0.3 = -0.05; whole: 0.05 - 0.2 = -0.15 -> face is closer to leaving real
    out = combine([face(0.25), whole(0.05)])
    assert out.verdict == "real"
    assert out.decided_by == "image"
    assert out.probability == 0.25


def test_one_uncertain_and_one_real_is_uncertain():
    out = combine([face(0.1), whole(0.4)])
    assert out.verdict == "uncertain"
    assert out.decided_by == "image-synthetic"
    assert out.probability == 0.4


def test_real_needs_only_the_models_that_had_something_to_judge():
    out = combine([face(None), whole(0.1)])
    assert out.verdict == "real"
    assert out.probability == 0.1
    assert any("face detector had nothing to judge (no face)" in r for r in out.reasons)


def test_nothing_judged_is_uncertain_with_the_first_models_band():
    out = combine([face(None, reasons=["No face was found."]), whole(None)])
    assert out.verdict == "uncertain"
    assert out.probability is None and out.decided_by is None
    assert (out.threshold, out.band) == (0.5, BAND)
    assert out.reasons[0] == "No face was found."
    assert "whole-image detector had nothing to judge" in out.reasons[1]


@pytest.mark.parametrize(
    ("p_whole", "verdict"),
    [(0.2, "uncertain"), (0.19999, "real"), (0.6, "fake"), (0.59999, "uncertain")],
)
def test_band_edges_belong_to_the_upper_side(p_whole, verdict):
    # low edge is uncertain, high edge is fake, as in verdict_for
    assert combine([face(0.1), whole(p_whole)]).verdict == verdict


def test_reasons_name_each_model_and_what_it_looked_at():
    out = combine([face(0.1), whole(0.9)])
    assert out.reasons[0].startswith("The whole-image detector (16 crops) looks manipulated")
    assert out.reasons[1] == "The face detector (the face) looks authentic: 10%."


def test_no_judgement_at_all_is_a_programming_error():
    with pytest.raises(ValueError):
        combine([])


def test_a_second_model_that_also_saw_a_fake_keeps_its_own_sentences():
    reasons = ["Face 1 looks manipulated.", "It most resembles a GAN-generated face (80%)."]
    out = combine([face(0.75, reasons=reasons), whole(0.95)])
    assert out.decided_by == "image-synthetic"
    assert out.reasons[1:] == reasons

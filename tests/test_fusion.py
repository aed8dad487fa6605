"""detectors/fusion.py: each rule checked on values worked out by hand."""

from __future__ import annotations

import pytest

from deepfakescan.detectors import fusion as F


def test_iou_of_two_half_overlapping_squares_is_a_third():
    # intersection 5x10 = 50, union 100 + 100 - 50 = 150
    assert F.box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(1 / 3)
    assert F.box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert F.box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_centre_distance_is_in_units_of_the_larger_side():
    # centres (5, 5) and (8, 9): 5 px apart, larger side 10
    assert F.centre_distance((0, 0, 10, 10), (3, 4, 10, 10)) == pytest.approx(0.5)


def test_two_people_who_swap_list_order_keep_their_tracks():
    a0, b0 = (0, 0, 10, 10), (100, 0, 10, 10)
    a1, b1 = (2, 0, 10, 10), (101, 1, 10, 10)
    frames = [[a0, b0], [b1, a1], [], [(1, 1, 10, 10)]]
    assert F.group_tracks(frames) == [[(0, 0), (1, 1), (3, 0)], [(0, 1), (1, 0)]]


def test_a_face_that_moved_half_a_side_still_matches_by_centre_distance():
    # IoU = 6*7 / (200 - 42) = 0.266 < 0.3, but the centres are 0.5 sides apart
    assert F.box_iou((0, 0, 10, 10), (4, 3, 10, 10)) < F.IOU_MATCH
    assert F.group_tracks([[(0, 0, 10, 10)], [(4, 3, 10, 10)]]) == [[(0, 0), (1, 0)]]


def test_a_face_too_far_or_too_different_in_size_starts_a_new_track():
    # centres 0.71 sides apart, IoU 25/175: a different person
    assert F.group_tracks([[(0, 0, 10, 10)], [(5, 5, 10, 10)]]) == [[(0, 0)], [(1, 0)]]
    # close (0.35 sides) but twice the size and IoU 80/420: not the same face
    assert F.group_tracks([[(0, 0, 10, 10)], [(2, -6, 20, 20)]]) == [[(0, 0)], [(1, 0)]]


def test_the_best_overlap_wins_when_two_faces_could_continue_a_track():
    frames = [[(0, 0, 10, 10)], [(4, 0, 10, 10), (1, 0, 10, 10)]]
    # face 1 overlaps 0.82, face 0 overlaps 0.43: face 1 continues, face 0 is someone new
    assert F.group_tracks(frames) == [[(0, 0), (1, 1)], [(1, 0)]]


@pytest.mark.parametrize(
    ("probabilities", "expected"),
    [
        ([0.9] * 5 + [0.1] * 5, 0.9),  # 5 of 10 above 0.8 (> 40 %): mean of those
        ([0.9] * 4 + [0.5] * 6, 0.66),  # 4 of 10 is not more than 40 %: mean of all
        ([0.1] * 10, 0.1),  # all below 0.2 (> 90 %): mean of those
        ([0.1] * 9 + [0.5], 0.14),  # 9 of 10 is not more than 90 %: mean of all
        ([0.05] * 19 + [0.6], 0.05),  # 19 of 20 confident reals outvote one odd frame
    ],
)
def test_track_score_follows_the_confident_frames_rule(probabilities, expected):
    assert F.track_score(probabilities) == pytest.approx(expected)


def test_a_track_needs_frames():
    with pytest.raises(ValueError):
        F.track_score([])


def test_enough_frames_is_fifteen_percent_of_the_samples_and_at_least_two():
    assert F.min_track_frames(32) == 5  # ceil(4.8)
    assert F.min_track_frames(8) == 2
    assert F.min_track_frames(1) == 2


def test_a_face_seen_once_does_not_decide_over_a_person_seen_throughout():
    assert F.deciding_track([0.9, 0.3], [1, 32], 32) == (1, True)
    assert F.deciding_track([0.9, 0.3, 0.5], [10, 32, 8], 32) == (0, True)


def test_when_no_face_is_seen_often_enough_the_longest_tracks_compete():
    assert F.deciding_track([0.2, 0.7, 0.9], [3, 3, 1], 32) == (1, False)
    assert F.deciding_track([], [], 32) == (None, False)


VISUAL_BAND = (0.4, 0.6)
AUDIO_BAND = (0.3, 0.5)


def visual(p, verdict):
    return F.Judgement("visual", p, verdict, 0.5, VISUAL_BAND)


def audio(p, verdict):
    return F.Judgement("audio", p, verdict, 0.4, AUDIO_BAND)


def test_a_fake_face_with_a_natural_voice_is_fake():
    fused = F.fuse([visual(0.8, "fake"), audio(0.1, "real")])
    assert (fused.verdict, fused.probability, fused.deciding) == ("fake", 0.8, "visual")
    assert fused.band == VISUAL_BAND


def test_a_synthetic_voice_over_a_real_face_is_fake_with_the_audio_band():
    fused = F.fuse([visual(0.1, "real"), audio(0.9, "fake")])
    assert (fused.verdict, fused.probability, fused.deciding) == ("fake", 0.9, "audio")
    assert (fused.threshold, fused.band) == (0.4, AUDIO_BAND)


def test_real_needs_every_judged_modality_real():
    assert F.fuse([visual(0.1, "real"), audio(0.2, "real")]).verdict == "real"
    fused = F.fuse([visual(0.35, "real"), audio(0.35, "uncertain")])
    # the uncertain voice decides, although the face's probability is as high
    assert (fused.verdict, fused.deciding, fused.probability) == ("uncertain", "audio", 0.35)


def test_a_modality_with_nothing_to_judge_takes_no_part():
    fused = F.fuse([F.Judgement("visual", None, "uncertain", 0.5, VISUAL_BAND), audio(0.2, "real")])
    assert (fused.verdict, fused.probability, fused.deciding) == ("real", 0.2, "audio")


def test_neither_face_nor_speech_is_uncertain_without_a_probability():
    fused = F.fuse(
        [
            F.Judgement("visual", None, "uncertain", 0.5, VISUAL_BAND),
            F.Judgement("audio", None, "uncertain", None, None),
        ]
    )
    assert (fused.verdict, fused.probability, fused.deciding) == ("uncertain", None, None)
    assert fused.band == VISUAL_BAND


def test_visual_timeline_keeps_the_most_suspicious_frame_of_each_second():
    bins = F.bin_points([0.2, 0.7, 1.5, 3.1], [0.1, 0.6, 0.3, 0.9])
    assert bins == [(0.0, 1.0, 0.6), (1.0, 2.0, 0.3), (3.0, 4.0, 0.9)]


def test_audio_timeline_averages_the_windows_covering_each_second():
    # 2-s windows 1 s apart: second 1 is covered by both
    bins = F.bin_intervals([0.0, 1.0], [2.0, 3.0], [0.2, 0.8])
    assert bins == [(0.0, 1.0, 0.2), (1.0, 2.0, pytest.approx(0.5)), (2.0, 3.0, 0.8)]
    # weighted by overlap: second 0 holds 0.5 s of the first window and 1 s of the second
    bins = F.bin_intervals([0.5, 0.0], [2.5, 1.0], [1.0, 0.0])
    assert [p for *_, p in bins] == [pytest.approx(1 / 3), 1.0, 1.0]
    # the last second ends with the audio
    assert F.bin_intervals([1.0], [3.25], [0.9])[-1] == (3.0, 3.25, 0.9)
    # ... unless it is a sliver of codec padding
    assert F.bin_intervals([1.0], [3.008], [0.9])[-1] == (2.0, 3.0, 0.9)


def test_runs_merge_consecutive_seconds_over_the_threshold():
    bins = [(0, 1, 0.2), (1, 2, 0.7), (2, 3, 0.9), (3, 4, 0.1), (5, 6, 0.8), (7, 8, 0.6)]
    assert F.runs(bins, 0.6) == [(1, 3), (5, 6), (7, 8)]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0:00"), (12.4, "0:12"), (59.6, "1:00"), (75, "1:15"), (3725, "1:02:05")],
)
def test_clock_reads_minutes_and_seconds(seconds, text):
    assert F.clock(seconds) == text

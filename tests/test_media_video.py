"""Video intake: probe, then sample frames by time; rotation applied; damage survives."""

from __future__ import annotations

import numpy as np
import pytest

from deepfakescan.config import Settings
from deepfakescan.errors import CorruptMedia, UnsupportedMedia
from deepfakescan.media.audio import load_audio
from deepfakescan.media.source import MediaSource
from deepfakescan.media.video import probe_video, sample_frames

try:  # tests/ as a package (relative imports, like test_pipeline) or as a plain directory
    from . import fixtures as F
except ImportError:
    import fixtures as F

SETTINGS = Settings()


def src(data: bytes) -> MediaSource:
    return MediaSource.from_any(data, SETTINGS)


def bar_x(rgb: np.ndarray) -> int:
    """Column of the white time bar drawn by fixtures.moving_frame."""
    return int(np.argmax((rgb.astype(int).sum(axis=2) > 700).sum(axis=0)))


def test_probe_reads_size_duration_rate_and_audio():
    info = probe_video(src(F.make_video(None, 2.0, 10, (160, 120), with_audio=True)))
    assert (info.width, info.height, info.rotation) == (160, 120, 0)
    assert info.duration_s == pytest.approx(2.0, abs=0.1)
    assert info.frame_rate == pytest.approx(10)
    assert info.has_audio and info.codec == "h264" and info.format == "mp4"


@pytest.mark.parametrize("container", ["mp4", "mov", "webm", "mkv", "avi"])
def test_sampling_returns_n_frames_at_increasing_times_close_to_targets(container):
    data = F.make_video(None, 2.0, 10, (160, 120), container=container)
    sampler = sample_frames(src(data), 5, SETTINGS)
    frames = list(sampler)
    assert [f.index for f in frames] == list(range(5))
    times = [f.time_s for f in frames]
    assert times == sorted(times) and len(set(times)) == 5
    for frame, target in zip(frames, sampler.targets_s, strict=True):
        assert abs(frame.time_s - target) <= 0.1 + 1e-6  # within one frame at 10 fps
        assert frame.rgb.shape == (120, 160, 3) and frame.rgb.dtype == np.uint8
        # the picture really is the frame at that time (the bar moves 8 px per second);
        # AVI has no pts, only frame counts, and its mpeg4 track is shifted by the encoder delay
        if container != "avi":
            assert abs(bar_x(frame.rgb) - 8 * frame.time_s) <= 1
    assert sampler.warnings == []


def test_long_gop_falls_back_to_the_keyframe_and_says_so():
    # one keyframe for the whole 6 s clip: reaching 4.5 s from it would cost 45 frames > 2 s
    data = F.make_video(None, 6.0, 10, (64, 48), gop=1000)
    sampler = sample_frames(src(data), 2, SETTINGS)
    frames = list(sampler)
    assert frames[0].time_s == pytest.approx(1.5)
    assert any("keyframe" in w for w in sampler.warnings)
    times = [f.time_s for f in frames]
    assert times == sorted(set(times))


def test_rotated_video_returns_rotated_dimensions():
    data = F.make_video(None, 1.0, 10, (160, 120), rotation=90)
    info = probe_video(src(data))
    assert (info.width, info.height, info.rotation) == (120, 160, 90)
    frames = list(sample_frames(src(data), 2, SETTINGS))
    assert frames[0].rgb.shape == (160, 120, 3)
    # 90 degrees counter-clockwise: the blue top-left block moves to the bottom-left
    assert frames[0].rgb[-5, 5, 2] > 200 and frames[0].rgb[5, 5, 2] < 60


def test_frames_over_the_decode_budget_come_reduced_and_the_file_size_is_kept():
    data = F.make_video(None, 1.0, 10, (160, 120))
    sampler = sample_frames(src(data), 3, Settings(decode_pixels=160 * 120 // 4))
    frames = list(sampler)
    full = list(sample_frames(src(data), 3, SETTINGS))
    assert (sampler.info.width, sampler.info.height) == (160, 120)
    assert [f.rgb.shape for f in frames] == [(60, 80, 3)] * 3
    assert all(f.to_file == (2.0, 2.0) for f in frames)
    for small, big in zip(frames, full, strict=True):
        # the same picture, averaged 2x2: the time bar sits at half its column
        assert small.time_s == big.time_s
        averaged = big.rgb.reshape(60, 2, 80, 2, 3).mean(axis=(1, 3))
        assert np.abs(small.rgb - averaged).mean() < 4
        assert abs(bar_x(small.rgb) - bar_x(big.rgb) / 2) <= 1
    [note] = sampler.warnings
    assert "160x120" in note and "80x60" in note and "reduced by 2" in note
    assert "DEEPFAKESCAN_DECODE_PIXELS" in note


def test_frames_within_the_decode_budget_are_native_and_not_warned_about():
    data = F.make_video(None, 1.0, 10, (160, 120))
    sampler = sample_frames(src(data), 2, Settings(decode_pixels=160 * 120))
    assert [(f.rgb.shape, f.to_file) for f in sampler] == [((120, 160, 3), (1.0, 1.0))] * 2
    assert sampler.warnings == []


def test_a_rotated_frame_reduced_maps_each_axis_back_to_the_displayed_size():
    # 160x120 turned upright is 120x160; factor 3 gives 54x40 before turning (not exact)
    data = F.make_video(None, 1.0, 10, (160, 120), rotation=90)
    sampler = sample_frames(src(data), 1, Settings(decode_pixels=54 * 40))
    [frame] = list(sampler)
    assert frame.rgb.shape == (54, 40, 3)
    assert frame.to_file == pytest.approx((120 / 40, 160 / 54))
    assert "120x160" in sampler.warnings[0] and "reduced by 3" in sampler.warnings[0]


def test_n_is_capped_by_max_video_frames():
    settings = Settings(max_video_frames=3)
    frames = list(sample_frames(src(F.make_video(None, 1.0, 10)), 50, settings))
    assert len(frames) == 3


def test_only_the_first_max_video_seconds_are_sampled():
    settings = Settings(max_video_seconds=1.0)
    sampler = sample_frames(src(F.make_video(None, 3.0, 10)), 4, settings)
    frames = list(sampler)
    assert max(f.time_s for f in frames) < 1.0
    assert any("first 1 s" in w for w in sampler.warnings)


def test_corrupt_bytes_mid_stream_still_give_frames_and_a_warning():
    # MP4 writes its index (moov) last: damage at 30-50 % hits H.264 frame data only
    data = F.make_video(None, 2.0, 10, (160, 120), gop=5, container="mp4")
    bad = F.corrupt(data, 0.4, 2000, seed=1)
    sampler = sample_frames(src(bad), 6, SETTINGS)
    frames = list(sampler)
    assert len(frames) >= 3
    assert any("damaged" in w for w in sampler.warnings)


def test_header_claiming_more_than_the_stream_holds_stops_with_a_warning():
    # cut the MKV (whose header says 4 s) at half its size: sampling stops early, no error
    data = F.make_video(None, 4.0, 10, (160, 120), gop=5, container="mkv")
    sampler = sample_frames(src(data[: len(data) // 2]), 8, SETTINGS)
    frames = list(sampler)
    assert 1 <= len(frames) < 8
    assert any("ends near" in w for w in sampler.warnings)


def test_video_truncated_after_the_first_bytes_is_corrupt_media():
    data = F.make_video(None, 1.0, 10)
    with pytest.raises(CorruptMedia) as info:
        probe_video(src(data[:200]))
    assert info.value.status == 422


def test_mp4_missing_its_index_is_corrupt_media():
    # libx264 + mp4 writes moov at the end: cutting it loses the index
    data = F.make_video(None, 1.0, 10)
    with pytest.raises(CorruptMedia):
        list(sample_frames(src(data[: int(len(data) * 0.8)]), 3, SETTINGS))


def test_the_audio_track_of_a_video_is_reachable():
    data = F.make_video(None, 1.0, 10, with_audio=True, container="mkv")
    assert load_audio(src(data), SETTINGS).duration_s == pytest.approx(1.0, abs=0.1)


def test_audio_only_input_is_not_video():
    with pytest.raises(UnsupportedMedia):
        probe_video(src(F.tone_wav(0.2)))

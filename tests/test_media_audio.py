"""Audio intake: any format to mono float32 16 kHz, streamed, bounded, damage reported."""

from __future__ import annotations

import numpy as np
import pytest

from deepfakescan.config import Settings
from deepfakescan.errors import CorruptMedia, UnsupportedMedia
from deepfakescan.media.audio import SAMPLE_RATE, load_audio, open_audio_stream, probe_audio
from deepfakescan.media.source import MediaSource

try:  # tests/ as a package (relative imports, like test_pipeline) or as a plain directory
    from . import fixtures as F
except ImportError:
    import fixtures as F

SETTINGS = Settings()


def src(data: bytes) -> MediaSource:
    return MediaSource.from_any(data, SETTINGS)


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "ogg", "opus", "m4a"])
def test_every_audio_format_decodes_to_16k_mono_float32(fmt):
    data = F.encode_audio(F.tone(1.0, 22050, 2), 22050, fmt)
    clip = load_audio(src(data), SETTINGS)
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    # encoders add priming / padding of up to a few tens of ms
    assert clip.duration_s == pytest.approx(1.0, abs=0.08)
    assert 0.2 < np.abs(clip.samples).max() < 1.0
    assert clip.info.format == fmt and not clip.truncated


def test_7_1_at_96k_is_downmixed_to_16k_mono_with_the_right_duration():
    data = F.encode_audio(F.tone(1.5, 96000, 8), 96000, "wav")
    info = probe_audio(src(data))
    assert (info.sample_rate, info.channels) == (96000, 8)
    assert info.duration_s == pytest.approx(1.5)
    clip = load_audio(src(data), SETTINGS)
    assert len(clip.samples) == pytest.approx(1.5 * SAMPLE_RATE, abs=2)
    # the 440 Hz mean of eight channels survives: check its dominant frequency
    spectrum = np.abs(np.fft.rfft(clip.samples))
    assert spectrum.argmax() * SAMPLE_RATE / len(clip.samples) == pytest.approx(440, abs=60)


def test_compressed_multichannel_is_downmixed_too():
    data = F.encode_audio(F.tone(1.0, 48000, 6), 48000, "m4a")
    clip = load_audio(src(data), SETTINGS)
    assert clip.duration_s == pytest.approx(1.0, abs=0.08)


def test_stream_blocks_are_seamless_and_sized():
    data = F.tone_wav(2.5, 44100)
    blocks = list(open_audio_stream(src(data), SETTINGS, block_seconds=1.0))
    assert [len(b) for b in blocks] == [16000, 16000, 8000]
    whole = load_audio(src(data), SETTINGS).samples
    np.testing.assert_allclose(np.concatenate(blocks), whole, atol=1e-6)
    # no click at block edges: the sample-to-sample step stays that of a 440 Hz sine
    joined = np.concatenate(blocks)
    assert np.abs(np.diff(joined)).max() < 2 * np.pi * 440 / SAMPLE_RATE * 0.5 * 1.2


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_max_seconds_truncation_is_flagged(fmt):
    data = F.encode_audio(F.tone(3.0, 16000), 16000, fmt)
    stream = open_audio_stream(src(data), SETTINGS, max_seconds=1.0)
    samples = np.concatenate(list(stream))
    assert len(samples) == SAMPLE_RATE
    assert stream.truncated and stream.seconds_read == pytest.approx(1.0)
    assert any("first 1 s" in w for w in stream.warnings)


def test_a_file_exactly_max_seconds_long_is_not_flagged():
    stream = open_audio_stream(src(F.tone_wav(1.0, 44100)), SETTINGS, max_seconds=1.0)
    list(stream)
    assert not stream.truncated


def test_default_max_seconds_comes_from_settings():
    settings = Settings(max_audio_seconds=0.5)
    clip = load_audio(src(F.tone_wav(2.0)), settings)
    assert clip.truncated and clip.duration_s == pytest.approx(0.5)


def test_zero_second_wav_is_corrupt_media_with_no_samples_message():
    with pytest.raises(CorruptMedia, match="contains no audio samples") as info:
        load_audio(src(F.tone_wav(0.0)), SETTINGS)
    assert info.value.status == 422


@pytest.mark.parametrize("fmt", ["mp3", "m4a", "ogg", "flac", "wav"])
def test_audio_truncated_after_the_first_bytes_is_corrupt_media(fmt):
    # 40 bytes: inside the WAV header (44 bytes) and before any MP3/AAC/Vorbis frame
    data = F.encode_audio(F.tone(1.0, 16000), 16000, fmt)
    with pytest.raises(CorruptMedia):
        load_audio(src(data[:40]), SETTINGS)


def test_wav_cut_at_ten_percent_is_analysed_as_far_as_it_goes_and_says_it_is_truncated():
    # libsndfile sizes a cut WAV from the bytes present: the RIFF data chunk declares the rest
    data = F.tone_wav(1.0)
    clip = load_audio(src(data[: 44 + 3200]), SETTINGS)
    assert clip.duration_s == pytest.approx(0.1, abs=0.01)
    assert clip.info.duration_s == pytest.approx(1.0)
    assert [w for w in clip.warnings if "truncated" in w] == [
        "the file is truncated: 0.10 s of the 1.00 s its header declares were analysed"
    ]


@pytest.mark.parametrize("rate", [16000, 44100])
def test_a_whole_wav_has_no_truncation_warning(rate):
    clip = load_audio(src(F.tone_wav(1.0, sr=rate)), SETTINGS)
    assert clip.info.duration_exact and not clip.warnings


def test_a_wav_a_few_percent_short_is_truncated_too():
    data = F.tone_wav(2.0)
    clip = load_audio(src(data[: len(data) - 3200]), SETTINGS)  # 0.1 s of 2 s missing
    assert any("truncated: 1.90 s of the 2.00 s" in w for w in clip.warnings)


def test_a_riff_walk_skips_chunks_before_the_data_and_gives_up_on_unknown_sizes():
    import io
    import struct

    from deepfakescan.media.audio import riff_data_chunk

    data = F.tone_wav(1.0)  # 16 kHz mono s16: 32000 bytes a second
    fmt_end = 12 + 8 + struct.unpack("<I", data[16:20])[0]
    extra = b"LIST" + struct.pack("<I", 5) + b"abcde\0"  # odd size, padded to even
    with_list = data[:fmt_end] + extra + data[fmt_end:]
    assert riff_data_chunk(io.BytesIO(with_list)) == (32000, 32000, fmt_end + len(extra) + 8)
    unknown_size = data[:fmt_end] + b"data" + b"\xff" * 4 + data[fmt_end + 8 :]
    assert riff_data_chunk(io.BytesIO(unknown_size)) is None
    assert riff_data_chunk(io.BytesIO(b"RIFX" + data[4:])) is None


def test_mp3_cut_in_half_is_analysed_with_a_truncation_warning():
    data = F.encode_audio(F.tone(2.0, 16000), 16000, "mp3")
    clip = load_audio(src(data[: len(data) // 2]), SETTINGS)
    assert 0.5 < clip.duration_s < 1.5
    assert any("truncated" in w for w in clip.warnings)


def test_corrupt_frames_in_the_middle_of_an_mp3_are_skipped_with_a_warning():
    data = F.encode_audio(F.tone(4.0, 16000), 16000, "mp3")
    bad = F.corrupt(data, 0.5, 1500, seed=3)
    clip = load_audio(src(bad), SETTINGS)
    assert clip.duration_s > 2.5
    assert clip.warnings, "the damage must be reported"


def test_the_audio_track_of_a_video_is_read():
    data = F.make_video(None, 1.0, 5, (64, 48), with_audio=True, audio_sr=48000)
    clip = load_audio(src(data), SETTINGS)
    assert clip.duration_s == pytest.approx(1.0, abs=0.08)


def test_an_image_is_not_audio():
    with pytest.raises(UnsupportedMedia):
        load_audio(src(F.make_png(8, 8)), SETTINGS)


def test_nan_infinite_and_absurd_float_samples_are_read_as_silence_with_a_warning():
    # a 32-bit float WAV may hold any float; damage (a shifted byte) makes NaN and 1e30 of it
    samples = np.full(16000, 0.25, np.float32)
    samples[[10, 20, 30, 40]] = [np.nan, np.inf, -np.inf, 1e30]
    samples[50] = 1.5  # over full scale but sound: a loud float master, kept
    wav = F.encode_audio(samples, 16000, "wav", subtype="FLOAT")
    clip = load_audio(src(wav), SETTINGS)
    assert np.isfinite(clip.samples).all()
    assert clip.samples[[10, 20, 30, 40]].tolist() == [0.0] * 4
    assert clip.samples[50] == 1.5 and clip.samples[60] == 0.25
    assert clip.warnings == [
        "4 audio sample(s) were not numbers or far beyond full scale (damaged data) and were"
        " read as silence"
    ]


def test_damaged_samples_are_counted_when_reading_stops_at_max_seconds():
    samples = np.full(3 * 16000, 0.25, np.float32)
    samples[100] = np.nan
    wav = F.encode_audio(samples, 16000, "wav", subtype="FLOAT")
    clip = load_audio(src(wav), Settings(max_audio_seconds=1.0))
    assert clip.truncated and np.isfinite(clip.samples).all()
    assert any(w.startswith("1 audio sample(s) were not numbers") for w in clip.warnings)

"""Fuzz smoke: damaged and hostile files of every kind get a report or one of our own errors.

The promise to a user (and to the web layer, which maps our errors to JSON): whatever the
bytes, ``scan`` returns a report or raises a ``DeepfakescanError`` whose status says it was the
file (4xx), never another exception or a 5xx, and it leaves nothing behind in the temporary
directory. Mutants come from ``tests/fuzzing.py`` (seeded: a failure names the case to rerun);
``benchmarks/fuzz_intake.py`` runs the same mutator for thousands of cases, in a child process,
through ``scan`` and the web API.

Stand-in models (the brightness ``image`` bundle, a constant ``audio`` one, the shipped MTCNN)
keep the cost in the decoders, which is what is being tried.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter

import pytest

import deepfakescan
from deepfakescan.config import Settings
from deepfakescan.detectors import bundle
from deepfakescan.errors import DeepfakescanError

from . import fuzzing
from .conftest import audio_card, write_bundle
from .test_video_pipeline import constant_audio_model

CASES_PER_KIND = 43
"""43 mutants a kind: 301 in all, the issue's 300-mutant smoke run (about 3 s here)."""


def strict_json(report) -> dict:
    """The report as a client parses it: NaN or Infinity is not JSON, and breaks clients."""

    def refuse(constant: str):
        raise ValueError(f"{constant} in the report's JSON")

    return json.loads(report.to_json(), parse_constant=refuse)


@pytest.fixture(scope="module")
def seeds() -> dict[str, list[bytes]]:
    return fuzzing.seed_files()


@pytest.fixture
def settings(brightness_model_dir, tmp_path, monkeypatch) -> Settings:
    """Stand-in image and audio models, the shipped face detector; nothing else shipped."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for path in bundle.SHIPPED_DIR.glob("mtcnn_*"):
        (shipped / path.name).symlink_to(path)
    monkeypatch.setattr(bundle, "SHIPPED_DIR", shipped)
    write_bundle(brightness_model_dir, "audio", constant_audio_model(-4.0), audio_card())
    bundle.clear_cache()
    yield Settings.from_env(video_frames=4)
    bundle.clear_cache()


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    """An empty directory that ``tempfile`` (ours and every library's) uses for this test."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setenv("TMPDIR", str(directory))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR on next use
    return directory


def test_every_seed_file_scans_to_a_report(seeds, settings):
    """The mutants start from files we do read: damage is what the cases below add."""
    for kind, files in seeds.items():
        for i, data in enumerate(files):
            report = deepfakescan.scan(data, settings=settings, name=f"{kind}-seed-{i}")
            assert report.media.format in (kind, "opus"), (kind, i)


def test_the_mutator_is_seeded_and_changes_the_files(seeds):
    first = [c.data for c in fuzzing.cases(seeds["png"], "png", 20)]
    assert first == [c.data for c in fuzzing.cases(seeds["png"], "png", 20)]
    assert all(data not in seeds["png"] for data in first)
    assert first != [c.data for c in fuzzing.cases(seeds["png"], "png", 20, seed=1)]


def test_huge_length_hits_the_formats_own_fields(seeds):
    png = seeds["png"][0]
    assert (16, 4, "big") in fuzzing.length_fields(png)  # IHDR width
    mp4 = fuzzing.length_fields(seeds["mp4"][0])
    assert len(mp4) > 20  # boxes down to the sample tables, not just the top level


@pytest.mark.parametrize("kind", fuzzing.KINDS)
def test_damaged_files_get_a_report_or_our_own_4xx_and_leave_no_temp_files(
    kind, seeds, settings, temp_dir
):
    outcomes: Counter[str] = Counter()
    broken = []
    for case in fuzzing.cases(seeds[kind], kind, CASES_PER_KIND):
        try:
            strict_json(deepfakescan.scan(case.data, settings=settings, name=f"{kind}.bin"))
            outcomes["report"] += 1
        except DeepfakescanError as e:
            outcomes[str(e.status)] += 1
            if not 400 <= e.status < 500:
                broken.append(f"{case.id} {case.mutations}: {e.status} {e.code}: {e.message}")
        except Exception as e:  # the promise under test: nothing else escapes
            broken.append(f"{case.id} {case.mutations}: {type(e).__name__}: {e}")
    assert not broken, "\n".join(broken)
    assert sorted(p.name for p in temp_dir.iterdir()) == []
    # the cases reach both sides: files still read, and files refused
    assert outcomes["report"] and sum(outcomes.values()) > outcomes["report"], outcomes

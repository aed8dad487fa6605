"""Split manifests and training paths: one format for every model, settings not source paths.

No torch needed: manifests and paths are plain Python.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfakescan.training import paths
from deepfakescan.training.audio.data import Row
from deepfakescan.training.autoencoders.data import SyntheticRow
from deepfakescan.training.image.data import ManifestRow
from deepfakescan.training.manifest import read_manifest, write_manifest

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "data" / "manifests").glob("*.csv"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_manifests_come_back_byte_for_byte(path: Path, tmp_path: Path):
    prefixes = {"audio_": Row, "synthetic_": SyntheticRow}
    row_type = next((t for p, t in prefixes.items() if path.name.startswith(p)), ManifestRow)
    rows = read_manifest(path, row_type)
    assert rows and all(isinstance(r, row_type) for r in rows)
    out = write_manifest(tmp_path / path.name, rows, row_type)
    assert out.read_bytes() == path.read_bytes()


def test_a_manifest_of_another_model_is_refused_naming_the_header(tmp_path: Path):
    path = write_manifest(tmp_path / "a.csv", [Row("a.wav", "real", "real", "x", "s")], Row)
    with pytest.raises(ValueError, match="header must be path,label,family,source,frame"):
        read_manifest(path, ManifestRow)


def test_cells_come_back_with_their_field_types(tmp_path: Path):
    rows = [ManifestRow("v.mp4", 0, "real", "video-real", 3), ManifestRow("a.jpg", 1, "gan", "g")]
    assert read_manifest(write_manifest(tmp_path / "m.csv", rows, ManifestRow), ManifestRow) == rows


def test_training_paths_are_settings_relative_to_the_checkout(monkeypatch, tmp_path: Path):
    for env in (paths.DATA_ROOT_ENV, paths.CACHE_DIR_ENV, paths.MANIFEST_DIR_ENV):
        monkeypatch.delenv(env, raising=False)
    assert paths.data_root() == Path("../shared/data")
    assert paths.manifest_dir() == Path("data/manifests")
    assert paths.run_dir("audio") == Path("../cache/audio/runs/main")
    assert paths.export_dir(paths.run_dir("image")) == Path("../cache/image/runs/main/export")
    monkeypatch.setenv(paths.CACHE_DIR_ENV, str(tmp_path))
    assert paths.run_dir("image-family", "loo-x") == tmp_path / "image-family" / "runs" / "loo-x"

"""The command line: tables, JSON and CSV, artifacts, and the documented exit codes."""

from __future__ import annotations

import csv
import io
import json

import pytest

from deepfakescan.cli import (
    EXIT_ERROR,
    EXIT_FAKE,
    EXIT_REAL,
    EXIT_UNCERTAIN,
    main,
    metric_lines,
)

from .conftest import face_jpeg, solid_jpeg, validate_report


@pytest.fixture
def photos(tmp_path, brightness_model_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "dark.jpg").write_bytes(face_jpeg("dark"))
    (folder / "bright.jpg").write_bytes(face_jpeg("bright"))
    (folder / "middle.jpg").write_bytes(solid_jpeg(128))  # no face: uncertain
    return folder


def run(capsys, *argv):
    code = main(["scan", "--no-progress", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_all_real_exits_zero(capsys, photos):
    code, out, _ = run(capsys, photos / "dark.jpg")
    assert code == EXIT_REAL
    assert "real" in out and "dark.jpg" in out


def test_any_fake_exits_one(capsys, photos):
    code, out, _ = run(capsys, photos)
    assert code == EXIT_FAKE
    assert "fake" in out


def test_uncertain_without_fake_exits_three(capsys, photos):
    code, _, _ = run(capsys, photos / "dark.jpg", photos / "middle.jpg")
    assert code == EXIT_UNCERTAIN


def test_json_output_holds_schema_valid_reports(capsys, photos):
    code, out, _ = run(capsys, "--json", photos)
    items = json.loads(out)
    assert code == EXIT_FAKE
    assert sorted(item["file"].rsplit("/", 1)[-1] for item in items) == [
        "bright.jpg",
        "dark.jpg",
        "middle.jpg",
    ]
    for item in items:
        validate_report(item["report"])


def test_csv_output_has_one_row_per_file(capsys, photos):
    _, out, _ = run(capsys, "--csv", photos)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 3
    assert {r["verdict"] for r in rows} == {"real", "fake", "uncertain"}
    assert all(r["top_reason"] for r in rows)


def test_non_media_files_in_a_folder_are_skipped_not_errors(capsys, photos):
    (photos / "notes.txt").write_text("not media")
    (photos / "bright.jpg").unlink()
    (photos / "middle.jpg").unlink()
    code, out, _ = run(capsys, photos)
    assert code == EXIT_REAL
    assert "skipped" in out


def test_missing_file_is_an_input_error(capsys, tmp_path, brightness_model_dir):
    code, _, err = run(capsys, tmp_path / "nope.jpg")
    assert code == EXIT_ERROR
    assert "no such file" in err


def test_fake_beats_error_in_the_exit_code(capsys, photos, tmp_path):
    code, _, _ = run(capsys, photos / "bright.jpg", tmp_path / "nope.jpg")
    assert code == EXIT_FAKE


def test_usage_error_exits_two(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["scan"])
    assert exc.value.code == EXIT_ERROR


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["scan", "--help"])
    out = capsys.readouterr().out
    for code in ("0", "1", "2", "3"):
        assert f"  {code}  " in out


def _bad_inputs() -> dict[str, tuple[bytes, str, str]]:
    """name -> (bytes, file name a user might give it, expected error code)."""
    from . import fixtures as F

    mp3 = F.encode_audio(F.tone(2.0), 16000, "mp3")
    mp4 = F.make_video(None, 2.0, with_audio=True)
    return {
        "empty file": (b"", "empty.jpg", "empty_input"),
        "exe renamed jpg": (b"MZ\x90\x00\x03" + bytes(600), "photo.jpg", "unsupported_media"),
        "text file": (
            b"Dear editor,\nthis is plain text.\n" * 20,
            "notes.mp3",
            "unsupported_media",
        ),
        "truncated jpeg": (F.make_jpeg(640, 480)[:2000], "cut.jpg", "corrupt_media"),
        "truncated mp3": (mp3[:300], "cut.mp3", "corrupt_media"),
        "truncated mp4": (mp4[: len(mp4) // 2], "cut.mp4", "corrupt_media"),
        "30000x30000 png": (F.png_claiming_size(30000, 30000), "huge.png", "too_large"),
        "0-second wav": (F.tone_wav(0.0), "silence.wav", "corrupt_media"),
    }


BAD_INPUTS = _bad_inputs()


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_documented_error_and_exit_code(capsys, tmp_path, case):
    data, filename, code = BAD_INPUTS[case]
    path = tmp_path / filename
    path.write_bytes(data)
    exit_status, out, err = run(capsys, "--json", path)
    assert exit_status == EXIT_ERROR
    [item] = json.loads(out)
    assert item["error"]["code"] == code
    assert item["error"]["message"] and "Traceback" not in err
    assert f"error: {path}" in err


def test_pixel_bomb_is_refused_without_a_large_allocation(tmp_path):
    import tracemalloc

    from deepfakescan import scan
    from deepfakescan.errors import TooLarge

    data, _, _ = BAD_INPUTS["30000x30000 png"]
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge):
            scan(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024  # decoding would need 2.7 GB


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`deepfakescan models | head -1` must not print a BrokenPipeError traceback."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", "from deepfakescan.cli import main; main(['models', '--json'])"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the first line is written
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


def test_artifacts_folder_gets_the_heatmap_and_the_preview(capsys, photos, tmp_path):
    from PIL import Image

    out = tmp_path / "evidence"
    code, _, _ = run(capsys, "--artifacts", out, photos / "bright.jpg", photos / "middle.jpg")
    assert code == EXIT_FAKE
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == [
        "0000-bright/heatmap.jpg",
        "0000-bright/preview.jpg",
        "0001-middle/preview.jpg",  # no face, no heatmap: the preview still shows what was read
    ]
    with Image.open(out / "0000-bright" / "preview.jpg") as picture:
        assert picture.format == "JPEG" and picture.size == (512, 512)


def test_models_describes_each_installed_bundle(capsys, brightness_model_dir):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "image test-1  [image-detector]  (model directory, overrides the shipped" in out
    assert "threshold 0.500, uncertain between 0.400 and 0.600" in out
    assert "test metrics: none recorded" in out and "licence: Apache-2.0" in out


def test_models_listing_summarises_eval_metrics_per_family():
    metrics = {
        "test": {
            "groups": {
                "overall": {"n_real": 10, "n_fake": 20, "auc": {"value": 0.91}, "eer": 0.1},
                "family:real": {"n_real": 10, "n_fake": 0},
                "family:gan": {"n_real": 10, "n_fake": 5, "auc": {"value": 0.99}},
                "source:x": {"n_real": 3, "n_fake": 0},
            }
        }
    }
    lines = metric_lines(metrics)
    assert any("test overall: 10 real / 20 fake, AUC 0.910, EER 0.100" in line for line in lines)
    assert any("family:gan" in line and "AUC 0.990" in line for line in lines)
    assert not any("family:real" in line or "source:x" in line for line in lines)


def test_keys_are_made_shown_once_listed_without_the_key_and_revoked(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAKESCAN_DATA_DIR", str(tmp_path / "data"))
    assert main(["keys", "create", "--admin", "--label", "desk editor"]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("dfs_") and len(key) >= 46 and "shown once" in err
    key_id = err.split()[2]
    assert main(["keys", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == [
        {
            "id": key_id,
            "label": "desk editor",
            "admin": True,
            "created_at": listed[0]["created_at"],
            "revoked_at": None,
            "active": True,
        }
    ]
    assert main(["keys", "revoke", key_id]) == 0
    assert main(["keys", "list"]) == 0
    out = capsys.readouterr().out
    assert "revoked" in out and key not in out
    assert main(["keys", "revoke", key_id]) == EXIT_ERROR  # nothing left to revoke

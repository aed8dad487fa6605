"""The command line: tables, JSON and CSV, artifacts, and the documented exit codes."""

from __future__ import annotations

import csv
import io
import json

import pytest

from deepfakescan.cli import EXIT_ERROR, EXIT_FAKE, EXIT_REAL, EXIT_UNCERTAIN, main

from .conftest import solid_jpeg, validate_report


@pytest.fixture
def photos(tmp_path, brightness_model_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, grey in [("dark.jpg", 10), ("bright.jpg", 250), ("middle.jpg", 128)]:
        (folder / name).write_bytes(solid_jpeg(grey))
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

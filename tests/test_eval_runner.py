"""Grouping scores into metrics, the output files and the ``eval`` command, on a fake scorer."""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from deepfakescan.errors import CorruptMedia
from deepfakescan.evaluation import command
from deepfakescan.evaluation.datasets import LabelledItem
from deepfakescan.evaluation.outputs import write_outputs
from deepfakescan.evaluation.runner import evaluate, format_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# name -> (label, family, source, probability); "boom" fails, "blank" gets no probability
CORPUS = {
    "r1": (0, "real", "A", 0.1),
    "r2": (0, "real", "A", 0.2),
    "r3": (0, "real", "A", 0.3),
    "r4": (0, "real", "A", 0.6),
    "boom": (0, "real", "A", None),
    "x1": (1, "X", "B", 0.7),
    "x2": (1, "X", "B", 0.8),
    "x3": (1, "X", "B", 0.9),
    "blank": (1, "X", "B", None),
    "y1": (1, "Y", "B", 0.4),
    "y2": (1, "Y", "B", 0.65),
}


def corpus_items() -> list[LabelledItem]:
    return [LabelledItem(Path(name), lab, fam, src) for name, (lab, fam, src, _) in CORPUS.items()]


def fake_scan(path: Path) -> SimpleNamespace:
    """Stands in for ``deepfakescan.scan``: a report-like object with the model threshold 0.5."""
    if path.name == "boom":
        raise CorruptMedia("truncated stream")
    prob = CORPUS[path.name][3]
    verdict = "uncertain" if prob is None else ("fake" if prob >= 0.5 else "real")
    return SimpleNamespace(fake_probability=prob, verdict=verdict, threshold=0.5)


@pytest.fixture(scope="module")
def result():
    return evaluate(corpus_items(), fake_scan, bootstrap=200, seed=0)


def test_overall_metrics_match_hand_counts(result):
    g = result.group("overall")
    assert (g.n_real, g.n_fake, g.n_errors, g.n_unscored) == (4, 5, 1, 1)
    # fakes above reals: .7, .8, .9, .65 beat all 4 reals, .4 beats 3: 19 of 20 pairs
    assert g.metrics["auc"] == pytest.approx(19 / 20)
    # at 0.5: real .6 is a false alarm, fake .4 is missed
    assert g.metrics["accuracy"] == pytest.approx(7 / 9)
    assert g.metrics["precision"] == pytest.approx(4 / 5)
    assert g.metrics["recall"] == pytest.approx(4 / 5)
    assert g.metrics["fpr"] == pytest.approx(1 / 4)
    lo, hi = g.intervals["auc"]
    assert lo <= g.metrics["auc"] <= hi


def test_each_fake_family_is_measured_against_all_reals(result):
    x, y = result.group("family", "X"), result.group("family", "Y")
    assert (x.n_real, x.n_fake, y.n_real, y.n_fake) == (4, 3, 4, 2)
    assert x.metrics["auc"] == 1.0 and x.metrics["recall"] == 1.0
    assert y.metrics["auc"] == pytest.approx(7 / 8)  # .4 beats 3 reals, .65 beats 4
    assert y.metrics["recall"] == pytest.approx(1 / 2)
    assert x.metrics["fpr"] == y.metrics["fpr"] == pytest.approx(1 / 4)


def test_verdicts_are_counted_including_abstentions(result):
    assert result.group("family", "X").verdicts == {"fake": 4, "real": 3, "uncertain": 1}


def test_failures_and_abstentions_are_counted_in_their_groups(result):
    assert (result.group("family", "X").n_errors, result.group("family", "X").n_unscored) == (1, 1)
    assert result.group("family", "Y").n_unscored == 0
    assert result.group("source", "A").n_errors == 1
    assert {s.item.path.name: s.error for s in result.problems} == {
        "boom": "corrupt_media: truncated stream",
        "blank": None,
    }


def test_one_class_sources_report_only_the_defined_metrics(result):
    a, b = result.group("source", "A"), result.group("source", "B")
    assert a.metrics["fpr"] == pytest.approx(1 / 4)
    assert b.metrics["recall"] == pytest.approx(4 / 5)
    for g in (a, b):
        for name in ("auc", "eer", "ap", "precision"):
            assert math.isnan(g.metrics[name])
    assert math.isnan(a.metrics["recall"]) and math.isnan(b.metrics["fpr"])
    assert math.isfinite(a.intervals["fpr"][0])


def test_threshold_override_replaces_the_reports_threshold():
    r = evaluate(corpus_items(), fake_scan, threshold=0.35, bootstrap=0)
    g = r.group("overall")
    assert g.metrics["recall"] == 1.0 and g.metrics["fpr"] == pytest.approx(1 / 4)
    assert r.thresholds_used == [0.35]
    assert all(math.isnan(v) for v in g.intervals["auc"])


def test_bare_probabilities_without_threshold_fall_back_with_a_warning():
    r = evaluate(corpus_items()[:4], lambda p: CORPUS[p.name][3], bootstrap=0)
    assert r.thresholds_used == [0.5] and r.warnings


def test_bugs_in_the_scorer_propagate_with_the_path(tmp_path):
    def broken(path):
        raise ZeroDivisionError("bug")

    with pytest.raises(ZeroDivisionError) as info:
        evaluate([LabelledItem(tmp_path / "a.jpg", 0, "real", "s")], broken)
    assert any("a.jpg" in note for note in info.value.__notes__)


def test_outputs_are_written_and_json_has_no_nan(result, tmp_path):
    paths = write_outputs(result, tmp_path / "out")
    metrics = json.loads(paths["metrics"].read_text())  # strict JSON: NaN would be rejected here
    json.dumps(metrics, allow_nan=False)
    kinds = [(g["kind"], g["name"]) for g in metrics["groups"]]
    assert kinds[0] == ("overall", "all")
    assert ("family", "X") in kinds and ("source", "A") in kinds
    assert len(metrics["problems"]) == 2
    rows = list(csv.DictReader(paths["scores"].open()))
    assert list(rows[0]) == ["path", "label", "family", "source", "fake_probability"] + [
        "verdict",
        "error",
    ]
    assert len(rows) == len(CORPUS)
    boom = next(r for r in rows if r["path"] == "boom")
    assert boom["fake_probability"] == "" and boom["error"].startswith("corrupt_media")


def test_roc_and_histogram_are_drawn_as_png_files(result, tmp_path):
    pytest.importorskip("matplotlib")  # the [eval] extra
    paths = write_outputs(result, tmp_path / "out")
    for name in ("roc", "hist"):
        assert paths[name].read_bytes()[:8] == PNG_MAGIC


def test_a_markdown_table_is_written_for_model_cards_to_quote(result, tmp_path):
    paths = write_outputs(result, tmp_path / "out")
    lines = paths["table"].read_text().splitlines()
    assert lines[0].startswith("| group | n_real | n_fake |")
    assert set(lines[1]) <= set("|-: ")
    body = [line for line in lines[2:] if line.startswith("| ")]
    assert len(body) == len(result.groups)
    assert all(line.count("|") == lines[0].count("|") for line in body)
    assert "| 0.950 [0.80–1.00] |" in paths["table"].read_text()


def test_table_has_a_row_per_group_and_lists_problems(result):
    table = format_table(result)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["group", "n_real", "n_fake"]
    assert any(line.startswith("family:Y") for line in lines)
    assert "0.950 [0.80–1.00]" in table
    overall = next(line for line in lines if line.startswith("overall"))
    assert overall.count("[") == 8, "every metric is printed with its interval"
    assert "boom: corrupt_media" in table


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="deepfakescan")
    command.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def folder_corpus(root: Path) -> Path:
    for name, (label, family, _, _) in CORPUS.items():
        folder = root / ("real" if label == 0 else f"fake/{family}")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")
    return root


def test_eval_command_prints_table_and_writes_outputs(tmp_path, capsys):
    data = folder_corpus(tmp_path / "data")
    args = parse(["eval", str(data), "--out", str(tmp_path / "o"), "--bootstrap", "50"])
    assert command.run(args, score_fn=fake_scan) == 0
    out = capsys.readouterr().out
    assert "family:X" in out and "source:fake/Y" in out
    assert (tmp_path / "o" / "metrics.json").is_file()
    assert f"wrote {tmp_path / 'o'}/metrics.json, metrics.md, scores.csv" in out


def test_eval_without_matplotlib_writes_the_numbers_and_says_how_to_get_the_plots(
    tmp_path, capsys, monkeypatch
):
    from deepfakescan.evaluation import plots

    monkeypatch.setattr(plots, "available", lambda: False)
    data = folder_corpus(tmp_path / "data")
    args = parse(["eval", str(data), "--out", str(tmp_path / "o"), "--bootstrap", "0"])
    assert command.run(args, score_fn=fake_scan) == 0
    captured = capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "metrics.json",
        "metrics.md",
        "scores.csv",
    ]
    assert "wrote" in captured.out and "roc.png" not in captured.out
    assert "matplotlib is not installed (pip install 'deepfakescan[eval]')" in captured.err


def test_plots_know_whether_matplotlib_is_installed(monkeypatch):
    import importlib.util

    from deepfakescan.evaluation import plots

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real_find_spec(name, *a),
    )
    assert not plots.available()


def test_eval_command_json_and_limit(tmp_path, capsys):
    data = folder_corpus(tmp_path / "data")
    args = parse(["eval", str(data), "--json", "--bootstrap", "0", "--limit", "2"])
    assert command.run(args, score_fn=fake_scan) == 0
    overall = json.loads(capsys.readouterr().out)["groups"][0]
    # 2 reals and 2 fakes kept, however many of them failed or abstained
    assert sum(overall[k] for k in ("n_real", "n_fake", "n_errors", "n_unscored")) == 4


def test_eval_command_bad_input_exits_2(tmp_path, capsys):
    assert command.run(parse(["eval", str(tmp_path / "missing")]), score_fn=fake_scan) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "x").mkdir()
    assert command.run(parse(["eval", str(tmp_path / "x")]), score_fn=fake_scan) == 2
    assert "supported layouts" in capsys.readouterr().err
    args = parse(["eval", str(tmp_path), "--threshold", "2"])
    assert command.run(args, score_fn=fake_scan) == 2


def test_eval_command_with_nothing_scored_exits_1(tmp_path):
    data = folder_corpus(tmp_path / "data")

    def refuse(path):
        raise CorruptMedia("nope")

    assert command.run(parse(["eval", str(data), "--bootstrap", "0"]), score_fn=refuse) == 1


# --- false positives of the verdict per real source ---------------------------------------------

# name -> (source, probability, verdict): the verdict is what a user sees, the probability alone
# may sit above the threshold inside the uncertain band, or come from another model
VERDICTS = {
    "p1": ("photo-real", 0.2, "real"),
    "p2": ("photo-real", 0.55, "uncertain"),  # >= threshold, but not called fake
    "p3": ("photo-real", 0.9, "fake"),
    "p4": ("photo-real", 0.1, "real"),
    "v1": ("video-real", 0.3, "real"),
    "v2": ("video-real", None, "uncertain"),  # nothing judged: an abstention, not a fake
    "s1": ("sd-fake", 0.9, "fake"),
}


def verdict_scan(path: Path) -> SimpleNamespace:
    if path.name == "bad":
        raise CorruptMedia("truncated")
    _, prob, verdict = VERDICTS[path.name]
    return SimpleNamespace(fake_probability=prob, verdict=verdict, threshold=0.5)


def verdict_items() -> list[LabelledItem]:
    items = [
        LabelledItem(Path(name), int(source.endswith("fake")), "real", source)
        for name, (source, _, _) in VERDICTS.items()
    ]
    return [*items, LabelledItem(Path("bad"), 0, "real", "video-real")]


def test_real_false_positives_count_the_verdict_per_real_source():
    result = evaluate(verdict_items(), verdict_scan, bootstrap=0)
    photo, video = result.real_sources
    assert (photo.source, photo.n, photo.fake, photo.uncertain, photo.errors) == (
        "photo-real",
        4,
        1,
        1,
        0,
    )
    assert (video.source, video.n, video.fake, video.uncertain, video.errors) == (
        "video-real",
        2,
        0,
        1,
        1,
    )
    assert photo.rate == 0.25 and video.rate == 0.0
    # the table's FPR uses p >= threshold and counts the uncertain 0.55 too
    assert result.group("source", "photo-real").metrics["fpr"] == pytest.approx(2 / 4)
    lo, hi = photo.interval
    assert 0 < lo < 0.25 < hi < 1
    assert video.interval[0] == 0.0 and video.interval[1] > 0.3  # 0 of 2 proves little


def test_real_false_positives_are_printed_and_written():
    result = evaluate(verdict_items(), verdict_scan, bootstrap=0)
    table = format_table(result)
    assert "false positives of the verdict per real source" in table
    line = next(x for x in table.splitlines() if x.strip().startswith("photo-real"))
    assert "1/4 = 25.0% [" in line and "uncertain 1, errors 0" in line
    assert not any(x.strip().startswith("sd-fake ") for x in table.splitlines())
    written = result.to_dict()["real_false_positives"]
    assert [(r["source"], r["fake"], r["n"], r["rate"]) for r in written] == [
        ("photo-real", 1, 4, 0.25),
        ("video-real", 0, 2, 0.0),
    ]


# --- eval on a committed-style manifest, images re-encoded in memory ------------------------------


def photo_png(path: Path, seed: int = 0) -> None:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path, "PNG")


WAV_HEAD = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00"


def manifest_corpus(root: Path) -> Path:
    """A data root with two photos and a 'clip' (any non-image bytes), and a manifest
    elsewhere listing them relative to the root, the clip frame by frame."""
    photo_png(root / "data/images/photo-real/a.png", 0)
    photo_png(root / "data/images/photo-real/b.png", 1)
    (root / "data/video/real").mkdir(parents=True)
    (root / "data/video/real/3.wav").write_bytes(WAV_HEAD + bytes(64))
    manifest = root / "manifests/synthetic_test.csv"
    manifest.parent.mkdir()
    manifest.write_text(
        "path,label,source,frame\n"
        "images/photo-real/a.png,0,photo-real,\n"
        "images/photo-real/b.png,0,photo-real,\n"
        "video/real/3.wav,0,video-real,0\n"
        "video/real/3.wav,0,video-real,1\n"
    )
    return manifest


@pytest.fixture
def scanned(monkeypatch):
    """``deepfakescan.scan`` replaced by a recorder: what each call was handed."""
    import deepfakescan

    seen: dict[str, object] = {}

    def scan(source, *, settings=None, name=None, **_):
        seen[name] = source
        return SimpleNamespace(fake_probability=0.1, verdict="real", threshold=0.5)

    monkeypatch.setattr(deepfakescan, "scan", scan)
    return seen


@pytest.mark.parametrize(("spec", "fmt"), [("webp:80", "webp"), ("jpeg:75", "jpeg")])
def test_reencode_scans_every_image_as_lossy_bytes_and_leaves_clips_alone(
    tmp_path, capsys, scanned, spec, fmt
):
    import io

    import numpy as np
    from PIL import Image

    from deepfakescan.media.sniff import sniff_bytes

    manifest = manifest_corpus(tmp_path)
    args = parse(
        ["eval", str(manifest), "--data-root", str(tmp_path / "data"), "--bootstrap", "0"]
        + ["--reencode", spec, "--json"]
    )
    assert command.run(args) == 0
    assert sorted(scanned) == ["3.wav", "a.png", "b.png"]  # the clip once, not per frame
    assert scanned["3.wav"] == tmp_path / "data/video/real/3.wav"
    original = np.asarray(Image.open(tmp_path / "data/images/photo-real/a.png"), np.float64)
    data = scanned["a.png"]
    assert isinstance(data, bytes) and sniff_bytes(data[:64]) == ("image", fmt)
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float64)
    assert decoded.shape == original.shape
    assert 0 < np.abs(decoded - original).mean() < 80  # lossy, yet the same picture
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert len(notes) == 1 and f"quality {spec.split(':')[1]}" in notes[0]


def test_without_reencode_files_are_scanned_in_place(tmp_path, scanned):
    manifest = manifest_corpus(tmp_path)
    args = parse(["eval", str(manifest), "--data-root", str(tmp_path / "data")])
    assert command.run(args) == 0
    assert scanned["a.png"] == tmp_path / "data/images/photo-real/a.png"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("png:80", "FORMAT one of ['jpeg', 'jpg', 'webp']"),
        ("webp", "FORMAT one of"),
        ("webp:0", "quality must lie in 1..100, got 0"),
        ("webp:101", "quality must lie in 1..100, got 101"),
        ("jpeg:high", "quality 'high' is not a whole number"),
    ],
)
def test_reencode_refuses_what_it_cannot_do(spec, message, capsys):
    with pytest.raises(SystemExit) as info:
        parse(["eval", "x.csv", "--reencode", spec])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_an_image_that_cannot_be_decoded_is_an_error_of_that_file(tmp_path):
    from deepfakescan.config import Settings
    from deepfakescan.errors import DeepfakescanError
    from deepfakescan.evaluation.reencode import parse_reencode, scan_input

    broken = tmp_path / "broken.png"
    broken.write_bytes(PNG_MAGIC + b"\x00" * 40)
    with pytest.raises(DeepfakescanError):
        scan_input(broken, parse_reencode("webp:80"), Settings())

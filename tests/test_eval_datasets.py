"""Corpus adapters on tiny replicas of each layout, with each data set's label polarity pinned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepfakescan.errors import BadInput
from deepfakescan.evaluation.datasets import (
    LAYOUTS,
    LabelledItem,
    detect_layout,
    load_dataset,
    sample_per_class,
)


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def by_name(items: list[LabelledItem]) -> dict[str, LabelledItem]:
    return {item.path.name: item for item in items}


# --- real/ + fake/<family>/ folders -------------------------------------------------------------


def test_folders_give_family_from_fake_subfolder_and_fake_for_loose_files(tmp_path):
    touch(tmp_path, "real/a.jpg", "real/ffhq/b.jpg", "fake/stylegan2/c.png", "fake/d.wav")
    touch(tmp_path, "real/notes.txt", "fake/.hidden.jpg")  # sidecar and hidden: not media
    assert detect_layout(tmp_path) == "folders"
    items = by_name(load_dataset(tmp_path))
    assert set(items) == {"a.jpg", "b.jpg", "c.png", "d.wav"}
    assert (items["a.jpg"].label, items["a.jpg"].family, items["a.jpg"].source) == (
        0,
        "real",
        "real",
    )
    assert (items["b.jpg"].family, items["b.jpg"].source) == ("real", "real/ffhq")
    c = items["c.png"]
    assert (c.label, c.family, c.source) == (1, "stylegan2", "fake/stylegan2")
    assert (items["d.wav"].label, items["d.wav"].family) == (1, "fake")


def test_folders_without_any_file_is_an_error(tmp_path):
    (tmp_path / "real").mkdir()
    with pytest.raises(BadInput, match="no media files"):
        load_dataset(tmp_path)


# --- CSV manifest -------------------------------------------------------------------------------


def test_manifest_reads_words_and_digits_with_1_meaning_fake(tmp_path):
    touch(tmp_path, "x/r.jpg", "x/f.jpg", "y/g.jpg", "z.jpg")
    (tmp_path / "manifest.csv").write_text(
        "path,label,family,source\n"
        "x/r.jpg,real,ignored,\n"
        "x/f.jpg,1,,\n"
        "y/g.jpg,fake,faceswap,web\n"
        "z.jpg,0,,\n"
    )
    assert detect_layout(tmp_path) == "manifest"
    assert detect_layout(tmp_path / "manifest.csv") == "manifest"
    items = by_name(load_dataset(tmp_path / "manifest.csv"))
    assert items["r.jpg"] == LabelledItem(tmp_path / "x/r.jpg", 0, "real", "x")
    assert items["f.jpg"] == LabelledItem(tmp_path / "x/f.jpg", 1, "fake", "x")
    assert items["g.jpg"] == LabelledItem(tmp_path / "y/g.jpg", 1, "faceswap", "web")
    assert items["z.jpg"].label == 0 and items["z.jpg"].source == tmp_path.name


def test_manifest_with_two_columns_and_paths_relative_to_its_folder(tmp_path):
    touch(tmp_path, "sub/a.wav")
    (tmp_path / "sub" / "list.csv").write_text("path,label\na.wav,1\n")
    (item,) = load_dataset(tmp_path / "sub" / "list.csv")
    assert item.path == tmp_path / "sub" / "a.wav" and item.label == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [("file,label\na.jpg,1\n", "header"), ("path,label\na.jpg,maybe\n", "maybe")],
)
def test_manifest_errors_name_the_problem(tmp_path, text, message):
    touch(tmp_path, "a.jpg")
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(BadInput, match=message):
        load_dataset(tmp_path / "m.csv")


def test_manifest_paths_start_from_the_data_root_given(tmp_path):
    touch(tmp_path, "data/images/photo-real/a.png", "data/images/sd-fake/b.webp")
    manifest = tmp_path / "manifests" / "synthetic_test.csv"
    manifest.parent.mkdir()
    manifest.write_text(
        "path,label,source,frame\n"
        "images/photo-real/a.png,0,photo-real,\n"
        "images/sd-fake/b.webp,1,sd-fake,\n"
    )
    items = load_dataset(manifest, data_root=tmp_path / "data")
    assert [(i.path, i.label, i.source) for i in items] == [
        (tmp_path / "data/images/photo-real/a.png", 0, "photo-real"),
        (tmp_path / "data/images/sd-fake/b.webp", 1, "sd-fake"),
    ]


def test_committed_manifest_finds_the_data_root_of_the_environment(tmp_path, monkeypatch):
    """Paths that are not under the manifest's folder are looked up where training reads
    them: ``$DEEPFAKESCAN_DATA_ROOT`` (else ``../shared/data``)."""
    touch(tmp_path, "corpora/images/photo-real/a.png")
    manifest = tmp_path / "manifests" / "m.csv"
    manifest.parent.mkdir()
    manifest.write_text("path,label,source\nimages/photo-real/a.png,0,photo-real\n")
    monkeypatch.setenv("DEEPFAKESCAN_DATA_ROOT", str(tmp_path / "corpora"))
    (item,) = load_dataset(manifest)
    assert item.path == tmp_path / "corpora/images/photo-real/a.png"


def test_manifest_whose_files_are_nowhere_says_where_it_looked_and_how_to_point(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("DEEPFAKESCAN_DATA_ROOT", str(tmp_path / "corpora"))
    (tmp_path / "m.csv").write_text("path,label\nimages/a.png,0\n")
    with pytest.raises(BadInput, match="none of the 1 files") as info:
        load_dataset(tmp_path / "m.csv")
    assert str(tmp_path / "corpora") in info.value.message
    assert "--data-root" in info.value.message


def test_a_clip_listed_frame_by_frame_is_one_video_item(tmp_path):
    touch(tmp_path, "video/real/3.mp4", "video/real/4.mp4", "faces/ffhq-real/x.png")
    (tmp_path / "m.csv").write_text(
        "path,label,source,frame\n"
        "faces/ffhq-real/x.png,0,ffhq-real,\n"
        + "".join(f"video/real/3.mp4,0,video-real,{i}\n" for i in range(10))
        + "".join(f"video/real/4.mp4,0,video-real,{i}\n" for i in range(3))
    )
    items = load_dataset(tmp_path / "m.csv")
    assert [(i.path.name, i.source) for i in items] == [
        ("x.png", "ffhq-real"),
        ("3.mp4", "video-real"),
        ("4.mp4", "video-real"),
    ]


def test_frames_of_one_clip_with_different_labels_are_refused(tmp_path):
    touch(tmp_path, "video/real/3.mp4")
    (tmp_path / "m.csv").write_text(
        "path,label,source,frame\nvideo/real/3.mp4,0,video-real,0\nvideo/real/3.mp4,1,video-real,1\n"
    )
    with pytest.raises(BadInput, match=r"m.csv:3: frames of 3.mp4 disagree"):
        load_dataset(tmp_path / "m.csv")


def test_data_root_is_refused_for_layouts_that_are_not_manifests(tmp_path):
    touch(tmp_path, "real/a.jpg")
    with pytest.raises(BadInput, match="manifests only"):
        load_dataset(tmp_path, data_root=tmp_path)


# --- FaceForensics++ ----------------------------------------------------------------------------


def make_faceforensics(root: Path) -> None:
    touch(
        root,
        "original_sequences/youtube/c23/videos/000.mp4",
        "original_sequences/actors/c23/videos/01__walk.mp4",
        "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4",
        "manipulated_sequences/Deepfakes/masks/videos/000_003.mp4",
        "manipulated_sequences/NeuralTextures/c40/videos/001_002.mp4",
        "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__walk__X.mp4",
    )


def test_faceforensics_originals_are_real_and_manipulations_fake_by_method(tmp_path):
    make_faceforensics(tmp_path)
    assert detect_layout(tmp_path) == "faceforensics"
    items = load_dataset(tmp_path)
    reals = {(i.path.name, i.source) for i in items if i.label == 0}
    assert reals == {("000.mp4", "original/youtube/c23"), ("01__walk.mp4", "original/actors/c23")}
    assert all(i.family == "real" for i in items if i.label == 0)
    fakes = {(i.family, i.source) for i in items if i.label == 1}
    assert fakes == {
        ("Deepfakes", "Deepfakes/c23"),
        ("NeuralTextures", "NeuralTextures/c40"),
        ("DeepFakeDetection", "DeepFakeDetection/c23"),
    }


def test_faceforensics_mask_videos_are_not_listed_as_fakes(tmp_path):
    make_faceforensics(tmp_path)
    assert not any("masks" in item.path.parts for item in load_dataset(tmp_path))


# --- Celeb-DF v2 --------------------------------------------------------------------------------


def make_celebdf(root: Path) -> None:
    touch(root, "Celeb-real/id0_0000.mp4", "YouTube-real/00170.mp4", "Celeb-synthesis/id0_id1.mp4")
    (root / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00170.mp4\n0 Celeb-synthesis/id0_id1.mp4\n1 Celeb-real/id0_0000.mp4\n"
    )


def test_celebdf_list_marks_1_as_real(tmp_path):
    make_celebdf(tmp_path)
    assert detect_layout(tmp_path) == "celebdf"
    items = by_name(load_dataset(tmp_path))
    assert items["00170.mp4"].label == 0 and items["00170.mp4"].family == "real"
    assert items["id0_0000.mp4"].label == 0
    assert items["id0_id1.mp4"].label == 1


def test_celebdf_family_and_source_are_the_top_folder(tmp_path):
    make_celebdf(tmp_path)
    items = by_name(load_dataset(tmp_path))
    assert (items["id0_id1.mp4"].family, items["id0_id1.mp4"].source) == ("Celeb-synthesis",) * 2
    assert items["00170.mp4"].source == "YouTube-real"


def test_celebdf_bad_line_names_its_number(tmp_path):
    make_celebdf(tmp_path)
    (tmp_path / "List_of_testing_videos.txt").write_text("1 YouTube-real/00170.mp4\nREAL x.mp4\n")
    with pytest.raises(BadInput, match=":2:"):
        load_dataset(tmp_path)


# --- DFDC ---------------------------------------------------------------------------------------


def test_dfdc_metadata_label_fake_is_fake_and_part_folder_is_source(tmp_path):
    part = tmp_path / "dfdc_train_part_0"
    touch(part, "aaa.mp4", "bbb.mp4")
    meta = {
        "aaa.mp4": {"label": "FAKE", "split": "train", "original": "bbb.mp4"},
        "bbb.mp4": {"label": "REAL", "split": "train"},
    }
    (part / "metadata.json").write_text(json.dumps(meta))
    assert detect_layout(tmp_path) == "dfdc"
    items = by_name(load_dataset(tmp_path))
    assert items["aaa.mp4"] == LabelledItem(part / "aaa.mp4", 1, "fake", "dfdc_train_part_0")
    assert items["bbb.mp4"] == LabelledItem(part / "bbb.mp4", 0, "real", "dfdc_train_part_0")


def test_dfdc_unknown_label_is_refused(tmp_path):
    touch(tmp_path, "a.mp4")
    (tmp_path / "metadata.json").write_text(json.dumps({"a.mp4": {"label": "fake"}}))
    with pytest.raises(BadInput, match="REAL or FAKE"):
        load_dataset(tmp_path)


# --- ASVspoof 2019 LA ---------------------------------------------------------------------------


def make_asvspoof(la: Path) -> None:
    protocols = la / "ASVspoof2019_LA_cm_protocols"
    protocols.mkdir(parents=True)
    (protocols / "ASVspoof2019.LA.cm.eval.trl.txt").write_text(
        "LA_0039 LA_E_2834763 - A11 spoof\nLA_0014 LA_E_8877452 - - bonafide\n"
    )
    (protocols / "ASVspoof2019.LA.cm.train.trn.txt").write_text(
        "LA_0079 LA_T_1138215 - - bonafide\nLA_0079 LA_T_1271820 - A01 spoof\n"
    )
    touch(
        la,
        "ASVspoof2019_LA_eval/flac/LA_E_2834763.flac",
        "ASVspoof2019_LA_eval/flac/LA_E_8877452.flac",
    )
    touch(
        la,
        "ASVspoof2019_LA_train/flac/LA_T_1138215.flac",
        "ASVspoof2019_LA_train/flac/LA_T_1271820.flac",
    )


def test_asvspoof_bonafide_is_real_and_spoof_is_fake_with_attack_as_family(tmp_path):
    make_asvspoof(tmp_path)
    assert detect_layout(tmp_path) == "asvspoof2019-la"
    items = by_name(load_dataset(tmp_path))
    spoof, bona = items["LA_E_2834763.flac"], items["LA_E_8877452.flac"]
    assert (spoof.label, spoof.family, spoof.source) == (1, "A11", "ASVspoof2019_LA_eval")
    assert (bona.label, bona.family) == (0, "real")
    assert spoof.path == tmp_path / "ASVspoof2019_LA_eval" / "flac" / "LA_E_2834763.flac"


def test_asvspoof_split_flag_chooses_the_protocol_and_la_folder_is_found(tmp_path):
    make_asvspoof(tmp_path / "LA")
    assert detect_layout(tmp_path) == "asvspoof2019-la"
    items = by_name(load_dataset(tmp_path, split="train"))
    assert set(items) == {"LA_T_1138215.flac", "LA_T_1271820.flac"}
    assert items["LA_T_1271820.flac"].family == "A01"
    with pytest.raises(BadInput, match="dev"):
        load_dataset(tmp_path, split="dev")  # protocol file absent in the replica
    with pytest.raises(BadInput, match="available splits"):
        load_dataset(tmp_path, split="test")


# --- In-the-Wild --------------------------------------------------------------------------------


def test_in_the_wild_bona_fide_is_real_and_spoof_is_fake(tmp_path):
    touch(tmp_path, "0.wav", "1.wav")
    (tmp_path / "meta.csv").write_text(
        "file,speaker,label\n0.wav,Alec Guinness,spoof\n1.wav,Alec Guinness,bona-fide\n"
    )
    assert detect_layout(tmp_path) == "in-the-wild"
    items = by_name(load_dataset(tmp_path))
    assert (items["0.wav"].label, items["0.wav"].family) == (1, "fake")
    assert (items["1.wav"].label, items["1.wav"].family) == (0, "real")


def test_in_the_wild_other_label_words_are_refused(tmp_path):
    touch(tmp_path, "0.wav")
    (tmp_path / "meta.csv").write_text("file,speaker,label\n0.wav,X,bonafide\n")
    with pytest.raises(BadInput, match="bona-fide or spoof"):
        load_dataset(tmp_path)


# --- detection, overrides, errors ---------------------------------------------------------------


def test_unknown_layout_error_lists_every_supported_layout(tmp_path):
    touch(tmp_path, "random/file.jpg")
    with pytest.raises(BadInput) as info:
        load_dataset(tmp_path)
    for name in LAYOUTS:
        assert name in info.value.message


def test_layout_flag_overrides_detection_and_unknown_names_are_listed(tmp_path):
    make_celebdf(tmp_path)
    touch(tmp_path, "real/x.jpg")
    assert {i.path.name for i in load_dataset(tmp_path, "folders")} == {"x.jpg"}
    with pytest.raises(BadInput, match="supported layouts"):
        load_dataset(tmp_path, "kinetics")


def test_a_listing_whose_files_all_miss_points_at_a_wrong_root(tmp_path):
    (tmp_path / "meta.csv").write_text("file,speaker,label\n0.wav,X,spoof\n")
    with pytest.raises(BadInput, match="none of the 1 files"):
        load_dataset(tmp_path)


def test_some_missing_files_are_kept_for_the_evaluation_to_report(tmp_path):
    touch(tmp_path, "0.wav")
    (tmp_path / "meta.csv").write_text("file,speaker,label\n0.wav,X,spoof\n1.wav,X,spoof\n")
    assert len(load_dataset(tmp_path)) == 2


def test_missing_root_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        load_dataset(tmp_path / "nope")


def test_sample_per_class_is_deterministic_capped_and_ordered(tmp_path):
    items = [LabelledItem(tmp_path / f"{i}", int(i % 3 == 0), "f", "s") for i in range(30)]
    a = sample_per_class(items, 4, seed=1)
    assert a == sample_per_class(items, 4, seed=1)
    assert sum(i.label for i in a) == 4 and sum(1 - i.label for i in a) == 4
    assert a == [i for i in items if i in a]
    assert sample_per_class(items, 100) == items

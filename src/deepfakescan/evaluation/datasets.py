"""Labelled corpora: list the files of a data set with their label, family and source.

An adapter only lists files: it reads folder names, manifests and protocol files and never
decodes media, so it is fast and testable on empty files. Each public data set states its
labels in its own way (Celeb-DF writes 1 for *real*, ASVspoof writes ``bonafide``/``spoof``);
every adapter translates to one convention, ``label == 1`` means fake, and the tests pin each
data set's polarity as its documentation states it.

Files a protocol lists but that are missing on disk are kept (the evaluation counts them as
errors, visibly); only a list where *no* file exists is refused, since the root is then wrong.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInput
from ..training import paths

REAL = "real"
FAKE = "fake"
"""Family of fakes whose method the data set does not name."""

# Sidecar files found beside media in corpora; everything else is listed and left to the scanner
# (which sniffs the bytes), so a misnamed media file is scanned and a stray file is a visible error.
SIDECAR_SUFFIXES = {".txt", ".json", ".csv", ".md", ".xml", ".yaml", ".yml", ".log", ".db", ".ini"}

ASVSPOOF_SPLITS = {"train": "train.trn", "dev": "dev.trl", "eval": "eval.trl"}

FACEFORENSICS_MASKS = "masks"

"""Where the committed manifests' paths start: the same variable and default as training's
``training/paths.py`` (evaluation sits below training and does not import it)."""


@dataclass(frozen=True)
class LabelledItem:
    """One file of a corpus and what the corpus says it is."""

    path: Path
    label: int
    """1 = fake, 0 = real."""
    family: str
    """Manipulation method for fakes (e.g. ``Deepfakes``, ``A07``); ``"real"`` for reals."""
    source: str
    """Top folder or data set part the file comes from, to expose per-source shortcuts."""


def _media_files(folder: Path) -> list[Path]:
    """Every non-hidden, non-sidecar file below ``folder``, sorted for a stable order."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.suffix.lower() not in SIDECAR_SUFFIXES
    )


def _require_some_exist(items: list[LabelledItem], listing: Path) -> list[LabelledItem]:
    if not items:
        raise BadInput(f"{listing} lists no files")
    if not any(item.path.exists() for item in items):
        raise BadInput(
            f"none of the {len(items)} files listed in {listing} exists "
            f"(first expected at {items[0].path}); is the data set's root right?"
        )
    return items


def load_folders(root: Path) -> list[LabelledItem]:
    """``real/**`` and ``fake/<family>/**`` (files directly in ``fake/`` get family "fake").

    Source is the first two folders (``real/ffhq``, ``fake/stylegan2``), or ``real`` / ``fake``
    for files directly inside them.
    """
    items = []
    for label, top in ((0, REAL), (1, FAKE)):
        folder = root / top
        if not folder.is_dir():
            continue
        for path in _media_files(folder):
            rel = path.relative_to(folder).parts
            sub = rel[0] if len(rel) > 1 else None
            family = REAL if label == 0 else (sub or FAKE)
            source = f"{top}/{sub}" if sub else top
            items.append(LabelledItem(path, label, family, source))
    if not items:
        raise BadInput(f"no media files under {root / REAL} or {root / FAKE}")
    return items


def _parse_label(text: str, where: str) -> int:
    value = text.strip().lower()
    if value in ("real", "0"):
        return 0
    if value in ("fake", "1"):
        return 1
    raise BadInput(f"{where}: label {text!r} is not real/fake or 0/1 (1 = fake)")


def _manifest_rows(manifest: Path) -> list[tuple[int, dict[str, str]]]:
    """The manifest's rows with their line numbers; ``BadInput`` for a header without
    ``path`` and ``label``."""
    with manifest.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        if "path" not in header or "label" not in header:
            raise BadInput(
                f"{manifest}: header must start path,label[,family][,source][,frame]; got {header}"
            )
        reader.fieldnames = header
        return [(line, row) for line, row in enumerate(reader, start=2)]


def _manifest_item(row: dict[str, str], where: str, base: Path) -> LabelledItem:
    rel = (row.get("path") or "").strip()
    if not rel:
        raise BadInput(f"{where}: empty path")
    label = _parse_label(row.get("label") or "", where)
    family = (row.get("family") or "").strip() or FAKE
    parts = Path(rel).parts
    source = (row.get("source") or "").strip() or (parts[0] if len(parts) > 1 else base.name)
    return LabelledItem(base / rel, label, REAL if label == 0 else family, source)


def _manifest_items(
    rows: list[tuple[int, dict[str, str]]], manifest: Path, base: Path
) -> list[LabelledItem]:
    """One item per row, except that rows naming frames of one clip become one item: the
    clip, scanned as a video (a scan samples its own frames)."""
    items: list[LabelledItem] = []
    clips: dict[Path, LabelledItem] = {}
    for line, row in rows:
        where = f"{manifest}:{line}"
        item = _manifest_item(row, where, base)
        if (row.get("frame") or "").strip():
            first = clips.setdefault(item.path, item)
            if first is not item:
                if first != item:
                    raise BadInput(
                        f"{where}: frames of {item.path.name} disagree on label, family or "
                        f"source ({first.label}/{first.family}/{first.source} on an earlier "
                        f"row, {item.label}/{item.family}/{item.source} here)"
                    )
                continue
        items.append(item)
    return items


def load_manifest(manifest: Path, root: Path | None = None) -> list[LabelledItem]:
    """A CSV with header ``path,label[,family][,source][,frame]``; label real/fake or 0/1.

    Paths are relative to ``root`` when given. Otherwise they are relative to the manifest's
    folder, or, when not one listed file exists there, to ``training.paths.data_root()`` (so the
    committed split manifests evaluate from the checkout as they train). Family defaults to
    "fake" for fakes and is always "real" for reals; source defaults to the first folder of
    the path. Rows with a ``frame`` name one frame of a video; a clip listed frame by frame
    is one item (the clip), so each clip counts once.
    """
    rows = _manifest_rows(manifest)
    bases = [Path(root)] if root is not None else [manifest.parent, paths.data_root()]
    tried = []
    for base in bases:
        items = _manifest_items(rows, manifest, base)
        if not items:
            raise BadInput(f"{manifest} lists no files")
        if any(item.path.exists() for item in items):
            return items
        tried.append(str(base))
    raise BadInput(
        f"none of the {len(items)} files listed in {manifest} exists under "
        f"{' or '.join(tried)} (first: {rows[0][1].get('path')}); give the folder the paths "
        f"start from with --data-root (or {paths.DATA_ROOT_ENV})"
    )


def load_faceforensics(root: Path) -> list[LabelledItem]:
    """FaceForensics++: reals in ``original_sequences/<source>/<compression>/videos/*.mp4``,
    fakes in ``manipulated_sequences/<method>/<compression>/videos/*.mp4`` (family = method).

    ``masks/`` folders hold mask videos, not fakes, and are skipped. Every compression found is
    listed; the source names it (``original/youtube/c23``, ``Deepfakes/c23``) so the table shows
    each separately.
    """
    items = []
    for label, top in ((0, "original_sequences"), (1, "manipulated_sequences")):
        for video in sorted((root / top).glob("*/*/videos/*.mp4")):
            group, compression = video.parts[-4], video.parts[-3]
            if compression == FACEFORENSICS_MASKS:
                continue
            if label == 0:
                items.append(LabelledItem(video, 0, REAL, f"original/{group}/{compression}"))
            else:
                items.append(LabelledItem(video, 1, group, f"{group}/{compression}"))
    if not items:
        raise BadInput(f"no videos at {root}/{{original,manipulated}}_sequences/*/*/videos/*.mp4")
    return items


CELEBDF_LIST = "List_of_testing_videos.txt"


def load_celebdf(root: Path) -> list[LabelledItem]:
    """Celeb-DF v2 test list: lines ``<label> <relpath>`` where **1 means real**, 0 fake.

    The list writes 1 for real videos and 0 for synthesised ones, the opposite of our label.
    Family of fakes and source are the top folder (``Celeb-synthesis``, ``Celeb-real``,
    ``YouTube-real``).
    """
    listing = root / CELEBDF_LIST
    items = []
    for line_no, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=1)
        if len(fields) != 2 or fields[0] not in ("0", "1"):
            raise BadInput(
                f"{listing}:{line_no}: expected '<1 real | 0 fake> <path>', got {line!r}"
            )
        rel = fields[1].strip()
        top = Path(rel).parts[0]
        if fields[0] == "1":
            items.append(LabelledItem(root / rel, 0, REAL, top))
        else:
            items.append(LabelledItem(root / rel, 1, top, top))
    return _require_some_exist(items, listing)


def _dfdc_metadata_files(root: Path) -> list[Path]:
    return sorted(p for p in [root / "metadata.json", *root.glob("*/metadata.json")] if p.is_file())


def load_dfdc(root: Path) -> list[LabelledItem]:
    """DFDC: a ``metadata.json`` per part folder, ``{"x.mp4": {"label": "REAL"|"FAKE", ...}}``.

    DFDC does not name the method of each fake, so fakes get family "fake"; the source is the
    part folder (``dfdc_train_part_0``).
    """
    items = []
    for meta in _dfdc_metadata_files(root):
        try:
            entries = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise BadInput(f"{meta}: not readable JSON ({e})") from e
        if not isinstance(entries, dict):
            raise BadInput(f"{meta}: expected an object of file name -> {{'label': ...}}")
        source = meta.parent.name if meta.parent != root else root.name
        for name, info in sorted(entries.items()):
            label_text = info.get("label") if isinstance(info, dict) else None
            if label_text not in ("REAL", "FAKE"):
                raise BadInput(f"{meta}: {name!r} has label {label_text!r}, expected REAL or FAKE")
            label = int(label_text == "FAKE")
            items.append(LabelledItem(meta.parent / name, label, FAKE if label else REAL, source))
    if not items:
        raise BadInput(f"no metadata.json entries under {root}")
    return _require_some_exist(items, root)


ASVSPOOF_PROTOCOLS = "ASVspoof2019_LA_cm_protocols"


def _asvspoof_root(root: Path) -> Path:
    """The folder holding the protocols: the root itself or its ``LA/`` (as the zip unpacks)."""
    return root / "LA" if (root / "LA" / ASVSPOOF_PROTOCOLS).is_dir() else root


def load_asvspoof2019_la(root: Path, split: str = "eval") -> list[LabelledItem]:
    """ASVspoof 2019 LA: ``ASVspoof2019.LA.cm.<split>.txt`` lines ``SPEAKER UTT - ATTACK KEY``.

    ``KEY`` is ``bonafide`` (real) or ``spoof`` (fake); the attack (A01..A19, ``-`` for
    bonafide) is the family. Audio lives at ``ASVspoof2019_LA_<split>/flac/<UTT>.flac``. The
    eval split is the default because its attacks A07-A19 are mostly unseen in train/dev.
    """
    if split not in ASVSPOOF_SPLITS:
        raise BadInput(
            f"unknown ASVspoof split {split!r}; available splits = {list(ASVSPOOF_SPLITS)}"
        )
    la = _asvspoof_root(root)
    protocol = la / ASVSPOOF_PROTOCOLS / f"ASVspoof2019.LA.cm.{ASVSPOOF_SPLITS[split]}.txt"
    if not protocol.is_file():
        raise BadInput(f"no protocol for split {split!r} at {protocol}")
    audio = la / f"ASVspoof2019_LA_{split}" / "flac"
    source = f"ASVspoof2019_LA_{split}"
    items = []
    for line_no, line in enumerate(protocol.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 5 or fields[4] not in ("bonafide", "spoof"):
            expected = "'SPEAKER UTT - ATTACK bonafide|spoof'"
            raise BadInput(f"{protocol}:{line_no}: expected {expected}, got {line!r}")
        _, utt, _, attack, key = fields
        if key == "bonafide":
            items.append(LabelledItem(audio / f"{utt}.flac", 0, REAL, source))
        else:
            items.append(LabelledItem(audio / f"{utt}.flac", 1, attack, source))
    return _require_some_exist(items, protocol)


def load_in_the_wild(root: Path) -> list[LabelledItem]:
    """In-the-Wild: ``meta.csv`` with columns ``file,speaker,label``, label ``bona-fide``/``spoof``.

    The data set does not name how each spoof was made, so fakes get family "fake".
    """
    meta = root / "meta.csv"
    items = []
    with meta.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not {"file", "label"} <= set(reader.fieldnames or []):
            raise BadInput(f"{meta}: expected columns file,speaker,label; got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            label_text = (row.get("label") or "").strip()
            if label_text not in ("bona-fide", "spoof"):
                raise BadInput(f"{meta}:{line}: label {label_text!r} is not bona-fide or spoof")
            label = int(label_text == "spoof")
            path = root / row["file"].strip()
            items.append(LabelledItem(path, label, FAKE if label else REAL, "in-the-wild"))
    return _require_some_exist(items, meta)


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    detect: Callable[[Path], bool]
    load: Callable[..., list[LabelledItem]]


def _is_manifest(root: Path) -> bool:
    return (root.is_file() and root.suffix.lower() == ".csv") or (root / "manifest.csv").is_file()


def _load_manifest_at(root: Path, data_root: Path | None = None) -> list[LabelledItem]:
    return load_manifest(root if root.is_file() else root / "manifest.csv", data_root)


# Detection order matters only where markers could coexist: the public layouts' marker files are
# specific, the generic real/ + fake/ folders come last.
LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            "manifest",
            "CSV file (or manifest.csv) with header path,label[,family][,source][,frame]",
            _is_manifest,
            _load_manifest_at,
        ),
        Layout(
            "faceforensics",
            "FaceForensics++: original_sequences/ and manipulated_sequences/",
            lambda r: (r / "original_sequences").is_dir() or (r / "manipulated_sequences").is_dir(),
            load_faceforensics,
        ),
        Layout(
            "celebdf",
            f"Celeb-DF v2: {CELEBDF_LIST} (1 = real)",
            lambda r: (r / CELEBDF_LIST).is_file(),
            load_celebdf,
        ),
        Layout(
            "asvspoof2019-la",
            f"ASVspoof 2019 LA: {ASVSPOOF_PROTOCOLS}/ (or LA/{ASVSPOOF_PROTOCOLS}/)",
            lambda r: (_asvspoof_root(r) / ASVSPOOF_PROTOCOLS).is_dir(),
            load_asvspoof2019_la,
        ),
        Layout(
            "in-the-wild",
            "In-the-Wild audio: meta.csv with file,speaker,label",
            lambda r: (r / "meta.csv").is_file(),
            load_in_the_wild,
        ),
        Layout(
            "dfdc",
            "DFDC: metadata.json in the folder or in each part folder",
            lambda r: bool(_dfdc_metadata_files(r)),
            load_dfdc,
        ),
        Layout(
            "folders",
            "real/ and fake/<family>/ folders (files directly in fake/ are family 'fake')",
            lambda r: (r / REAL).is_dir() or (r / FAKE).is_dir(),
            load_folders,
        ),
    )
}


def _supported() -> str:
    return "; ".join(f"{layout.name} ({layout.description})" for layout in LAYOUTS.values())


def detect_layout(root: str | Path) -> str:
    """Name of the layout whose marker files ``root`` has; ``BadInput`` listing them if none."""
    root = Path(root)
    if not root.exists():
        raise BadInput(f"{root} does not exist")
    if root.is_dir():
        for layout in LAYOUTS.values():
            if layout.detect(root):
                return layout.name
    elif _is_manifest(root):
        return "manifest"
    raise BadInput(f"cannot tell the layout of {root}; supported layouts: {_supported()}")


def load_dataset(
    root: str | Path,
    layout: str | None = None,
    *,
    split: str = "eval",
    data_root: str | Path | None = None,
) -> list[LabelledItem]:
    """List a labelled corpus, detecting its layout from marker files unless ``layout`` is given.

    ``split`` chooses the ASVspoof 2019 LA protocol (train, dev, eval) and is ignored elsewhere.
    ``data_root`` is the folder a manifest's relative paths start from (see
    :func:`load_manifest` for the default); other layouts refuse it.
    """
    root = Path(root)
    name = layout or detect_layout(root)
    if name not in LAYOUTS:
        raise BadInput(f"unknown layout {name!r}; supported layouts: {_supported()}")
    if not root.exists():
        raise BadInput(f"{root} does not exist")
    if name != "manifest" and not root.is_dir():
        raise BadInput(f"layout {name!r} needs a folder, and {root} is a file")
    if data_root is not None and name != "manifest":
        raise BadInput(f"a data root applies to manifests only, and {root} is {name!r}")
    try:
        if name == "manifest":
            return _load_manifest_at(root, None if data_root is None else Path(data_root))
        if name == "asvspoof2019-la":
            return LAYOUTS[name].load(root, split)
        return LAYOUTS[name].load(root)
    except FileNotFoundError as e:
        raise BadInput(f"{root} is not a {name} layout: missing {e.filename}") from e
    except UnicodeDecodeError as e:
        raise BadInput(f"{root}: a {name} listing is not UTF-8 text ({e})") from e


def sample_per_class(
    items: Iterable[LabelledItem], limit: int, seed: int = 0
) -> list[LabelledItem]:
    """At most ``limit`` reals and ``limit`` fakes, drawn without replacement, order preserved.

    For quick runs on big corpora: the same seed always keeps the same files, and drawing at
    random (rather than the first N) keeps every family and source in proportion.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    items = list(items)
    rng = np.random.default_rng(seed)
    keep: set[int] = set()
    for label in (0, 1):
        idx = [i for i, item in enumerate(items) if item.label == label]
        if len(idx) > limit:
            idx = list(rng.choice(idx, size=limit, replace=False))
        keep.update(int(i) for i in idx)
    return [item for i, item in enumerate(items) if i in keep]

"""The audio corpus: speaker-disjoint splits, generated fakes, window and feature caches.

Three steps, each resumable (files that exist are kept):

1. :func:`plan_corpus` decides, from the file names under the data root and a seed, which
   recording goes to train / val / test (by speaker) and which fakes are made from it. The
   result is written as committed manifests ``data/manifests/audio_*.csv`` (through
   :mod:`..manifest`) with columns ``path,label,family,source,speaker,origin``. ``path`` is
   relative to the *work dir* (``$DEEPFAKESCAN_CACHE_DIR/audio``), where
   ``speech/`` links to the data root and ``generated/`` holds the fakes we make, so
   ``deepfakescan eval WORK/audio_test.csv`` reads the same files the card reports on.
2. :func:`generate` makes every ``generated/...`` file from its ``origin`` (vocoder
   copy-synthesis of a real recording, or a TTS recipe ``espeak:voice+variant:sentence``);
   the ``tinynsf`` family first needs our small neural vocoder, which :func:`ensure_vocoder`
   trains on the train split's real speech.
3. :func:`build_split_cache` decodes each file exactly as ``scan()`` does
   (``media.audio.load_audio``), pushes training clips through the same random chain whatever
   their class (:mod:`.augment`), cuts windows with :class:`features.Windower` and keeps the
   voiced ones as float32 samples in ``WORK/cache/<split>-windows-*.npz``; :func:`featurise`
   turns them into ``features.window_features`` (cached beside them).

Splits: LibriSpeech by speaker id (one utterance per speaker); FSDD by speaker (george,
jackson, lucas, nicolas train; theo val; yweweler test); LJSpeech is one speaker, split by file
(it cannot be speaker-held-out); nsf-vocoded-fake by ARCTIC speaker (bdl, clb train; rms val;
slt test); espeak-ng by voice variant; festival (one voice) by sentence; the LibriTTS pair
is test-only.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import features as F
from ...config import Settings
from .. import paths
from . import synth as S
from .augment import augment

SPLITS = ("train", "val", "test")

NEURAL_FAMILY = "tinynsf"
"""Copy-synthesis through our own small neural source-filter vocoder (``vocoders/``)."""
COPY_FAMILIES = (*S.VOCODER_FAMILIES, NEURAL_FAMILY)
"""Fakes made from every real recording that gets fakes, one per family."""
VOCODER_FILE = "vocoder/tinynsf.pt"
VOCODER_SOURCES = ("librispeech-real", "ljspeech-real")
MAX_SYNTH_SECONDS = 10.0
"""Fakes made from a real recording use its first 10 s (after trimming silence)."""
FSDD_SPEAKERS = {
    "train": ("george", "jackson", "lucas", "nicolas"),
    "val": ("theo",),
    "test": ("yweweler",),
}
FSDD_REAL_PER_SPEAKER = {"train": 120, "val": 40, "test": 50}
FSDD_FAKE_PER_SPEAKER = {"train": 40, "val": 12, "test": 20}
NSF_SPEAKERS = {"train": ("bdl", "clb"), "val": ("rms",), "test": ("slt",)}
LIBRI_FRACTIONS = (0.7, 0.15, 0.15)
ESPEAK_COUNT = {"train": 200, "val": 40, "test": 60}
FESTIVAL_TAKES = {"train": 2, "val": 1, "test": 3}
LEAVE_OUT_SOURCE = "nsf-vocoded-fake"


@dataclass(frozen=True)
class Row:
    """One file of the corpus (a manifest line)."""

    path: str
    label: str
    family: str
    source: str
    speaker: str
    origin: str = ""

    @property
    def y(self) -> int:
        return 1 if self.label == "fake" else 0


def _seed_for(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def _rng(seed: int, *parts: object) -> np.random.Generator:
    return np.random.default_rng([seed, _seed_for(*parts)])


# -------------------------------------------------------------------------------- planning


def _lj_texts(data_root: Path) -> list[str]:
    meta = data_root / "speech" / "ljspeech-real" / "metadata.csv"
    if not meta.is_file():
        return []
    texts = []
    for line in meta.read_text(encoding="utf-8").splitlines():
        parts = line.split("|")
        if len(parts) >= 2:
            words = parts[-1].split()[:22]  # keep TTS utterances a few seconds long
            texts.append(" ".join(words))
    return texts


def _tts_texts(data_root: Path) -> list[str]:
    """What the TTS families say: our sentences, then LJSpeech's transcripts."""
    return list(S.SENTENCES) + _lj_texts(data_root)


Planned = Iterator[tuple[str, Row]]
"""(split, row) pairs, in manifest order."""


def _real_and_fakes(split: str, rel: str, source: str, speaker: str, fakes: bool) -> Planned:
    """A real recording and, when ``fakes``, one copy of it per :data:`COPY_FAMILIES`."""
    yield split, Row(rel, "real", "real", source, speaker)
    if fakes:
        stem = Path(rel).stem
        for fam in COPY_FAMILIES:
            path = f"generated/{fam}/{source}/{stem}.wav"
            yield split, Row(path, "fake", fam, f"{fam}/{source}", speaker, rel)


def _plan_librispeech(data_root: Path, seed: int) -> Planned:
    """By speaker id (file names are speaker-chapter-utterance), in :data:`LIBRI_FRACTIONS`."""
    files = sorted((data_root / "speech" / "librispeech-real").glob("*.flac"))
    speakers = sorted({p.name.split("-")[0] for p in files})
    order = _rng(seed, "libri").permutation(len(speakers))
    n_train = int(round(LIBRI_FRACTIONS[0] * len(speakers)))
    n_val = int(round(LIBRI_FRACTIONS[1] * len(speakers)))
    split_of = {
        speakers[i]: "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
        for rank, i in enumerate(order)
    }
    for p in files:
        spk = p.name.split("-")[0]
        rel = f"speech/librispeech-real/{p.name}"
        yield from _real_and_fakes(split_of[spk], rel, "librispeech-real", spk, True)


def _plan_ljspeech(data_root: Path, seed: int) -> Planned:
    """One speaker, so split by file (it cannot be speaker-held-out)."""
    files = sorted((data_root / "speech" / "ljspeech-real").glob("*.wav"))
    for i, p in enumerate(files):
        split = (
            "train"
            if i < int(0.625 * len(files))
            else "val"
            if i < int(0.8125 * len(files))
            else "test"
        )
        yield from _real_and_fakes(
            split, f"speech/ljspeech-real/{p.name}", "ljspeech-real", "lj", True
        )


def _plan_fsdd(data_root: Path, seed: int) -> Planned:
    """By speaker; a seeded subset of each speaker's 500 clips, the first few with fakes."""
    for split, spks in FSDD_SPEAKERS.items():
        for spk in spks:
            files = sorted((data_root / "speech" / "fsdd-real").glob(f"*_{spk}_*.wav"))
            pick = _rng(seed, "fsdd", spk).permutation(len(files))[: FSDD_REAL_PER_SPEAKER[split]]
            for k, i in enumerate(sorted(pick)):
                rel = f"speech/fsdd-real/{files[i].name}"
                yield from _real_and_fakes(
                    split, rel, "fsdd-real", spk, k < FSDD_FAKE_PER_SPEAKER[split]
                )


def _plan_nsf(data_root: Path, seed: int) -> Planned:
    """Collected fakes (NSF vocoders on CMU ARCTIC), by ARCTIC speaker."""
    for p in sorted((data_root / "speech" / "nsf-vocoded-fake").glob("*.wav")):
        spk = p.stem.split("_arctic_")[0].rsplit("_", 1)[-1]
        split = next((s for s, v in NSF_SPEAKERS.items() if spk in v), None)
        if split:
            rel = f"speech/nsf-vocoded-fake/{p.name}"
            yield split, Row(rel, "fake", "nsf", "nsf-vocoded-fake", spk)


def _plan_libritts(data_root: Path, seed: int) -> Planned:
    """LibriTTS reals and their neural-vocoder copies: evaluation only."""
    for source, label, family in (
        ("libritts-real", "real", "real"),
        ("libritts-vocoded-fake", "fake", "libritts-vocoder"),
    ):
        for p in sorted((data_root / "speech" / source).glob("*.flac")):
            yield (
                "test",
                Row(f"speech/{source}/{p.name}", label, family, source, p.stem.split("_")[0]),
            )


def _plan_espeak(data_root: Path, seed: int) -> Planned:
    """espeak-ng: voices drawn at random, split by variant (the variant is the "speaker")."""
    texts = _tts_texts(data_root)
    for split in SPLITS:
        rng = _rng(seed, "espeak", split)
        variants = S.ESPEAK_VARIANTS[split]
        for k in range(ESPEAK_COUNT[split]):
            voice = S.ESPEAK_VOICES[int(rng.integers(len(S.ESPEAK_VOICES)))]
            variant = variants[k % len(variants)]
            t = int(rng.integers(len(texts)))
            name = f"generated/espeak/{split}/{k:04d}_{voice}+{variant}.wav"
            yield (
                split,
                Row(name, "fake", "espeak", "espeak", variant, f"espeak:{voice}+{variant}:{t}"),
            )


def _plan_festival(data_root: Path, seed: int) -> Planned:
    """festival (one voice): split by sentence, several takes of each."""
    for i in range(len(_tts_texts(data_root))):
        split = "train" if i % 5 < 3 else "val" if i % 5 == 3 else "test"
        for rep in range(FESTIVAL_TAKES[split]):
            name = f"generated/festival/{split}/{i:03d}_{rep}.wav"
            yield split, Row(name, "fake", "festival", "festival", "kal", f"festival:kal:{i}:{rep}")


PLANNERS = (
    _plan_librispeech,
    _plan_ljspeech,
    _plan_fsdd,
    _plan_nsf,
    _plan_libritts,
    _plan_espeak,
    _plan_festival,
)
"""One per source, in manifest order."""


def plan_corpus(data_root: Path, seed: int = 0) -> dict[str, list[Row]]:
    """Every file of every split, deterministic given the data root's file names and ``seed``."""
    rows: dict[str, list[Row]] = {s: [] for s in SPLITS}
    for planner in PLANNERS:
        for split, row in planner(Path(data_root), seed):
            rows[split].append(row)
    return rows


def vocoder_clips(train_rows: Iterable[Row], work_dir: Path) -> list[np.ndarray]:
    """What ``tinynsf`` learns from: the train split's wideband real speech (LibriSpeech and
    LJSpeech; FSDD is 8 kHz), trimmed and cut like the clips it will copy."""
    return [
        S.trim_silence(decode(work_dir / r.path))[: int(MAX_SYNTH_SECONDS * F.SAMPLE_RATE)]
        for r in train_rows
        if r.label == "real" and r.source in VOCODER_SOURCES
    ]


def ensure_vocoder(train_rows: list[Row], work_dir: Path, seed: int = 0, log=print) -> None:
    """Train ``WORK/vocoder/tinynsf.pt`` (seeded, resumable) unless it exists: every
    ``tinynsf`` fake, in every split, is made by this one model."""
    if (work_dir / VOCODER_FILE).is_file():
        return
    from ..vocoders import train as NV

    clips = vocoder_clips(train_rows, work_dir)
    log(f"training the tinynsf vocoder on {len(clips)} train-split recordings")
    NV.train_vocoder(clips, work_dir / VOCODER_FILE, seed=seed, log=log)


def leave_one_out(
    rows: dict[str, list[Row]], source: str = LEAVE_OUT_SOURCE
) -> dict[str, list[Row]]:
    """Splits for the generalisation run: ``source`` out of train and val; test = test reals +
    every file of ``source`` (none of them was seen)."""
    every = [r for split in SPLITS for r in rows[split] if r.source == source]
    return {
        "train": [r for r in rows["train"] if r.source != source],
        "val": [r for r in rows["val"] if r.source != source],
        "test": [r for r in rows["test"] if r.label == "real"] + every,
    }


def manifest_paths(manifest_dir: Path | None = None) -> dict[str, Path]:
    """The six audio manifests (``train``... and ``loo_train``...) in ``manifest_dir``."""
    manifest_dir = paths.manifest_dir() if manifest_dir is None else Path(manifest_dir)
    names = {s: f"audio_{s}.csv" for s in SPLITS}
    names |= {f"loo_{s}": f"audio_loo_{s}.csv" for s in SPLITS}
    return {k: manifest_dir / v for k, v in names.items()}


def prepare_work_dir(work_dir: Path, data_root: Path, manifest_dir: Path | None = None) -> None:
    """Link ``WORK/speech`` to the data root and copy the manifests beside it, so manifest paths
    resolve for training and for ``deepfakescan eval`` without copying a single recording."""
    work_dir.mkdir(parents=True, exist_ok=True)
    link = work_dir / "speech"
    target = (data_root / "speech").resolve()
    if link.is_symlink() and Path(os.readlink(link)) != target:
        link.unlink()
    if not link.exists():
        link.symlink_to(target, target_is_directory=True)
    for path in manifest_paths(manifest_dir).values():
        if path.is_file():
            (work_dir / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")


# ------------------------------------------------------------------------------ generation


def _make_one(args: tuple[str, str, str, int]) -> str | None:
    work, path, origin, seed = args
    out = Path(work) / path
    if out.is_file():
        return None
    rng = _rng(seed, path)
    family = path.split("/")[1]
    try:
        if family in COPY_FAMILIES:
            y = S.trim_silence(decode(Path(work) / origin))[
                : int(MAX_SYNTH_SECONDS * F.SAMPLE_RATE)
            ]
            if family == NEURAL_FAMILY:
                fake = _tinynsf(Path(work) / VOCODER_FILE, y, rng)
            else:
                fake = S.VOCODERS[family](y, rng)
        elif family == "espeak":
            _, voice_variant, t = origin.split(":")
            voice, variant = voice_variant.split("+")
            fake = S.espeak(_texts(work)[int(t)], voice, variant, rng)
        elif family == "festival":
            fake = S.festival(_texts(work)[int(origin.split(":")[2])], rng)
        else:
            return f"{path}: unknown family {family}"
        S.save_wav(out, fake)
    except Exception as e:  # report and go on: one bad file must not stop a 20-minute job
        return f"{path}: {type(e).__name__}: {e}"
    return None


def _tinynsf(model_path: Path, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import torch

    from ..vocoders import train as NV

    torch.set_num_threads(1)  # one generating process per core already
    return NV.vocode(NV.load_vocoder(str(model_path)), y, rng)


_TEXTS: list[str] | None = None


def _texts(work: str) -> list[str]:
    global _TEXTS
    if _TEXTS is None:
        _TEXTS = _tts_texts(Path(work).resolve() / "speech" / "..")
    return _TEXTS


def generate(
    rows: Iterable[Row], work_dir: Path, seed: int = 0, jobs: int = 2, log=print
) -> list[str]:
    """Make every missing ``generated/`` file; returns the failures (path: error)."""
    import multiprocessing as mp

    todo = [
        (str(work_dir), r.path, r.origin, seed) for r in rows if r.path.startswith("generated/")
    ]
    todo = [t for t in todo if not (work_dir / t[1]).is_file()]
    log(f"generating {len(todo)} files with {jobs} processes")
    failures = []
    with mp.get_context("fork").Pool(jobs) as pool:
        for i, err in enumerate(pool.imap_unordered(_make_one, todo, chunksize=4), start=1):
            if err:
                failures.append(err)
                log(f"  failed: {err}")
            if i % 100 == 0:
                log(f"  {i}/{len(todo)}")
    return failures


# ------------------------------------------------------------------------------- decoding


def decode(path: Path, settings: Settings | None = None) -> np.ndarray:
    """16 kHz mono float32 exactly as ``scan()`` decodes it (same reader, same resampler)."""
    from ...media.audio import load_audio
    from ...media.source import MediaSource

    settings = settings or Settings()
    return load_audio(MediaSource.from_any(path, settings), settings).samples


# --------------------------------------------------------------------------- window caches


def voiced_windows(samples: np.ndarray) -> list[F.Window]:
    """The windows of a decoded clip that pass the voice gate, in order."""
    return [w for w in F.clip_windows(samples) if w.voiced] if len(samples) else []


def augment_count(row: Row, n_aug_real: int, n_aug_fake: int) -> int:
    """Augmented copies of a training file.

    Recordings from the data root (reals, and the few collected fakes such as NSF) get
    ``n_aug_real`` copies; fakes we generate, which we could make in any number, get
    ``n_aug_fake``. Zero means "as scanned" (no chain).
    """
    return n_aug_fake if row.path.startswith("generated/") else n_aug_real


def _windows_for(args: tuple[str, str, int, int]) -> tuple[str, np.ndarray]:
    work, path, n_aug, seed = args
    y = decode(Path(work) / path)
    clips = [y] if n_aug == 0 else [augment(y, _rng(seed, path, 0, k)) for k in range(n_aug)]
    wins = [w.samples for c in clips for w in voiced_windows(c)]
    if not wins:
        return path, np.zeros((0, F.WINDOW_SAMPLES), np.float32)
    return path, np.stack(wins)


def _cache_key(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:10]


def build_split_cache(
    rows: list[Row],
    work_dir: Path,
    name: str,
    *,
    n_aug_real: int,
    n_aug_fake: int,
    seed: int = 0,
    jobs: int = 2,
    log=print,
) -> Path:
    """Voiced windows (augmented samples, float32) of every file into ``WORK/cache/`` (kept).

    The slow part of a run (decoding, the augmentation chain's codecs and reverberation) is
    cached as *samples*, so a change of features costs seconds: :func:`featurise` derives the
    network input from this cache. ``n_aug_* = 0`` means as scanned: validation and test are
    cached that way so that calibration is fitted on exactly what ``scan()`` will see.
    """
    import multiprocessing as mp

    window = {k: F.COMMON_PARAMS[k] for k in ("sample_rate", "window_s", "hop_s", "vad")}
    key = _cache_key(
        "|".join(r.path for r in rows), n_aug_real, n_aug_fake, seed, json.dumps(window)
    )
    out = work_dir / "cache" / f"{name}-windows-{key}.npz"
    if out.is_file():
        log(f"windows: reusing {out}")
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    todo = [(str(work_dir), r.path, augment_count(r, n_aug_real, n_aug_fake), seed) for r in rows]
    wins: dict[str, np.ndarray] = {}
    with mp.get_context("fork").Pool(jobs) as pool:
        for i, (path, w) in enumerate(pool.imap(_windows_for, todo, chunksize=4), start=1):
            wins[path] = w
            if i % 200 == 0:
                log(f"  windows {name}: {i}/{len(todo)}")
    x = [wins[r.path] for r in rows]
    y = [r.y for r in rows for _ in range(len(wins[r.path]))]
    file_idx = [i for i, r in enumerate(rows) for _ in range(len(wins[r.path]))]
    tmp = out.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        samples=np.concatenate(x) if x else np.zeros((0, F.WINDOW_SAMPLES), np.float32),
        y=np.asarray(y, np.int8),
        file_index=np.asarray(file_idx, np.int32),
        paths=np.asarray([r.path for r in rows]),
    )
    tmp.replace(out)
    log(f"windows {name}: {len(y)} from {len(rows)} files -> {out}")
    return out


_SAMPLES: np.ndarray | None = None  # the windows a featurise pool reads (inherited by fork)


def _features_of(job: tuple[int, int, str]) -> np.ndarray:
    start, stop, kind = job
    assert _SAMPLES is not None
    return F.batch_features((_SAMPLES[i] for i in range(start, stop)), kind).astype(np.float16)


def featurise(
    windows_path: Path, kind: str = F.FEATURE_KIND, jobs: int = 2, log=print
) -> dict[str, np.ndarray]:
    """``x`` (features of ``kind``, float16), ``y`` and ``file`` of a window cache (cached)."""
    import multiprocessing as mp

    global _SAMPLES
    key = _cache_key(windows_path.name, json.dumps(F.feature_params(kind), sort_keys=True))
    out = windows_path.with_name(windows_path.name.replace("-windows-", "-features-"))
    out = out.with_name(f"{out.stem}-{key}.npz")
    with np.load(windows_path) as z:
        y, file_idx = z["y"], z["file_index"]
        if out.is_file():
            log(f"features: reusing {out}")
            with np.load(out) as f:
                return {"x": f["x"], "y": y, "file": file_idx}
        _SAMPLES = z["samples"]
    spans = [(i, min(i + 256, len(y)), kind) for i in range(0, len(y), 256)]
    try:
        with mp.get_context("fork").Pool(jobs) as pool:
            parts = pool.map(_features_of, spans)
    finally:
        _SAMPLES = None
    x = np.concatenate(parts) if parts else np.zeros((0, *F.feature_shape(kind)), np.float16)
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, x=x)
    tmp.replace(out)
    log(f"features: {len(x)} windows -> {out}")
    return {"x": x, "y": y, "file": file_idx}

"""Whole-image detector: is this picture made by a generator, with or without a face in it?

The ``image-synthetic`` model scores square crops taken at the image's native resolution
(never resized: resampling wipes out the high-frequency traces a generator leaves), one
"fake" logit per crop. The crops are spread over the whole picture so that a partly edited
image is still looked at where it was edited. :func:`sample_crops` is the one place that
chooses crops; training (``training/synthetic/``) and serving both call it, so the model is
trained on exactly what it is later shown.

"Native" means the pixels the decoder gives. A still over ``Settings.decode_pixels`` is decoded
reduced by a whole factor per side to bound memory (``media.image``; the report warns). With
the defaults (24 MP analysed, 64 MP allowed) that factor is 2 at most (bar strips a few pixels
high): a 0.5x resize, at the edge of the 0.5-1.5x random resize the model is trained with
(``training/synthetic/data.py``). A lower ``decode_pixels`` takes large images outside that
range, where the score is less trustworthy.

A video's sampled frames (over ``decode_pixels`` decoded reduced too, ``media.video``: 8K by 2,
frames beyond 96 MP by more) are scored the same way, with fewer crops each
(:data:`N_CROPS_PER_FRAME`), and the video's whole-image score is the median over its frames
(:func:`frames_probability`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..report import Artifact, Evidence, FrameScore, WholeImage, percent, verdict_for
from .bundle import ModelBundle, to_batch
from .explain import heatmap_overlay
from .verdict import Judgement, combine

MODEL_NAME = "image-synthetic"
ROLE = "whole-image-detector"
CROP = 256  # px, at native resolution
N_CROPS = 8
"""Crops scored per image: the issue's 4-8 crops. The network's time grows with the count (8
crops: 29 ms of a 92 ms photo scan on 2 cores, ``benchmarks/bench_whole_image.py``) while the
score is a mean of logits either way; the calibration is fitted at this number."""
N_CROPS_PER_FRAME = 4
"""Crops scored per sampled video frame: a video's frames share one camera (or one generator),
so its many frames make up for fewer crops each: up to 32 sampled frames x 4 crops, the
network time of 16 photos (0.7 s of a 2.2 s scan of a 15 s clip at 512 px). Each frame is
cropped with its own seed, so the crops fall in different places from frame to frame and the
whole picture is still covered over the video."""
BATCH = 8
"""Crops per ONNX Runtime call (bounds memory on a large ``n_crops``)."""
EVIDENCE_NAME = "whole-image.jpg"
LABEL = "the whole-image detector"
FACE_LABEL = "the face detector"


def _pad_to(rgb: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pad the bottom and right edges so both sides are at least ``size`` px.

    Padding only after the image keeps image coordinates unchanged: a crop at origin (0, 0)
    starts at the image's first pixel. Reflection (not zeros) keeps the padded part looking
    like the image's own texture; ``np.pad`` reflects repeatedly when the pad is wider than
    the image.
    """
    h, w = rgb.shape[:2]
    pad_h, pad_w = max(0, size - h), max(0, size - w)
    if not (pad_h or pad_w):
        return rgb
    mode = "reflect" if min(h, w) > 1 else "edge"  # reflecting a 1-px side is undefined
    return np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)


def _grid_shape(n: int, h: int, w: int) -> tuple[int, int]:
    """Rows and columns of a grid of at least ``n`` cells, shaped like the image."""
    cols = min(n, max(1, round(math.sqrt(n * w / h))))
    return math.ceil(n / cols), cols


def _cell_origin(rng: np.random.Generator, cell: int, count: int, span: int) -> int:
    """A random origin in the ``cell``-th of ``count`` equal slices of ``[0, span]``."""
    lo = span * cell // count
    hi = span * (cell + 1) // count
    return int(rng.integers(lo, hi + 1))


def sample_crops(
    rgb: np.ndarray, n: int, size: int = CROP, seed: int = 0
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Take ``n`` square crops of ``size`` px spread over an image, at native pixels.

    The crop origins form a seeded stratified grid: the range of possible origins is cut into
    about ``n`` cells shaped like the image, ``n`` of them are chosen (all of them when the
    grid is exact) and each crop starts at a random point of its cell. So the crops cover the
    picture rather than clustering, and differ from one seed to the next. An image narrower
    or shorter than a crop is reflect-padded at its bottom / right edge first.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 array
    n : number of crops (0 allowed)
    size : crop side in px
    seed : the same seed on the same image gives the same crops

    Returns
    -------
    crops : (n, size, size, 3) uint8 array, in row-major order of their cells
    origins : each crop's (x, y) top-left corner in image coordinates (0 on a padded side)
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    if n < 0 or size < 1:
        raise ValueError(f"need n >= 0 and size >= 1, got n={n}, size={size}")
    if n == 0 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        return np.zeros((0, size, size, 3), np.uint8), []
    padded = _pad_to(rgb, size)
    h, w = padded.shape[:2]
    rng = np.random.default_rng(seed)
    rows, cols = _grid_shape(n, h, w)
    cells = np.sort(rng.permutation(rows * cols)[:n])
    origins = []
    for cell in cells:
        row, col = divmod(int(cell), cols)
        origins.append(
            (_cell_origin(rng, col, cols, w - size), _cell_origin(rng, row, rows, h - size))
        )
    crops = np.stack([padded[y : y + size, x : x + size] for x, y in origins])
    return crops, origins


@dataclass(frozen=True)
class WholeImageScore:
    """What the whole-image model saw: one calibrated probability from the mean crop logit."""

    probability: float
    logit: float
    crop_logits: np.ndarray
    """(n,) raw logit of each crop, in the order of ``origins``."""
    origins: list[tuple[int, int]]
    size: int

    @property
    def looked_at(self) -> str:
        return f"{len(self.origins)} crops of {self.size} px across the whole image"


def crop_size(bundle: ModelBundle) -> int:
    """The crop side the bundle was trained on (its card's ``preprocessing.size``)."""
    size = bundle.card["inputs"][0].get("preprocessing", {}).get("size", CROP)
    return int(size if isinstance(size, int) else size[0])


def crop_logits(bundle: ModelBundle, crops: np.ndarray, *, batch: int = BATCH) -> np.ndarray:
    """(N,) raw "fake" logit per crop, ``batch`` crops per ONNX Runtime call."""
    if bundle.card["outputs"][0]["kind"] != "logit":
        raise ValueError(f"model {bundle.name!r} must output one logit per crop")
    spec = bundle.card["inputs"][0]
    out = [
        np.ravel(bundle.run(to_batch(crops[i : i + batch], spec))[bundle.output_names[0]])
        for i in range(0, len(crops), batch)
    ]
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def score_image(
    rgb: np.ndarray, bundle: ModelBundle, *, n_crops: int = N_CROPS, seed: int = 0
) -> WholeImageScore:
    """Score ``n_crops`` native-resolution crops; the image's probability is the calibrated
    mean of their logits (a generator's traces are everywhere, so the mean is steadier than
    the maximum, which one odd texture would drive)."""
    if n_crops < 1:
        raise ValueError(f"need at least one crop, got n_crops={n_crops}")
    size = crop_size(bundle)
    crops, origins = sample_crops(rgb, n_crops, size=size, seed=seed)
    logits = crop_logits(bundle, crops)
    mean = float(logits.mean())
    probability = float(np.ravel(bundle.calibrate(np.array([mean])))[0])
    return WholeImageScore(probability, mean, logits, origins, size)


def evidence_artifact(
    rgb: np.ndarray, score: WholeImageScore, bundle: ModelBundle
) -> tuple[Artifact, bytes]:
    """The image, downscaled, with each crop washed red by its own calibrated score."""
    height, width = rgb.shape[:2]
    crop_p = np.ravel(bundle.calibrate(score.crop_logits))
    heats, boxes = [], []
    for (x, y), p in zip(score.origins, crop_p, strict=True):
        shift = np.array([[1.0, 0.0, x], [0.0, 1.0, y]])
        heats.append((np.full((1, 1), float(p)), shift, score.size))
        box = (x, y, min(score.size, width - x), min(score.size, height - y))
        boxes.append((box, percent(float(p))))
    description = (
        "Where the whole-image detector looked: each crop it scored, red by how fake it looked"
    )
    return (
        Artifact(EVIDENCE_NAME, "heatmap", "image/jpeg", description),
        heatmap_overlay(rgb, heats, boxes),
    )


def _sentence(
    probability: float, band: tuple[float, float], where: str, subject: tuple[str, str, str]
) -> str:
    """The model's sentence for its verdict; ``subject`` is (fake, real, uncertain) openings."""
    low, high = band
    p = percent(probability)
    fake, real, unsure = subject
    return {
        "fake": f"{fake}: {p} {where} (we call it fake from {high:.0%}).",
        "real": f"{real}: {p} {where} (below {low:.0%} counts as real).",
        "uncertain": f"{unsure}: {p} {where} (between {low:.0%} and {high:.0%} we do not decide).",
    }[verdict_for(probability, band)]


_IMAGE_SUBJECT = (
    "The whole image looks generated or edited",
    "The whole image looks like an unedited photo",
    "The whole-image score is in the uncertain band",
)
_FRAMES_SUBJECT = (
    "The video's frames look generated or edited",
    "The video's frames look like unedited footage",
    "The video's whole-frame score is in the uncertain band",
)


def judgement(score: WholeImageScore, bundle: ModelBundle) -> Judgement:
    """The whole-image model's say in the combined verdict (``verdict.combine``)."""
    where = f"over {len(score.origins)} crops of the whole image"
    sentence = _sentence(score.probability, bundle.uncertain_band, where, _IMAGE_SUBJECT)
    return Judgement(
        MODEL_NAME,
        score.probability,
        bundle.threshold,
        bundle.uncertain_band,
        LABEL,
        score.looked_at,
        (sentence,),
    )


def whole_image_field(
    score: WholeImageScore, bundle: ModelBundle, artifact: str | None = EVIDENCE_NAME
) -> WholeImage:
    """The report's ``whole_image``: this model's own score and verdict for an image."""
    return WholeImage(
        fake_probability=score.probability,
        verdict=verdict_for(score.probability, bundle.uncertain_band),
        threshold=bundle.threshold,
        uncertain_band=tuple(bundle.uncertain_band),
        crops=len(score.origins),
        artifact=artifact,
    )


def score_frame(rgb: np.ndarray, bundle: ModelBundle, pos: int) -> float:
    """Calibrated whole-image probability of the ``pos``-th sampled video frame."""
    return score_image(rgb, bundle, n_crops=N_CROPS_PER_FRAME, seed=pos).probability


def frames_probability(probabilities: list[float]) -> float:
    """A video's whole-image score: the median of its frames' calibrated probabilities.

    Why the median: a generated video is generated in every frame, so most of its frames
    score high, while a real video's odd frame (motion blur, a scene cut, a burst of
    compression) scores high alone. The median ignores up to half the frames being odd either
    way; a maximum or a high quantile would raise more false alarms the more frames are
    sampled, whereas the median's false alarms fall with more frames. The cost, said in the
    reason by counting the frames that scored fake: a clip generated in fewer than half its
    frames is not called fake by this model alone. It is a score judged against the model's
    band, not a calibrated video-level probability (as the per-person face score is).
    """
    if not probabilities:
        raise ValueError("need at least one frame probability")
    return float(np.median(np.asarray(probabilities, np.float64)))


def frames_judgement(
    times: list[float], probabilities: list[float], bundle: ModelBundle
) -> tuple[Judgement, WholeImage]:
    """The whole-image model's say on a video (median over frames, :func:`frames_probability`)
    and the report's ``whole_image`` with every frame's score."""
    band = tuple(bundle.uncertain_band)
    probability = frames_probability(probabilities)
    n = len(probabilities)
    fake = sum(verdict_for(p, band) == "fake" for p in probabilities)
    where = f"as the median over {n} sampled frames"
    sentence = _sentence(probability, band, where, _FRAMES_SUBJECT)
    if fake:
        sentence = f"{sentence[:-1]}; {fake} of {n} frames scored fake on their own."
    looked_at = f"{n} frames, {N_CROPS_PER_FRAME} crops each"
    mine = Judgement(MODEL_NAME, probability, bundle.threshold, band, LABEL, looked_at, (sentence,))
    field = WholeImage(
        fake_probability=probability,
        verdict=verdict_for(probability, band),
        threshold=bundle.threshold,
        uncertain_band=band,
        crops=N_CROPS_PER_FRAME,
        artifact=None,
        frames=[FrameScore(t, p) for t, p in zip(times, probabilities, strict=True)],
    )
    return mine, field


def face_judgement(evidence: Evidence) -> Judgement:
    """The face model's say, from the evidence ``detectors.image`` built (its first model is
    the face detector; no probability when no face was found)."""
    n = len(evidence.faces)
    judged = evidence.fake_probability is not None
    looked_at = ("the face" if n == 1 else f"{n} faces") if judged else "no face was found"
    return Judgement(
        evidence.models[0].name,
        evidence.fake_probability,
        evidence.threshold,
        evidence.uncertain_band,
        FACE_LABEL,
        looked_at,
        tuple(evidence.reasons) if judged else (),
    )


def add_whole_image(
    evidence: Evidence,
    rgb: np.ndarray,
    bundle: ModelBundle,
    *,
    n_crops: int = N_CROPS,
    seed: int = 0,
) -> Evidence:
    """The face evidence with the whole-image model's judgement folded in (``verdict.combine``):
    verdict, probability, threshold, band and reasons of the deciding model, the whole-image
    model named among the models, its crops drawn as an artifact and its own judgement kept as
    the report's ``whole_image``."""
    score = score_image(rgb, bundle, n_crops=n_crops, seed=seed)
    combined = combine([face_judgement(evidence), judgement(score, bundle)])
    return replace(
        evidence,
        verdict=combined.verdict,
        fake_probability=combined.probability,
        threshold=combined.threshold,
        uncertain_band=combined.band,
        reasons=combined.reasons,
        models=[*evidence.models, bundle.ref(ROLE)],
        artifacts=[*evidence.artifacts, evidence_artifact(rgb, score, bundle)],
        whole_image=whole_image_field(score, bundle),
    )

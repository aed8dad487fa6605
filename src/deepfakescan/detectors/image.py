"""Image evidence: faces found, each scored by the detector, the family named for fakes.

Flow: ``detect_faces`` (MTCNN) -> each face aligned and cropped as the detector's card asks
(size, margin, mean/std) -> the ``image`` bundle gives a logit per face and a class-activation
map -> calibrated probability per face -> the image's probability is that of its most
suspicious face (one manipulated face is enough to make a photo a fake) -> for faces judged
fake, the ``image-family`` bundle (when installed) names the manipulation, or "other" when it
is unsure. A heatmap artifact shows where each face's evidence lies, and a downscaled preview
of the image as analysed (the web page draws the face boxes on it) comes with every image.

An image without a face is ``uncertain``: this release judges faces, and says so rather than
guess. When an ``image-synthetic`` bundle is installed, the whole image is scored as well
(``detectors.synthetic``) and the two judgements are combined by ``detectors.verdict``: either
model seeing a fake is enough. With no ``image`` bundle installed the scan fails with
``ModelMissing`` (HTTP 503).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..config import Settings
from ..faces import AlignedFace, DetectedFace, align_face, detect_photo_faces
from ..media.image import DecodedImage
from ..report import Artifact, Box, Evidence, Face, ModelRef, percent, verdict_for
from . import synthetic
from .bundle import ModelBundle, optional_model, require_model, to_batch
from .explain import PREVIEW_MAX_SIDE, heatmap_overlay, preview_jpeg, sigmoid

IMAGE_MODEL = "image"
FAMILY_MODEL = "image-family"
MAX_FACES = 8
"""Faces scored per image, most confident first (bounds the work on crowd photos)."""
HEATMAP_NAME = "heatmap.jpg"
PREVIEW_NAME = "preview.jpg"

FAMILY_PHRASES = {
    "blend": "a blended face swap",
    "gan": "a GAN-generated face",
    "hand-edited": "a hand-edited face",
    "other": "a manipulation it cannot name",
}
"""How reasons name the family classifier's labels (training/image/data.FAMILIES)."""


def crop_spec(bundle: ModelBundle) -> tuple[int, float]:
    """(crop side, margin around the box) that the bundle was trained with."""
    pre = bundle.card["inputs"][0].get("preprocessing", {})
    size = pre.get("size", 224)
    side = size if isinstance(size, int) else size[0]
    return int(side), float(pre.get("margin", 1.3))


def score_faces(
    bundle: ModelBundle, rgb: np.ndarray, faces: list[DetectedFace]
) -> tuple[list[AlignedFace], np.ndarray, np.ndarray | None]:
    """Aligned crops, calibrated probabilities and class-activation maps (or None)."""
    side, margin = crop_spec(bundle)
    aligned = [align_face(rgb, f, size=side, margin=margin) for f in faces]
    spec = bundle.card["inputs"][0]
    outputs = bundle.run({bundle.input_names[0]: to_batch([a.image for a in aligned], spec)})
    probabilities = np.ravel(bundle.calibrate(outputs[bundle.output_names[0]]))
    maps = None
    map_outputs = [o["name"] for o in bundle.card["outputs"] if o["kind"] == "map"]
    if map_outputs:
        maps = outputs[map_outputs[0]].reshape(len(faces), *outputs[map_outputs[0]].shape[-2:])
    return aligned, probabilities, maps


def face_family(
    bundle: ModelBundle, rgb: np.ndarray, face: DetectedFace
) -> tuple[str, dict[str, float]]:
    """Most likely manipulation family, or "other" below the card's threshold."""
    side, margin = crop_spec(bundle)
    crop = align_face(rgb, face, size=side, margin=margin).image
    x = to_batch([crop], bundle.card["inputs"][0])
    probs = np.asarray(bundle.predict({bundle.input_names[0]: x})).reshape(-1)
    table = {label: round(float(p), 4) for label, p in zip(bundle.labels, probs, strict=True)}
    best = max(table, key=table.get)
    return (best if table[best] >= bundle.threshold else "other"), table


def analyse_image(
    image: DecodedImage, settings: Settings, *, check: Callable[[], None] | None = None
) -> Evidence:
    """Calibrated per-face and per-image probabilities, family for fakes, a heatmap and a
    downscaled preview of the image as analysed."""
    detector = require_model(IMAGE_MODEL, settings, what="images")
    band = tuple(detector.uncertain_band)
    models = [detector.ref("image-detector"), ModelRef("mtcnn", "1.0.0", "face-detector")]
    found = detect_photo_faces(image.rgb, settings)
    if check is not None:
        check()
    if found:
        evidence = _judge_faces(image, found, detector, band, models, settings)
    else:
        evidence = Evidence(
            verdict="uncertain",
            fake_probability=None,
            threshold=detector.threshold,
            uncertain_band=band,
            reasons=[
                "No face was found. This release judges faces, so it cannot tell whether"
                " this image is manipulated."
            ],
            models=models,
        )
    whole_image, _ = optional_model(synthetic.MODEL_NAME, settings)
    if whole_image is not None:
        if check is not None:
            check()
        evidence = synthetic.add_whole_image(evidence, image.rgb, whole_image)
    evidence.artifacts.append(_preview_artifact(image.rgb))
    return evidence


def _judge_faces(
    image: DecodedImage,
    found: list[DetectedFace],
    detector: ModelBundle,
    band: tuple[float, float],
    models: list[ModelRef],
    settings: Settings,
) -> Evidence:
    """Score the clearest faces; the most suspicious one decides the image's verdict."""
    faces = found[:MAX_FACES]
    warnings = []
    if len(found) > MAX_FACES:
        warnings.append(f"{len(found)} faces found; the {MAX_FACES} clearest were scored")
    aligned, probabilities, maps = score_faces(detector, image.rgb, faces)
    family_model = None
    if any(verdict_for(float(p), band) == "fake" for p in probabilities):
        family_model, _ = optional_model(FAMILY_MODEL, settings)
        if family_model is not None:
            models.append(family_model.ref("manipulation-classifier"))
    report_faces = [
        _face(image.rgb, face, float(p), band, family_model, maps is not None, image.reduced_by)
        for face, p in zip(faces, probabilities, strict=True)
    ]
    artifacts = []
    if maps is not None:
        artifacts.append(_heatmap_artifact(image.rgb, faces, aligned, probabilities, maps))
    worst = int(np.argmax(probabilities))
    probability = float(probabilities[worst])
    return Evidence(
        verdict=verdict_for(probability, band),
        fake_probability=probability,
        threshold=detector.threshold,
        uncertain_band=band,
        reasons=_reasons(report_faces, worst, band),
        faces=report_faces,
        models=models,
        warnings=warnings,
        artifacts=artifacts,
    )


def _face(
    rgb: np.ndarray,
    face: DetectedFace,
    probability: float,
    band: tuple[float, float],
    family_model: ModelBundle | None,
    has_heatmap: bool,
    to_file: int = 1,
) -> Face:
    """One face for the report; a face judged fake is given a family when the model is there.

    ``face`` is in the pixels of ``rgb``; the report gives it in the file's pixels, ``to_file``
    (the decoder's ``reduced_by``) times larger when the picture was decoded reduced.
    """
    verdict = verdict_for(probability, band)
    family, family_table = None, None
    if verdict == "fake" and family_model is not None:
        family, family_table = face_family(family_model, rgb, face)
    x, y, w, h = (float(v) * to_file for v in face.box)
    return Face(
        box=Box(round(x), round(y), round(w), round(h)),
        fake_probability=probability,
        verdict=verdict,
        detection_confidence=round(float(face.confidence), 4),
        landmarks=[
            [round(float(a) * to_file, 1), round(float(b) * to_file, 1)] for a, b in face.landmarks
        ],
        family=family,
        family_probabilities=family_table,
        heatmap=HEATMAP_NAME if has_heatmap else None,
    )


def _heatmap_artifact(
    rgb: np.ndarray,
    faces: list[DetectedFace],
    aligned: list[AlignedFace],
    probabilities: np.ndarray,
    maps: np.ndarray,
) -> tuple[Artifact, bytes]:
    """The image with each face's class-activation map and score drawn on it."""
    side = aligned[0].image.shape[0]
    heats = [(sigmoid(m), a.matrix, side) for m, a in zip(maps, aligned, strict=True)]
    labels = [
        (f.box, f"face {i + 1}: {percent(p)}")
        for i, (f, p) in enumerate(zip(faces, probabilities, strict=True))
    ]
    description = "Where the detector saw evidence of manipulation (red), with each face's score"
    return (
        Artifact(HEATMAP_NAME, "heatmap", "image/jpeg", description),
        heatmap_overlay(rgb, heats, labels),
    )


def _preview_artifact(rgb: np.ndarray) -> tuple[Artifact, bytes]:
    """The image as analysed, downscaled, for pages that draw the report's face boxes on it."""
    description = (
        f"the image as analysed (EXIF orientation applied), at most {PREVIEW_MAX_SIDE}"
        " px; face boxes are in the original's pixels"
    )
    return Artifact(PREVIEW_NAME, "preview", "image/jpeg", description), preview_jpeg(rgb)


def _reasons(faces: list[Face], worst: int, band: tuple[float, float]) -> list[str]:
    """Plain sentences, the deciding face first."""
    face = faces[worst]
    n = len(faces)
    which = f"face {worst + 1} of {n}" if n > 1 else "the face"
    p = face.fake_probability
    if face.verdict == "fake":
        first = (
            f"{which.capitalize()} looks manipulated: {percent(p)}"
            f" (we call it fake from {band[1]:.0%})."
        )
    elif face.verdict == "real":
        first = (
            f"{'Every face' if n > 1 else 'The face'} looks authentic: the highest manipulation"
            f" probability is {percent(p)} (below {band[0]:.0%} counts as real)."
        )
    else:
        first = (
            f"{which.capitalize()} is in the uncertain band: {percent(p)} (between {band[0]:.0%}"
            f" and {band[1]:.0%} we do not decide)."
        )
    reasons = [first]
    if face.family is not None and face.family_probabilities:
        share = face.family_probabilities.get(face.family)
        phrase = FAMILY_PHRASES.get(face.family, face.family.replace("_", " "))
        reasons.append(
            f"It most resembles {phrase}"
            + (f" ({percent(share)})." if share is not None and face.family != "other" else ".")
        )
    others = [i for i, f in enumerate(faces) if f.verdict == "fake" and i != worst]
    if others:
        reasons.append(f"{len(others)} other face(s) also look manipulated.")
    if n > 1 and face.verdict != "real":
        reasons.append(f"{n} faces were found; the most suspicious one decides the verdict.")
    return reasons

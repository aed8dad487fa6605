"""Face-level image evidence (a proposal for ``detectors/image.py``): faces, detector, family,
heatmap.

A scan finds the faces (MTCNN), crops each exactly as training did (``align_face``, margin
1.3, at the detector card's input size), scores it with the ``image`` bundle (calibrated
probability of "fake" plus its class-activation map), and, for a face judged fake, names the
family with the ``family`` bundle when one is installed ("other" when its top probability is
below that card's threshold). The image's probability is that of its most suspicious face. An
image with no face is ``uncertain`` with that reason: the detector was never trained on
anything else, so any number would be a guess.

The heatmap artifact is the CAM of each face, warped back into the original image through the
crop's affine matrix and laid over a copy of the image: red where the model saw manipulation.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..config import Settings
from ..errors import ModelMissing
from ..faces import AlignedFace, DetectedFace, align_face, detect_faces, invert_affine
from ..media.image import DecodedImage
from ..report import Artifact, Box, Evidence, Face, percent, verdict_for
from .bundle import ModelBundle, find_model, require_model

DETECTOR_MODEL = "image"
FAMILY_TASK = "image-family"
MAX_FACES = 8
"""Faces scored per image (largest first); the rest are reported in a warning."""
OTHER_FAMILY = "other"
HEATMAP_ALPHA = 0.5


@dataclass(frozen=True)
class FaceScore:
    """One face and what the models said about it."""

    face: DetectedFace
    aligned: AlignedFace
    probability: float
    cam: np.ndarray
    """(h, w) class-activation map of "fake", in logit units (crop coordinates, stride 32)."""
    family: str | None = None
    family_probabilities: dict[str, float] | None = None


def crop_tensor(crop: np.ndarray, spec: dict) -> np.ndarray:
    """An aligned (size, size, 3) uint8 crop -> (1, 3, size, size) float32 as the card says."""
    pre = spec.get("preprocessing", {})
    x = crop.astype(np.float32) / 255.0
    x = (x - np.asarray(pre.get("mean", [0.0] * 3), np.float32)) / np.asarray(
        pre.get("std", [1.0] * 3), np.float32
    )
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def optional_family_model(settings: Settings) -> ModelBundle | None:
    """The family classifier when one is installed: scans work without it."""
    try:
        return find_model(FAMILY_TASK, settings)
    except ModelMissing:
        return None


def input_size(bundle: ModelBundle) -> int:
    size = bundle.card["inputs"][0].get("preprocessing", {}).get("size", 224)
    return int(size if isinstance(size, int) else size[0])


def score_faces(
    rgb: np.ndarray, settings: Settings, *, max_faces: int = MAX_FACES
) -> tuple[list[FaceScore], int]:
    """Scores of the largest ``max_faces`` faces, and how many faces were found in all."""
    detector = require_model(DETECTOR_MODEL, settings, what="images")
    family = optional_family_model(settings)
    faces = detect_faces(rgb, settings=settings)
    faces_by_size = sorted(faces, key=lambda f: -f.box[2] * f.box[3])[:max_faces]
    size = input_size(detector)
    scores = []
    for face in faces_by_size:
        aligned = align_face(rgb, face, size=size)
        out = detector.run(crop_tensor(aligned.image, detector.card["inputs"][0]))
        probability = float(np.ravel(detector.calibrate(out[detector.output_names[0]]))[0])
        cam = np.asarray(out[detector.output_names[1]])[0, 0] if len(out) > 1 else np.zeros((1, 1))
        label, probs = None, None
        if family is not None and probability >= detector.threshold:
            label, probs = _family(family, rgb, face)
        scores.append(FaceScore(face, aligned, probability, cam, label, probs))
    return scores, len(faces)


def _family(bundle: ModelBundle, rgb: np.ndarray, face: DetectedFace) -> tuple[str, dict]:
    aligned = align_face(rgb, face, size=input_size(bundle))
    out = bundle.run(crop_tensor(aligned.image, bundle.card["inputs"][0]))
    probs = np.ravel(bundle.calibrate(out[bundle.output_names[0]]))
    named = {label: round(float(p), 4) for label, p in zip(bundle.labels, probs, strict=True)}
    top = int(np.argmax(probs))
    label = bundle.labels[top] if probs[top] >= bundle.threshold else OTHER_FAMILY
    return label, named


def heatmap_overlay(rgb: np.ndarray, scores: list[FaceScore]) -> bytes:
    """PNG of the image with each face's CAM (sigmoid of its logits) laid over it in red."""
    height, width = rgb.shape[:2]
    heat = np.zeros((height, width), np.float32)
    for s in scores:
        side = s.aligned.image.shape[0]
        cam = 1.0 / (1.0 + np.exp(-s.cam.astype(np.float32)))
        crop_heat = Image.fromarray(cam).resize((side, side), Image.Resampling.BILINEAR)
        # PIL's AFFINE wants the map from output (image) to input (crop) coordinates
        to_crop = invert_affine(s.aligned.matrix).ravel()
        inside = Image.new("F", (side, side), 1.0).transform(
            (width, height), Image.Transform.AFFINE, to_crop, Image.Resampling.BILINEAR
        )
        warped = crop_heat.transform(
            (width, height), Image.Transform.AFFINE, to_crop, Image.Resampling.BILINEAR
        )
        heat = np.maximum(heat, np.asarray(warped) * (np.asarray(inside) > 0.5))
    alpha = (HEATMAP_ALPHA * heat)[:, :, None]
    red = np.array([255.0, 0.0, 0.0], np.float32)
    out = (1 - alpha) * rgb.astype(np.float32) + alpha * red
    buf = io.BytesIO()
    Image.fromarray(np.clip(out, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def analyse_image_faces(
    image: DecodedImage, settings: Settings, *, check: Callable[[], None] | None = None
) -> Evidence:
    """Evidence for one image from its faces; ``uncertain`` with the reason when there is none."""
    scores, n_found = score_faces(image.rgb, settings)
    detector = require_model(DETECTOR_MODEL, settings, what="images")
    band = tuple(detector.uncertain_band)
    models = [detector.ref("image-detector")]
    if check is not None:
        check()
    if not scores:
        return Evidence(
            verdict="uncertain",
            fake_probability=None,
            threshold=detector.threshold,
            uncertain_band=band,
            reasons=["No face was found; the image detector judges faces only."],
            models=models,
        )
    family = optional_family_model(settings)
    if family is not None and any(s.family for s in scores):
        models.append(family.ref("image-family"))
    heatmap = Artifact("heatmap.png", "heatmap", "image/png", "where the model saw manipulation")
    faces = [
        Face(
            box=Box(*(round(v) for v in s.face.box)),
            fake_probability=s.probability,
            verdict=verdict_for(s.probability, band),
            detection_confidence=s.face.confidence,
            landmarks=[[float(x), float(y)] for x, y in s.face.landmarks],
            family=s.family,
            family_probabilities=s.family_probabilities,
            heatmap=heatmap.name,
        )
        for s in scores
    ]
    worst = max(scores, key=lambda s: s.probability)
    reasons = [
        f"{len(scores)} face(s) scored by model {detector.name} {detector.version}; the most "
        f"suspicious is {percent(worst.probability)} likely manipulated "
        f"(threshold {percent(detector.threshold)})."
    ]
    if worst.family:
        reasons.append(f"Manipulation family of that face: {worst.family}.")
    warnings = []
    if n_found > len(scores):
        warnings.append(f"{n_found} faces found; only the {len(scores)} largest were scored.")
    return Evidence(
        verdict=verdict_for(worst.probability, band),
        fake_probability=worst.probability,
        threshold=detector.threshold,
        uncertain_band=band,
        reasons=reasons,
        faces=faces,
        models=models,
        warnings=warnings,
        artifacts=[(heatmap, heatmap_overlay(image.rgb, scores))],
    )


__all__ = [
    "FaceScore",
    "analyse_image_faces",
    "crop_tensor",
    "heatmap_overlay",
    "score_faces",
]

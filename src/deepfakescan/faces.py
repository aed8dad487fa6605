"""Face detection (MTCNN on ONNX Runtime) and alignment: where the faces are, and square crops.

MTCNN (Zhang et al., 2016) is a cascade of three small networks: P-Net scores every 12x12 window
of an image pyramid, R-Net re-scores the surviving candidates as 24x24 crops and O-Net as 48x48
crops, each stage refining the box; O-Net also gives five landmarks (eyes, nose, mouth corners).
The weights are those of the ``mtcnn`` package (MIT), converted once to ONNX by
``tools/convert_mtcnn.py`` and shipped as the bundles ``mtcnn_pnet``, ``mtcnn_rnet``,
``mtcnn_onet``; each card's ``threshold`` is the stage's default face-score threshold.

Coordinates are continuous pixel coordinates of the original image (pixel ``i`` spans
``[i, i + 1)``); boxes are ``(x, y, w, h)``. Images larger than ``max_side`` are downscaled
before detection, so the work is bounded and ``min_face`` is measured in the downscaled image.

The pure geometry (pyramid scales, IoU, NMS, box regression, squaring, the alignment transform)
is kept in small array-in/array-out functions; boxes inside the cascade are ``(N, 4)`` float
arrays of corners ``x1, y1, x2, y2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from .config import Settings
from .detectors.bundle import ModelBundle, load_model

PNET, RNET, ONET = "mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet"
PNET_CELL = 12
"""P-Net sees 12x12 windows..."""
PNET_STRIDE = 2
"""...every 2 pixels of a pyramid level (one max-pool of stride 2)."""
SCALE_FACTOR = 0.709
"""Ratio between pyramid levels (about 1/sqrt(2): face sizes double every two levels)."""
MIN_FACE = 20
"""Default smallest face side searched, in pixels of the (downscaled) detection image."""
NMS_PNET_SCALE = 0.5
NMS_PNET_ALL = 0.7
NMS_RNET = 0.7
NMS_ONET = 0.7
PIXEL_MEAN = 127.5
PIXEL_SCALE = 1.0 / 128.0
BATCH = 256
"""Crops per R-Net/O-Net run, to bound memory on textured images with many candidates."""
MARGIN = 1.3
"""Crops are the detector box enlarged 1.3 times around its centre."""

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
"""Order of ``DetectedFace.landmarks`` rows; left/right as seen in the image, not by the person."""


@dataclass(frozen=True)
class DetectedFace:
    """One face, in original-image pixels."""

    box: tuple[float, float, float, float]
    """``(x, y, w, h)``: top-left corner, width and height, clipped to the image."""
    confidence: float
    """O-Net face probability (0-1); not calibrated against any data set."""
    landmarks: np.ndarray
    """(5, 2) float32 ``(x, y)`` in the order of ``LANDMARK_NAMES``."""

    def to_dict(self) -> dict:
        """Plain JSON-ready form (boxes rounded to 0.1 px)."""
        return {
            "box": [round(float(v), 1) for v in self.box],
            "confidence": round(float(self.confidence), 4),
            "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks],
        }


@dataclass(frozen=True)
class AlignedFace:
    """A square face crop and where it came from."""

    image: np.ndarray
    """(size, size, 3) uint8 RGB crop, eyes level."""
    matrix: np.ndarray
    """(2, 3) affine map from crop coordinates to original-image coordinates:
    ``[x, y] = matrix @ [u, v, 1]`` (continuous coordinates, as Pillow's AFFINE transform)."""

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) crop points (e.g. heatmap peaks) to original-image points."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return pts @ self.matrix[:, :2].T + self.matrix[:, 2]

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) original-image points into the crop (the inverse of ``to_image``)."""
        inverse = invert_affine(self.matrix)
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return pts @ inverse[:, :2].T + inverse[:, 2]


# ---------------------------------------------------------------------------- pure geometry


def pyramid_scales(
    min_side: int, *, min_face: float = MIN_FACE, factor: float = SCALE_FACTOR
) -> list[float]:
    """Scales at which a ``min_side`` image is fed to P-Net, largest first.

    Level 0 maps a ``min_face`` face onto P-Net's 12-pixel window; each next level is ``factor``
    times smaller, down to the last level whose short side still holds one window.
    """
    if min_face < PNET_CELL:
        raise ValueError(f"min_face must be at least {PNET_CELL} pixels, got {min_face}")
    scales = []
    scale = PNET_CELL / min_face
    while min_side * scale >= PNET_CELL:
        scales.append(scale)
        scale *= factor
    return scales


def relative_min_face(width: int, height: int, share: float, max_side: int) -> float:
    """Smallest face side to search, in pixels of the detection image, as ``share`` of the
    image's shorter side (never under MTCNN's 20 px).

    A face that small in the photo is too small to judge anyway, and P-Net's first pyramid level
    (the most expensive) shrinks with the square of this size.
    """
    factor = min(1.0, max_side / max(width, height))
    return max(float(MIN_FACE), share * min(width, height) * factor)


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of (N, 4) corner boxes (zero for empty ones)."""
    return np.maximum(boxes[:, 2] - boxes[:, 0], 0.0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0.0)


def iou(
    box: np.ndarray, boxes: np.ndarray, method: Literal["union", "min"] = "union"
) -> np.ndarray:
    """Overlap of one corner box with (N, 4) boxes: intersection over union, or over the smaller.

    ``"min"`` is 1 when one box lies inside the other: O-Net uses it to drop a small box found
    inside a face's box.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    box = np.asarray(box, dtype=np.float64).reshape(1, 4)
    w = np.clip(np.minimum(box[:, 2], boxes[:, 2]) - np.maximum(box[:, 0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[:, 3], boxes[:, 3]) - np.maximum(box[:, 1], boxes[:, 1]), 0, None)
    inter = w * h
    if method == "union":
        denom = box_area(box) + box_area(boxes) - inter
    elif method == "min":
        denom = np.minimum(box_area(box), box_area(boxes))
    else:
        raise ValueError(f"method must be 'union' or 'min', got {method!r}")
    return np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    method: Literal["union", "min"] = "union",
) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the boxes kept, best score first.

    A box is dropped when it overlaps an already *kept* box by more than ``threshold``
    (overlap as in ``iou``).
    """
    if method not in ("union", "min"):
        raise ValueError(f"method must be 'union' or 'min', got {method!r}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1, y1, x2, y2 = boxes.T
    area = box_area(boxes)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        w = np.maximum(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0.0)
        h = np.maximum(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0.0)
        inter = w * h
        if method == "union":
            denom = area[best] + area[rest] - inter
        else:
            denom = np.minimum(area[best], area[rest])
        # an empty box overlaps nothing (0 / 0 counts as 0)
        overlap = np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def regress_boxes(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Move each corner by its offset times the box's width/height (MTCNN's ``+1`` sizes)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return boxes + offsets * np.stack([w, h, w, h], axis=1)


def square_boxes(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square of its longer side, keeping its centre."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    x1 = boxes[:, 0] + (w - side) / 2
    y1 = boxes[:, 1] + (h - side) / 2
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1)


def pnet_boxes(
    prob: np.ndarray, reg: np.ndarray, scale: float | tuple[float, float], threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate boxes and scores (in the unscaled image) from one P-Net output map.

    ``prob`` is (2, H', W') and ``reg`` (4, H', W'); output cell ``(i, j)`` is the 12x12 window at
    ``(2j, 2i)`` of the level, whose corners are moved by the regression before unscaling.
    ``scale`` is the level's scale, or its ``(x, y)`` scales when the rounding of its size
    matters.
    """
    ys, xs = np.nonzero(prob[1] > threshold)
    scores = prob[1, ys, xs]
    x1 = xs * PNET_STRIDE
    y1 = ys * PNET_STRIDE
    windows = np.stack([x1, y1, x1 + PNET_CELL, y1 + PNET_CELL], axis=1).astype(np.float64)
    boxes = windows + reg[:, ys, xs].T * PNET_CELL
    sx, sy = (scale, scale) if np.isscalar(scale) else scale
    return boxes / [sx, sy, sx, sy], scores.astype(np.float64)


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip corner boxes to ``[0, width] x [0, height]``."""
    return np.stack(
        [
            np.clip(boxes[:, 0], 0, width),
            np.clip(boxes[:, 1], 0, height),
            np.clip(boxes[:, 2], 0, width),
            np.clip(boxes[:, 3], 0, height),
        ],
        axis=1,
    )


def alignment_matrix(
    center: tuple[float, float], side: float, angle: float, size: int
) -> np.ndarray:
    """(2, 3) similarity map from a ``size`` x ``size`` crop to the image.

    The crop covers a square of ``side`` image pixels centred on ``center``, rotated by ``angle``
    radians (image coordinates, y down), so that the image direction ``angle`` becomes the
    crop's horizontal axis.
    """
    k = side / size
    c, s = math.cos(angle) * k, math.sin(angle) * k
    half = size / 2
    cx, cy = center
    return np.array([[c, -s, cx - c * half + s * half], [s, c, cy - s * half - c * half]])


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine map."""
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def eye_angle(landmarks: np.ndarray) -> float:
    """Angle (radians, image coordinates) of the line from the left to the right eye."""
    (lx, ly), (rx, ry) = np.asarray(landmarks, dtype=np.float64)[:2]
    return math.atan2(ry - ly, rx - lx)


# ---------------------------------------------------------------------------- detection


def detect_photo_faces(rgb: np.ndarray, settings: Settings | None = None) -> list[DetectedFace]:
    """The faces of a still photo as a scan searches them: down to ``settings.image_min_face``
    of the shorter side (one rule for scans, benchmarks and evaluation)."""
    settings = settings or Settings.from_env()
    height, width = np.shape(rgb)[:2]
    min_face = relative_min_face(
        width, height, settings.image_min_face, settings.detection_max_side
    )
    return detect_faces(rgb, min_face=min_face, settings=settings)


def detect_faces(
    rgb: np.ndarray,
    *,
    max_side: int | None = None,
    min_face: float = MIN_FACE,
    thresholds: tuple[float, float, float] | None = None,
    settings: Settings | None = None,
) -> list[DetectedFace]:
    """Every face in an image, best first, in original-image pixels.

    Parameters
    ----------
    rgb
        (H, W, 3) uint8 RGB image (grey (H, W) and RGBA are accepted and converted).
    max_side
        Longer side above which the image is downscaled before detection; default
        ``settings.detection_max_side``.
    min_face
        Smallest face side searched, in pixels of the detection image (after downscaling);
        at least 12. Smaller values cost more time.
    thresholds
        Face-score thresholds of P-, R- and O-Net; default the thresholds in the three cards.
    settings
        Where the models are and how many threads they use; default ``Settings.from_env()``.
    """
    settings = settings or Settings.from_env()
    max_side = max_side or settings.detection_max_side
    pnet, rnet, onet = (load_model(name, settings) for name in (PNET, RNET, ONET))
    if thresholds is None:
        thresholds = (pnet.threshold, rnet.threshold, onet.threshold)
    image = Image.fromarray(_as_rgb(rgb))
    width, height = image.size
    factor = min(1.0, max_side / max(width, height))
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        image = image.resize(size, Image.Resampling.BOX, reducing_gap=3.0)
    normalized = _scaled(np.asarray(image))  # (H, W, 3), for the R-/O-Net crops

    boxes, scores = _stage_pnet(pnet, image, min_face, thresholds[0])
    if len(boxes):
        boxes, scores, _ = _stage_refine(rnet, normalized, boxes, thresholds[1], NMS_RNET)
    landmarks = np.empty((0, 5, 2))
    if len(boxes):
        boxes, scores, landmarks = _stage_refine(onet, normalized, boxes, thresholds[2], NMS_ONET)

    # back to the original image (sizes are rounded, so scale each axis on its own)
    sx, sy = width / image.size[0], height / image.size[1]
    boxes = clip_boxes(boxes * [sx, sy, sx, sy], width, height)
    landmarks = landmarks * [sx, sy]
    faces = []
    for box, score, points in zip(boxes, scores, landmarks, strict=True):
        w, h = box[2] - box[0], box[3] - box[1]
        if w >= 1 and h >= 1:
            xywh = (float(box[0]), float(box[1]), float(w), float(h))
            faces.append(DetectedFace(xywh, float(score), points.astype(np.float32)))
    return faces


def _as_rgb(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {array.dtype}")
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return np.ascontiguousarray(array[:, :, :3])
    raise ValueError(f"expected an (H, W, 3) RGB image, got shape {array.shape}")


def _normalize(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (3, H, W) scaled as the networks were trained."""
    return np.ascontiguousarray(_scaled(rgb).transpose(2, 0, 1))


def _scaled(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (H, W, 3), ``(x - 127.5) / 128``."""
    return (rgb.astype(np.float32) - PIXEL_MEAN) * PIXEL_SCALE


def _stage_pnet(
    pnet: ModelBundle, image: Image.Image, min_face: float, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Square candidate boxes from every pyramid level, after NMS within and across levels."""
    width, height = image.size
    all_boxes, all_scores = [np.empty((0, 4))], [np.empty(0)]
    levels: list[Image.Image] = []
    for scale in pyramid_scales(min(width, height), min_face=min_face):
        size = (max(PNET_CELL, math.ceil(width * scale)), max(PNET_CELL, math.ceil(height * scale)))
        # area-resample from the level two above (about twice the size): much cheaper than from
        # the full image, and barely softer
        source = levels[-2] if len(levels) >= 2 else image
        levels.append(source.resize(size, Image.Resampling.BOX))
        out = pnet.run(_normalize(np.asarray(levels[-1]))[None])
        # the exact scale of this level, per axis, after rounding its size
        level_scale = (size[0] / width, size[1] / height)
        boxes, scores = pnet_boxes(out["prob"][0], out["bbox_reg"][0], level_scale, threshold)
        if len(boxes):
            keep = nms(boxes, scores, NMS_PNET_SCALE)
            all_boxes.append(boxes[keep])
            all_scores.append(scores[keep])
    boxes, scores = np.concatenate(all_boxes), np.concatenate(all_scores)
    if len(boxes):
        keep = nms(boxes, scores, NMS_PNET_ALL)
        boxes, scores = square_boxes(boxes[keep]), scores[keep]
    return boxes, scores


def _stage_refine(
    net: ModelBundle, normalized: np.ndarray, boxes: np.ndarray, threshold: float, nms_iou: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R-Net or O-Net on square crops of ``boxes``: (boxes, scores, landmarks) that pass."""
    side = int(net.card["inputs"][0]["shape"][2])
    outs: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(boxes), BATCH):
        crops = crop_and_resize(normalized, boxes[start : start + BATCH], side)
        for name, value in net.run(crops).items():
            outs.setdefault(name, []).append(value)
    prob = np.concatenate(outs["prob"])[:, 1].astype(np.float64)
    reg = np.concatenate(outs["bbox_reg"]).astype(np.float64)
    landmarks = np.empty((len(boxes), 5, 2))
    if "landmarks" in outs:
        lm = np.concatenate(outs["landmarks"]).astype(np.float64)
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        xs = boxes[:, 0:1] + w * lm[:, :5] - 1
        ys = boxes[:, 1:2] + h * lm[:, 5:] - 1
        landmarks = np.stack([xs, ys], axis=2)
    passed = prob > threshold
    boxes, scores = regress_boxes(boxes[passed], reg[passed]), prob[passed]
    landmarks = landmarks[passed]
    if not len(boxes):
        return boxes, scores, landmarks
    if "landmarks" in outs:
        keep = nms(boxes, scores, nms_iou, method="min")
        return boxes[keep], scores[keep], landmarks[keep]
    keep = nms(boxes, scores, nms_iou)
    return square_boxes(boxes[keep]), scores[keep], landmarks[keep]


def crop_and_resize(image: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
    """Bilinear ``side`` x ``side`` samples of each box of an (H, W, C) image -> (N, C, side, side).

    Samples run from corner to corner (as TensorFlow's ``crop_and_resize``, which the ``mtcnn``
    package uses); samples outside the image are 0, i.e. mid-grey after normalisation.
    """
    height, width, channels = image.shape
    flat = image.reshape(-1, channels)
    t = np.arange(side, dtype=np.float32) / (side - 1)
    boxes = boxes.astype(np.float32)
    ys = boxes[:, 1:2] + t * (boxes[:, 3:4] - boxes[:, 1:2])  # (N, side)
    xs = boxes[:, 0:1] + t * (boxes[:, 2:3] - boxes[:, 0:1])
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    fy = (ys - y0)[:, :, None, None]
    fx = (xs - x0)[:, None, :, None]

    def gather(yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
        inside = ((yi >= 0) & (yi < height))[:, :, None] & ((xi >= 0) & (xi < width))[:, None, :]
        index = (
            np.clip(yi, 0, height - 1)[:, :, None] * width + np.clip(xi, 0, width - 1)[:, None, :]
        )
        return np.take(flat, index, axis=0) * inside[..., None]  # (N, side, side, C)

    top = gather(y0, x0) * (1 - fx) + gather(y0, x0 + 1) * fx
    bottom = gather(y0 + 1, x0) * (1 - fx) + gather(y0 + 1, x0 + 1) * fx
    crops = top * (1 - fy) + bottom * fy
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)


# ---------------------------------------------------------------------------- alignment


def align_face(
    rgb: np.ndarray,
    face: DetectedFace,
    *,
    size: int = 224,
    margin: float = MARGIN,
    pad: Literal["reflect", "edge"] = "reflect",
) -> AlignedFace:
    """A square crop of ``face``, ``margin`` times its box, rotated so that the eyes are level.

    The crop is centred on the box centre with side ``margin * max(w, h)``; where it leaves the
    image the image is extended by reflection (or edge replication), never by a flat colour that
    a detector could learn. Resampling is bilinear, after a box-filter reduction when the crop
    shrinks the face by 2x or more.
    """
    rgb = _as_rgb(rgb)
    x, y, w, h = face.box
    side = margin * max(w, h)
    matrix = alignment_matrix((x + w / 2, y + h / 2), side, eye_angle(face.landmarks), size)

    # the image region under the crop (its four corners), with a little room for the filter
    corners = AlignedFace(rgb, matrix).to_image(
        np.array([[0, 0], [size, 0], [0, size], [size, size]])
    )
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 2
    region = _padded_region(rgb, x0, y0, x1, y1, pad)
    local = matrix.copy()
    local[:, 2] -= (x0, y0)
    reduce_by = int(side / size)
    source = Image.fromarray(region)
    if reduce_by >= 2:
        source = source.reduce(reduce_by)
        local /= reduce_by
    crop = source.transform(
        (size, size), Image.Transform.AFFINE, local.ravel(), Image.Resampling.BILINEAR
    )
    return AlignedFace(np.asarray(crop), matrix)


def _padded_region(
    rgb: np.ndarray, x0: int, y0: int, x1: int, y1: int, mode: Literal["reflect", "edge"]
) -> np.ndarray:
    """``rgb[y0:y1, x0:x1]`` where out-of-image pixels are filled by reflection or replication."""
    height, width = rgb.shape[:2]
    cx0, cy0 = min(max(x0, 0), width - 1), min(max(y0, 0), height - 1)
    cx1, cy1 = max(min(x1, width), cx0 + 1), max(min(y1, height), cy0 + 1)
    inside = rgb[cy0:cy1, cx0:cx1]
    pads = ((cy0 - y0, y1 - cy1), (cx0 - x0, x1 - cx1), (0, 0))
    if mode == "reflect" and min(inside.shape[:2]) < 2:
        mode = "edge"
    return np.pad(inside, pads, mode=mode)


__all__ = [
    "LANDMARK_NAMES",
    "AlignedFace",
    "DetectedFace",
    "align_face",
    "alignment_matrix",
    "crop_and_resize",
    "detect_faces",
    "detect_photo_faces",
    "eye_angle",
    "invert_affine",
    "iou",
    "nms",
    "pnet_boxes",
    "relative_min_face",
    "pyramid_scales",
    "regress_boxes",
    "square_boxes",
]

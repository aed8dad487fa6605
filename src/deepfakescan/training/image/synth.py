"""Self-blended face fakes and the random chain every training face goes through.

Self-Blended Images (Shiohara & Yamasaki, CVPR 2022): a face pasted onto *itself* after a small
colour and geometry change leaves exactly the traces every face swap leaves (a blending
boundary, a colour mismatch, a slight misalignment) and nothing else: no identity change, no
generator fingerprint. A detector trained on them learns the blending traces, which is what
generalises to face-swap methods it never saw. We only have MTCNN's five landmarks, so the mask
is a hull of the landmarks extrapolated to brows and chin, randomly scaled, deformed, eroded or
dilated and softened, then scaled by a random blend ratio.

The random chain (:func:`random_chain`) is applied to *every* training sample of every class,
after synthesis, so that no source format survives: our sources differ in resolution (512 px
FFHQ/StyleGAN2 vs 160 px CIPLAB), chroma subsampling and JPEG quality, and a detector left alone
would learn those instead of faces. Each function takes a ``numpy.random.Generator`` so a sample
is a pure function of its seed (training resumes exactly; validation is fixed).

Arrays are (H, W, 3) uint8 RGB unless said otherwise; landmarks are (5, 2) float ``(x, y)`` in
the order of :data:`deepfakescan.faces.LANDMARK_NAMES`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ...faces import MARGIN

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
"""Maximum mask value, drawn uniformly from this list (SBI's choice; 1 is most common)."""

RESAMPLERS = (
    Image.Resampling.BILINEAR,
    Image.Resampling.BICUBIC,
    Image.Resampling.LANCZOS,
    Image.Resampling.BOX,
)


@dataclass(frozen=True)
class ChainConfig:
    """Strength of the random chain. Defaults are the training chain.

    Every step runs on every class alike; probabilities are per sample.
    """

    crop_scale: tuple[float, float] = (0.80, 1.0)
    """Side of the random square crop, as a fraction of the (margin 1.3) face crop."""
    crop_shift: float = 0.06
    """Largest offset of the crop centre, as a fraction of the side."""
    rescale: tuple[float, float] = (0.5, 1.0)
    """Down-then-up resize to this fraction of the output size: hides native resolution (160 px
    CIPLAB faces are upsampled, 512 px FFHQ ones downsampled) without erasing blend edges."""
    p_rescale: float = 0.5
    jpeg_quality: tuple[int, int] = (40, 100)
    p_jpeg: float = 0.9
    p_blur: float = 0.3
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    p_noise: float = 0.3
    noise_sigma: tuple[float, float] = (1.0, 8.0)
    p_color: float = 0.8
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.3
    p_flip: float = 0.5


TRAIN_CHAIN = ChainConfig()
"""The chain every training sample goes through."""

EVAL_CHAIN = ChainConfig(
    crop_scale=(1.0, 1.0),
    crop_shift=0.0,
    p_rescale=0.0,
    p_jpeg=0.0,
    p_blur=0.0,
    p_noise=0.0,
    p_color=0.0,
    p_flip=0.0,
)
"""No randomness: a centred resize to the model size, as at inference."""


# ---------------------------------------------------------------------------- the random chain


def random_chain(
    rgb: np.ndarray, size: int, rng: np.random.Generator, config: ChainConfig = TRAIN_CHAIN
) -> np.ndarray:
    """Crop, resize to ``size``, rescale, colour-jitter, blur, add noise, JPEG, flip.

    The order mimics a photo's life (crop, resize, edits, compression) so that the last lossy
    step, JPEG at a random quality and chroma subsampling, overwrites every source's own
    compression traces. Returns (size, size, 3) uint8.
    """
    img = Image.fromarray(rgb)
    img = _random_crop(img, size, rng, config)
    if rng.random() < config.p_rescale:
        small = max(8, round(size * rng.uniform(*config.rescale)))
        img = img.resize((small, small), _pick(RESAMPLERS, rng)).resize(
            (size, size), _pick(RESAMPLERS[:3], rng)
        )
    arr = np.asarray(img, dtype=np.float32)
    if rng.random() < config.p_color:
        arr = color_jitter(arr, rng, config)
    img = Image.fromarray(_to_uint8(arr))
    if rng.random() < config.p_blur:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(*config.blur_sigma)))
    if rng.random() < config.p_noise:
        noisy = np.asarray(img, dtype=np.float32)
        noisy = noisy + rng.normal(0.0, rng.uniform(*config.noise_sigma), noisy.shape)
        img = Image.fromarray(_to_uint8(noisy))
    if rng.random() < config.p_jpeg:
        img = jpeg(img, int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1)), rng)
    out = np.asarray(img)
    if rng.random() < config.p_flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def _pick(options: tuple, rng: np.random.Generator):
    return options[int(rng.integers(len(options)))]


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def _random_crop(
    img: Image.Image, size: int, rng: np.random.Generator, config: ChainConfig
) -> Image.Image:
    width, height = img.size
    side = min(width, height) * rng.uniform(*config.crop_scale)
    cx = width / 2 + rng.uniform(-1, 1) * config.crop_shift * side
    cy = height / 2 + rng.uniform(-1, 1) * config.crop_shift * side
    # keep the box inside the image (PIL refuses boxes that leave it)
    cx = min(max(cx, side / 2), width - side / 2)
    cy = min(max(cy, side / 2), height - side / 2)
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    resample = _pick(RESAMPLERS[:3], rng) if config.p_rescale > 0 else Image.Resampling.BILINEAR
    # reducing_gap: a box pre-filter when shrinking a lot, so large sources do not alias
    return img.resize((size, size), resample, box=box, reducing_gap=3.0)


def color_jitter(
    arr: np.ndarray, rng: np.random.Generator, config: ChainConfig = TRAIN_CHAIN
) -> np.ndarray:
    """Random brightness, contrast and saturation on a float (H, W, 3) array in [0, 255]."""
    arr = arr * (1.0 + rng.uniform(-config.brightness, config.brightness))
    mean = arr.mean()
    arr = (arr - mean) * (1.0 + rng.uniform(-config.contrast, config.contrast)) + mean
    grey = arr.mean(axis=2, keepdims=True)
    return (arr - grey) * (1.0 + rng.uniform(-config.saturation, config.saturation)) + grey


def jpeg(img: Image.Image, quality: int, rng: np.random.Generator | None = None) -> Image.Image:
    """Re-encode as JPEG at ``quality``, with random chroma subsampling (4:4:4/4:2:2/4:2:0)."""
    subsampling = 2 if rng is None else int(rng.integers(3))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality), subsampling=subsampling)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


# ---------------------------------------------------------------------------- self-blending


def face_hull(landmarks: np.ndarray) -> np.ndarray:
    """(K, 2) polygon around the inner face, extrapolated from five landmarks.

    Eyes, nose and mouth corners cover too little of the face, so points are added along the
    face's own axes (eye line and eye-to-mouth line): brows above the eyes, cheeks beside them,
    the chin below the mouth. Proportions are those of an average frontal face.
    """
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    left_eye, right_eye, nose, mouth_l, mouth_r = pts
    eye_mid = (left_eye + right_eye) / 2
    mouth_mid = (mouth_l + mouth_r) / 2
    across = right_eye - left_eye
    eye_dist = max(np.linalg.norm(across), 1.0)
    ex = across / eye_dist
    down = mouth_mid - eye_mid
    # the "down" axis: perpendicular to the eye line, pointing towards the mouth
    ey = np.array([-ex[1], ex[0]])
    if ey @ down < 0:
        ey = -ey
    height = max(ey @ down, 0.5 * eye_dist)
    extra = [
        left_eye - 0.45 * eye_dist * ex - 0.55 * height * ey,  # outer brows
        right_eye + 0.45 * eye_dist * ex - 0.55 * height * ey,
        eye_mid - 0.75 * height * ey,  # brow middle
        left_eye - 0.55 * eye_dist * ex + 0.5 * height * ey,  # cheeks
        right_eye + 0.55 * eye_dist * ex + 0.5 * height * ey,
        mouth_l - 0.25 * eye_dist * ex + 0.35 * height * ey,  # jaw
        mouth_r + 0.25 * eye_dist * ex + 0.35 * height * ey,
        mouth_mid + 0.6 * height * ey,  # chin
        nose,
    ]
    return _convex_hull(np.vstack([pts, np.array(extra)]))


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Andrew's monotone chain; (K, 2) hull vertices, counter-clockwise."""
    pts = sorted(map(tuple, np.asarray(points, dtype=np.float64)))
    if len(pts) <= 2:
        return np.array(pts)

    def cross(o, a, b) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])


def blend_mask(
    shape: tuple[int, int], landmarks: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Soft, deformed face mask: (H, W) float32 in [0, 1], 0 far from the face.

    The hull is scaled about its centre, its outline resampled and pushed in and out by smooth
    random noise (the deformation), rasterised, eroded or dilated, blurred into a soft edge of
    random width, and multiplied by a blend ratio from :data:`BLEND_RATIOS`.
    """
    height, width = shape
    hull = face_hull(landmarks)
    centre = hull.mean(axis=0)
    hull = centre + (hull - centre) * rng.uniform(0.85, 1.2)
    outline = _deform(_resample_polygon(hull, 48), centre, rng)
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in outline], fill=255)
    face_side = float(np.ptp(hull, axis=0).max())
    morph = int(rng.integers(-2, 3))
    if morph:
        radius = max(1, int(abs(morph) * face_side / 60))
        kernel = 2 * radius + 1
        morph_filter = ImageFilter.MaxFilter if morph > 0 else ImageFilter.MinFilter
        canvas = canvas.filter(morph_filter(min(kernel, 15)))
    soft = max(0.5, face_side * rng.uniform(0.01, 0.08))
    canvas = canvas.filter(ImageFilter.GaussianBlur(soft))
    mask = np.asarray(canvas, dtype=np.float32) / 255.0
    ratio = BLEND_RATIOS[int(rng.integers(len(BLEND_RATIOS)))]
    return mask * np.float32(ratio)


def _resample_polygon(poly: np.ndarray, n: int) -> np.ndarray:
    closed = np.vstack([poly, poly[:1]])
    seg = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.linspace(0.0, cum[-1], n, endpoint=False)
    return np.column_stack([np.interp(t, cum, closed[:, 0]), np.interp(t, cum, closed[:, 1])])


def _deform(outline: np.ndarray, centre: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Push each outline point along its ray from the centre by smooth periodic noise."""
    n = len(outline)
    phase = np.arange(n) / n * 2 * np.pi
    wobble = np.zeros(n)
    for k in (2, 3, 4, 5):
        wobble += rng.normal(0.0, 0.04 / k) * np.cos(k * phase + rng.uniform(0, 2 * np.pi))
    return centre + (outline - centre) * (1.0 + wobble)[:, None]


def jitter_source(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The copy whose face is pasted back: colour shift, contrast, sharpness, a small warp.

    Kept small, as in SBI: large changes make fakes trivial and teach nothing about real swaps.
    """
    arr = rgb.astype(np.float32)
    arr = arr + rng.uniform(-20, 20, size=3)  # per-channel shift (RGB shift)
    arr = (arr - 128.0) * rng.uniform(0.9, 1.1) + 128.0 + rng.uniform(-10, 10)
    grey = arr.mean(axis=2, keepdims=True)
    arr = (arr - grey) * rng.uniform(0.85, 1.15) + grey
    img = Image.fromarray(_to_uint8(arr))
    pick = rng.random()
    if pick < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    elif pick < 0.6:
        img = img.filter(ImageFilter.UnsharpMask(radius=2, percent=int(rng.integers(30, 120))))
    # geometry: scale about the centre and shift by a few per cent (the misalignment of a swap)
    height, width = rgb.shape[:2]
    scale_x = rng.uniform(0.95, 1.05)
    scale_y = rng.uniform(0.95, 1.05)
    dx, dy = rng.uniform(-0.03, 0.03, size=2) * (width, height)
    cx, cy = width / 2, height / 2
    # PIL's AFFINE maps output -> input coordinates
    coeffs = (
        1 / scale_x,
        0.0,
        cx - (cx + dx) / scale_x,
        0.0,
        1 / scale_y,
        cy - (cy + dy) / scale_y,
    )
    img = img.transform((width, height), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
    # the warp leaves black corners; they are outside any face mask but fill them anyway
    warped = np.asarray(img).copy()
    holes = (
        np.asarray(
            Image.new("L", (width, height), 255).transform(
                (width, height), Image.Transform.AFFINE, coeffs, Image.Resampling.NEAREST
            )
        )
        == 0
    )
    warped[holes] = rgb[holes]
    return warped


def blend(target: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``mask * source + (1 - mask) * target``, rounded; exactly ``target`` where mask is 0."""
    m = mask.astype(np.float32)[:, :, None]
    out = m * source.astype(np.float32) + (1.0 - m) * target.astype(np.float32)
    return _to_uint8(out)


def self_blend(
    rgb: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A self-blended fake of one real face crop: ``(fake, mask)``.

    The jittered copy's face is pasted onto the untouched original, so the fake equals ``rgb``
    exactly wherever ``mask`` is 0 and every trace of the fake lies inside the mask. (SBI also
    swaps the roles at random; with our five-landmark masks that would jitter the background
    too, which real swaps do not do.)
    """
    rgb = np.ascontiguousarray(rgb)
    mask = blend_mask(rgb.shape[:2], landmarks, rng)
    return blend(rgb, jitter_source(rgb, rng), mask), mask


BLEND_MARGIN = MARGIN
"""A whole-image self-blend works on a square of the training crops' margin x the face box, so
the copy's shift and scale jitter (a share of the crop's side) match training's."""


def self_blend_faces(rgb: np.ndarray, faces, seed: int) -> np.ndarray:
    """Self-blend every face of a whole image or video frame (``faces`` from ``detect_faces``).

    Each face gets its own generator seeded by ``(seed, rank left to right)``, so the frames of
    one clip blended with one ``seed`` carry the same manipulation, as a face swap's frames do.
    """
    out = np.array(rgb, copy=True)
    height, width = out.shape[:2]
    for rank, face in enumerate(sorted(faces, key=lambda f: f.box[0])):
        x, y, w, h = face.box
        side = BLEND_MARGIN * max(w, h)
        x0, y0 = int(max(0, x + w / 2 - side / 2)), int(max(0, y + h / 2 - side / 2))
        x1 = int(min(width, x + w / 2 + side / 2))
        y1 = int(min(height, y + h / 2 + side / 2))
        if x1 - x0 < 16 or y1 - y0 < 16:
            continue
        landmarks = np.asarray(face.landmarks, np.float64) - (x0, y0)
        fake, _ = self_blend(out[y0:y1, x0:x1], landmarks, np.random.default_rng([seed, rank]))
        out[y0:y1, x0:x1] = fake
    return out


__all__ = [
    "BLEND_MARGIN",
    "BLEND_RATIOS",
    "EVAL_CHAIN",
    "TRAIN_CHAIN",
    "ChainConfig",
    "blend",
    "blend_mask",
    "color_jitter",
    "face_hull",
    "jitter_source",
    "jpeg",
    "random_chain",
    "self_blend",
    "self_blend_faces",
]

"""Still images to canonical RGB arrays, refusing pixel bombs before any pixel is decoded.

``Image.open`` only parses the header, so the pixel limit (``Settings.max_image_pixels``) is
checked on the declared size first: a 30000x30000 PNG costs a few kB of header reading, never
2.7 GB of pixels. Pillow's own ``MAX_IMAGE_PIXELS`` bomb guard is aligned with ours for the
duration of the open, and its ``DecompressionBombError`` is wrapped as ``TooLarge`` anyway.

Canonical form: ``uint8`` ``(H, W, 3)`` C-contiguous RGB, after EXIF orientation, alpha
composited on white, first frame only for animations and multi-page files. Truncated or
damaged files are ``CorruptMedia``: Pillow's ``LOAD_TRUNCATED_IMAGES`` stays ``False``, we
never analyse half an image as if whole.

Memory: a picture over ``Settings.decode_pixels`` is analysed reduced by a whole factor on each
side (:func:`reduction_factor`), so a scan's memory does not grow with the pixel limit. A JPEG
is decoded directly small (libjpeg's DCT scaling by 1/2, 1/4 or 1/8, via ``Image.draft``): the
full-size picture never exists. Other formats have no reduced decode in Pillow: the full
picture is decoded once and averaged down band by band into the array, so at most one
full-size copy exists, and it is freed before any model runs. ``DecodedImage.width`` /
``height`` stay the file's size; pixel ``(x, y)`` of ``rgb`` covers file pixels
``(x, y) * reduced_by`` onwards, which is how face boxes are mapped back to the file.
"""

from __future__ import annotations

import math
import struct
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFile

from ..config import Settings
from ..errors import CorruptMedia, TooLarge, UnsupportedMedia
from .sniff import sniff
from .source import MediaSource

# Pillow's format names for the formats sniff() reports: open() only tries these plugins
PIL_FORMATS = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "bmp": "BMP",
    "tiff": "TIFF",
    "gif": "GIF",
}

PIXEL_COST = {"webp": 4}
"""Formats whose decoder needs several full copies of the picture, and how many: their pixel
limit is ``max_image_pixels`` divided by it. Pillow's WebP decoder (libwebp's animation
decoder, used for every WebP) holds its canvas, a second canvas and the frame's bytes besides
the picture: 16 bytes a pixel, where a PNG costs 4 and a JPEG decodes directly small."""

# Image.MAX_IMAGE_PIXELS is process-global: serialise the short window where we change it
_PIXELS_LOCK = threading.Lock()
BAND_ROWS = 64
"""Rows of a decoded picture converted at a time into its array (see ``_to_array``)."""
JPEG_SCALES = (1, 2, 4, 8)
"""Reductions libjpeg decodes directly (DCT scaling), smallest first."""
# EXIF orientation -> the array operation that makes the picture upright (Pillow's
# ``ImageOps.exif_transpose`` table, for arrays): 2 mirror, 3 half turn, 4 flip, 5 transpose,
# 6 quarter turn clockwise, 7 transverse, 8 quarter turn anticlockwise
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


@dataclass
class DecodedImage:
    """An image in canonical form.

    ``width``/``height`` are the file's size after EXIF orientation. ``rgb`` is that size
    divided by ``reduced_by`` (rounded up): ``rgb.shape == (height, width, 3)`` unless the
    picture was over ``Settings.decode_pixels``, and ``warnings`` then says so in words.
    """

    rgb: np.ndarray
    format: str
    width: int
    height: int
    orientation_applied: bool
    reduced_by: int = 1
    """Whole factor by which each side was reduced when decoding (1: native pixels)."""
    warnings: list[str] = field(default_factory=list)


def reduction_factor(
    size: tuple[int, int], budget: int, factors: tuple[int, ...] | None = None
) -> int:
    """The smallest whole factor that brings ``size`` within ``budget`` pixels.

    Reducing by ``f`` gives ``ceil(w / f) x ceil(h / f)`` pixels (Pillow's ``reduce`` and
    libjpeg's DCT scaling both round up). With ``factors`` (JPEG: :data:`JPEG_SCALES`) only
    those are allowed, and the largest one is returned when none is enough.
    """
    width, height = size

    def fits(f: int) -> bool:
        return math.ceil(width / f) * math.ceil(height / f) <= budget

    if factors is not None:
        return next((f for f in factors if fits(f)), factors[-1])
    factor = max(1, math.isqrt(width * height // max(1, budget)))  # never above the answer
    while not fits(factor):
        factor += 1
    return factor


def load_image(source: MediaSource, settings: Settings) -> DecodedImage:
    """Decode ``source`` to RGB within ``settings.max_image_pixels``.

    Raises
    ------
    UnsupportedMedia
        Not an image format we decode.
    TooLarge
        The header declares more than ``max_image_pixels`` pixels (checked before decoding).
    CorruptMedia
        Truncated or damaged data, with Pillow's message.
    """
    sniffed = sniff(source)
    if sniffed.kind != "image":
        raise UnsupportedMedia(
            f"{source.name}: this is {sniffed.kind} ({sniffed.format}), not an image"
        )
    assert not ImageFile.LOAD_TRUNCATED_IMAGES, "truncated images must be refused, not padded"
    with source.open() as stream:
        img = _open_checked(source, stream, sniffed.format, settings)
        size = img.size
        try:
            img.seek(0)  # first frame of GIF / animated WebP / multi-page TIFF
            drafted = _draft(img, settings.decode_pixels) if sniffed.format == "jpeg" else 1
            img.load()
            orientation = _exif_orientation(img)
            factor = reduction_factor(img.size, settings.decode_pixels)
            arr = _to_array(img, factor, orientation)
        except Image.DecompressionBombError as e:
            raise _too_large(source, img.size, settings, sniffed.format) from e
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as e:
            raise CorruptMedia(f"{source.name}: damaged or truncated {sniffed.format}: {e}") from e
        finally:
            img.close()
    return _decoded(arr, sniffed.format, size, orientation, drafted * factor)


def _decoded(
    arr: np.ndarray, fmt: str, size: tuple[int, int], orientation: int | None, reduced_by: int
) -> DecodedImage:
    """The decoded picture with the file's upright size, and a warning when it was reduced."""
    turned = orientation in (5, 6, 7, 8)
    width, height = (size[1], size[0]) if turned else size
    notes = []
    if reduced_by > 1:
        notes.append(
            f"The image is {width}x{height} ({width * height / 1e6:.3g} MP); it was analysed"
            f" at {arr.shape[1]}x{arr.shape[0]} ({arr.shape[0] * arr.shape[1] / 1e6:.3g} MP,"
            f" reduced by {reduced_by} on each side when decoding) to keep memory bounded"
            " (DEEPFAKESCAN_DECODE_PIXELS). Face boxes are given in the file's pixels."
        )
    return DecodedImage(
        rgb=arr,
        format=fmt,
        width=width,
        height=height,
        orientation_applied=orientation not in (None, 1),
        reduced_by=reduced_by,
        warnings=notes,
    )


def _draft(img: Image.Image, budget: int) -> int:
    """Ask libjpeg to decode a JPEG over ``budget`` pixels at 1/2, 1/4 or 1/8 scale (DCT
    scaling: the full-size picture is never made). Returns the scale it will decode at."""
    factor = reduction_factor(img.size, budget, JPEG_SCALES)
    if factor == 1:
        return 1
    width, height = img.size
    if img.draft(None, (max(1, width // factor), max(1, height // factor))) is None:
        return 1  # a JPEG Pillow cannot draft (several tiles): reduced after decoding instead
    return round(width / img.size[0])


def check_image_header(source: MediaSource, fmt: str, settings: Settings) -> None:
    """Refuse an image whose header declares too many pixels (413) or cannot be parsed (422).

    Reads the header only, never a pixel: what an upload is checked for before it is queued.
    """
    with source.open() as stream:
        _open_checked(source, stream, fmt, settings).close()


def _open_checked(source: MediaSource, stream, fmt: str, settings: Settings) -> Image.Image:
    """Parse the header only, and refuse it if it declares too many pixels."""
    with _PIXELS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        # Pillow raises DecompressionBombError above 2x this; we want exactly our limit
        Image.MAX_IMAGE_PIXELS = max(1, settings.max_image_pixels // 2)
        try:
            img = Image.open(stream, formats=[PIL_FORMATS[fmt]])
        except Image.DecompressionBombError as e:
            raise TooLarge(
                f"{source.name}: over the limit of {settings.max_image_pixels} pixels"
                f" (DEEPFAKESCAN_MAX_PIXELS): {e}"
            ) from e
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as e:
            raise CorruptMedia(f"{source.name}: cannot read this {fmt} image: {e}") from e
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    width, height = img.size
    if width * height > settings.max_image_pixels // PIXEL_COST.get(fmt, 1):
        img.close()
        raise _too_large(source, (width, height), settings, fmt)
    if width <= 0 or height <= 0:
        img.close()
        raise CorruptMedia(f"{source.name}: the image header declares {width}x{height} pixels")
    return img


def _too_large(
    source: MediaSource, size: tuple[int, int], settings: Settings, fmt: str = ""
) -> TooLarge:
    width, height = size
    cost = PIXEL_COST.get(fmt, 1)
    limit = f"the limit of {settings.max_image_pixels // cost} pixels"
    if cost > 1:
        limit += (
            f" for {PIL_FORMATS[fmt]} (1/{cost} of DEEPFAKESCAN_MAX_PIXELS: its decoder holds"
            f" {cost} copies of the picture; convert it to PNG or JPEG)"
        )
    else:
        limit += " (DEEPFAKESCAN_MAX_PIXELS)"
    return TooLarge(f"{source.name}: over {limit}: {width}x{height} = {width * height} pixels")


def _to_array(img: Image.Image, factor: int, orientation: int | None) -> np.ndarray:
    """``(H, W, 3)`` uint8, upright, ``factor`` times smaller on each side (box averaging).

    The decoded picture is converted (and averaged down) band by band straight into the
    array, so besides the array the only full-size copy is ``img`` itself, closed here before
    any model runs: a 24 MP RGB picture costs 96 MB in Pillow and 72 MB as an array at the
    peak, whatever its mode (a whole-picture ``convert``, alpha composite or ``np.asarray``
    would each add full-size copies). The orientation is applied to the finished array.
    """
    span = _grey_span(img)
    width, height = img.size
    out = np.empty((-(-height // factor), -(-width // factor), 3), dtype=np.uint8)
    step = max(1, BAND_ROWS // factor) * factor  # source rows: converting a band costs
    for top in range(0, height, step):  # several copies of it (RGBA, float), so keep it thin
        box = (0, top, width, min(height, top + step))
        if img.mode == "RGB":
            small = img.reduce(factor, box)  # a plain crop when factor is 1
        else:
            with img.crop(box) as band:
                rgb = _to_rgb(band, span)
                small = rgb.reduce(factor) if factor > 1 else rgb
                if small is not rgb:
                    rgb.close()
        with small:
            row = top // factor
            out[row : row + small.height] = np.asarray(small, dtype=np.uint8)
    img.close()
    upright = _UPRIGHT.get(orientation)
    return out if upright is None else np.ascontiguousarray(upright(out))


def _grey_span(img: Image.Image) -> tuple[float, float] | None:
    """(min, max) of a 32-bit integer or float picture: its 8-bit grey scale is set by the
    whole picture's range, which one band alone does not know. ``None`` for other modes."""
    if img.mode not in ("I", "F"):
        return None
    lo, hi = img.getextrema()
    return float(lo), float(hi)


def _exif_orientation(img: Image.Image) -> int | None:
    try:
        return img.getexif().get(0x0112)
    except Exception:  # a broken EXIF block must not sink an otherwise good image
        return None


def _to_rgb(img: Image.Image, span: tuple[float, float] | None = None) -> Image.Image:
    """Any Pillow mode to RGB; transparency is composited on white, 16-bit scaled to 8.

    32-bit integer pictures are scaled by their maximum and float ones by their range:
    ``span`` gives the whole picture's (:func:`_grey_span`) when ``img`` is a band of it.
    """
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode != "I" else max((span or _grey_span(img))[1], 1.0)
        grey = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = span or _grey_span(img)
        grey = np.clip((arr - lo) / (hi - lo or 1.0) * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def downscale_for_detection(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink so the longer side is at most ``max_side``, with area (box) averaging.

    Parameters
    ----------
    rgb:
        ``(H, W, 3)`` uint8.
    max_side:
        Target bound on ``max(H, W)``.

    Returns
    -------
    (rgb_small, scale)
        ``scale`` = small / original (``1.0`` and the same array when already small enough);
        divide detections by it to map them back to original pixels.
    """
    height, width = rgb.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return rgb, 1.0
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = Image.fromarray(rgb).resize(size, Image.Resampling.BOX)
    return np.ascontiguousarray(np.asarray(small, dtype=np.uint8)), scale


__all__ = [
    "DecodedImage",
    "check_image_header",
    "downscale_for_detection",
    "load_image",
    "reduction_factor",
]

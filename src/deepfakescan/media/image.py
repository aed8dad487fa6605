"""Still images to canonical RGB arrays, refusing pixel bombs before any pixel is decoded.

``Image.open`` only parses the header, so the pixel limit (``Settings.max_image_pixels``) is
checked on the declared size first: a 30000x30000 PNG costs a few kB of header reading, never
2.7 GB of pixels. Pillow's own ``MAX_IMAGE_PIXELS`` bomb guard is aligned with ours for the
duration of the open, and its ``DecompressionBombError`` is wrapped as ``TooLarge`` anyway.

Canonical form: ``uint8`` ``(H, W, 3)`` C-contiguous RGB, after EXIF orientation (face boxes
in reports are given in these coordinates), alpha composited on white, first frame only for
animations and multi-page files. Truncated or damaged files are ``CorruptMedia``: Pillow's
``LOAD_TRUNCATED_IMAGES`` stays ``False``, we never analyse half an image as if whole.
"""

from __future__ import annotations

import struct
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps

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

# Image.MAX_IMAGE_PIXELS is process-global: serialise the short window where we change it
_PIXELS_LOCK = threading.Lock()
BAND_ROWS = 256
"""Rows copied at a time from a decoded picture into its array (see ``_rgb_array``)."""


@dataclass
class DecodedImage:
    """An image in canonical form.

    ``width``/``height`` are after EXIF orientation, i.e. ``rgb.shape == (height, width, 3)``.
    """

    rgb: np.ndarray
    format: str
    width: int
    height: int
    orientation_applied: bool


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
        try:
            img.seek(0)  # first frame of GIF / animated WebP / multi-page TIFF
            img.load()
            orientation_applied = _exif_orientation(img) not in (None, 1)
            arr = _to_array(img, orientation_applied)
        except Image.DecompressionBombError as e:
            raise _too_large(source, img.size, settings) from e
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as e:
            raise CorruptMedia(f"{source.name}: damaged or truncated {sniffed.format}: {e}") from e
        finally:
            img.close()
    return DecodedImage(
        rgb=arr,
        format=sniffed.format,
        width=arr.shape[1],
        height=arr.shape[0],
        orientation_applied=orientation_applied,
    )


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
    if width * height > settings.max_image_pixels:
        img.close()
        raise _too_large(source, (width, height), settings)
    if width <= 0 or height <= 0:
        img.close()
        raise CorruptMedia(f"{source.name}: the image header declares {width}x{height} pixels")
    return img


def _too_large(source: MediaSource, size: tuple[int, int], settings: Settings) -> TooLarge:
    width, height = size
    return TooLarge(
        f"{source.name}: over the limit of {settings.max_image_pixels} pixels"
        f" (DEEPFAKESCAN_MAX_PIXELS): {width}x{height} = {width * height} pixels"
    )


def _to_array(img: Image.Image, orient: bool) -> np.ndarray:
    """``(H, W, 3)`` uint8, upright, holding at most two full-size copies at any moment.

    A 64 MP picture is 256 MB in Pillow (4 bytes a pixel) and 192 MB as an array: each
    intermediate image (the transposed one, the RGB one) is dropped as soon as the next
    exists, and no copy is made when there is nothing to transpose or convert.
    """
    upright = ImageOps.exif_transpose(img) if orient else img
    if upright is not img:
        img.close()  # frees the decoded pixels: the transposed copy holds them now
    rgb = _to_rgb(upright)
    if rgb is not upright:
        upright.close()
    try:
        return _rgb_array(rgb)
    finally:
        rgb.close()


def _rgb_array(rgb: Image.Image) -> np.ndarray:
    """An RGB image's pixels, copied band by band: ``np.asarray`` of the whole image goes
    through ``tobytes()``, whose chunks and joined result are two more full-size copies."""
    width, height = rgb.size
    out = np.empty((height, width, 3), dtype=np.uint8)
    for top in range(0, height, BAND_ROWS):
        bottom = min(height, top + BAND_ROWS)
        with rgb.crop((0, top, width, bottom)) as band:
            out[top:bottom] = np.asarray(band, dtype=np.uint8)
    return out


def _exif_orientation(img: Image.Image) -> int | None:
    try:
        return img.getexif().get(0x0112)
    except Exception:  # a broken EXIF block must not sink an otherwise good image
        return None


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB; transparency is composited on white, 16-bit scaled to 8."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        grey = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        grey = ((arr - lo) / (hi - lo or 1.0) * 255.0).astype(np.uint8)
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


__all__ = ["DecodedImage", "check_image_header", "downscale_for_detection", "load_image"]

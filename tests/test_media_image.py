"""load_image: canonical RGB, pixel bombs refused before decoding, damage is 422."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from deepfakescan.config import Settings
from deepfakescan.errors import CorruptMedia, TooLarge, UnsupportedMedia
from deepfakescan.media.image import (
    DecodedImage,
    downscale_for_detection,
    load_image,
    reduction_factor,
)
from deepfakescan.media.source import MediaSource

try:  # tests/ as a package (relative imports, like test_pipeline) or as a plain directory
    from . import fixtures as F
except ImportError:
    import fixtures as F

SETTINGS = Settings()


def load(data: bytes, settings: Settings = SETTINGS) -> DecodedImage:
    return load_image(MediaSource.from_any(data, settings), settings)


def test_jpeg_decodes_to_contiguous_rgb_uint8():
    img = load(F.make_jpeg(64, 48))
    assert img.rgb.shape == (48, 64, 3)
    assert img.rgb.dtype == np.uint8 and img.rgb.flags.c_contiguous
    assert (img.format, img.width, img.height, img.orientation_applied) == ("jpeg", 64, 48, False)


def test_png_decodes_losslessly():
    img = load(F.make_png(40, 30))
    assert np.array_equal(img.rgb, F.gradient_rgb(40, 30))


def test_exif_orientation_6_swaps_width_and_height():
    img = load(F.make_jpeg(64, 48, orientation=6))
    assert (img.width, img.height) == (48, 64)
    assert img.rgb.shape == (64, 48, 3)
    assert img.orientation_applied
    # orientation 6 = rotate 90 clockwise to display: the blue top-left block goes top-right
    assert img.rgb[5, -5, 2] > 200 and img.rgb[-5, 5, 2] < 60


@pytest.mark.parametrize("mode", ["P", "LA", "RGBA", "I;16", "1", "L"])
def test_any_png_mode_becomes_rgb(mode):
    img = load(F.make_png(32, 16, mode=mode))
    assert img.rgb.shape == (16, 32, 3) and img.rgb.dtype == np.uint8


def test_cmyk_jpeg_becomes_rgb():
    img = load(F.make_image("JPEG", 32, 16, mode="CMYK"))
    assert img.rgb.shape == (16, 32, 3)


def test_transparent_pixels_are_composited_on_white():
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    img = load(buf.getvalue())
    assert (img.rgb == 255).all()


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "TIFF"])
def test_animation_or_multipage_gives_the_first_frame(fmt):
    img = load(F.make_image(fmt, 32, 16, frames=3))
    assert img.rgb.shape == (16, 32, 3)
    # the first frame is the gradient, later frames are flat grey
    assert img.rgb.std() > 20


def test_30000_square_png_is_refused_before_any_pixel_is_decoded():
    data = F.png_claiming_size(30000, 30000)
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge, match="limit of 64000000 pixels"):
            load(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


def test_pixel_limit_follows_settings_not_pillows_default():
    settings = Settings(max_image_pixels=1000)
    with pytest.raises(TooLarge) as info:
        load(F.make_png(40, 30), settings)
    assert info.value.status == 413
    assert load(F.make_png(30, 30), settings).width == 30


def test_webp_limit_is_a_quarter_of_the_pixel_limit_for_its_costly_decoder():
    settings = Settings(max_image_pixels=400)
    with pytest.raises(TooLarge, match="limit of 100 pixels for WEBP"):
        load(F.make_image("WEBP", 20, 20), settings)
    assert load(F.make_image("WEBP", 10, 10), settings).width == 10
    assert load(F.make_png(20, 20), settings).width == 20


def test_pillow_bomb_error_is_wrapped_as_too_large():
    # Pillow's own guard fires at 2x our limit: it must come out as TooLarge too
    settings = Settings(max_image_pixels=100_000)
    with pytest.raises(TooLarge):
        load(F.png_claiming_size(1000, 1000), settings)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"])
def test_truncated_image_is_corrupt_media(fmt):
    data = F.make_image(fmt, 64, 48)
    with pytest.raises(CorruptMedia) as info:
        load(data[: len(data) // 2])
    assert info.value.status == 422
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_jpeg_with_only_its_header_is_corrupt_media():
    with pytest.raises(CorruptMedia):
        load(F.make_jpeg(64, 48)[:40])


def test_audio_given_to_the_image_loader_is_unsupported():
    with pytest.raises(UnsupportedMedia):
        load(F.tone_wav(0.1))


def test_downscale_bounds_the_longer_side_and_reports_the_scale():
    rgb = F.gradient_rgb(400, 200)
    small, scale = downscale_for_detection(rgb, 100)
    assert small.shape == (50, 100, 3) and small.dtype == np.uint8
    assert scale == pytest.approx(0.25)
    same, one = downscale_for_detection(rgb, 400)
    assert same is rgb and one == 1.0


# ------------------------------------------------- large pictures: analysed at a reduced size


def test_64_megapixel_jpeg_is_decoded_small_with_its_file_size_and_a_warning():
    buf = io.BytesIO()
    Image.new("RGB", (8000, 8000), (120, 90, 60)).save(buf, "JPEG")
    img = load(buf.getvalue())
    # 1/2 scale from libjpeg: 16 MP decoded, within the default 24 MP budget
    assert img.rgb.shape == (4000, 4000, 3) and img.rgb.flags.c_contiguous
    assert (img.width, img.height, img.reduced_by) == (8000, 8000, 2)
    [warning] = img.warnings
    assert "8000x8000 (64 MP)" in warning and "4000x4000 (16 MP" in warning
    assert np.abs(img.rgb[2000, 2000].astype(int) - (120, 90, 60)).max() <= 3


def test_image_under_the_decode_budget_decodes_unchanged():
    img = load(F.make_png(40, 30), Settings(decode_pixels=40 * 30))
    assert np.array_equal(img.rgb, F.gradient_rgb(40, 30))
    assert img.reduced_by == 1 and img.warnings == []


def test_png_over_the_budget_is_the_box_average_of_the_full_picture():
    img = load(F.make_png(40, 30), Settings(decode_pixels=300))
    expected = np.asarray(Image.fromarray(F.gradient_rgb(40, 30)).reduce(2))
    assert img.rgb.shape == (15, 20, 3) and (img.width, img.height) == (40, 30)
    assert np.array_equal(img.rgb, expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_made_upright_as_pillow_does_at_any_size(orientation):
    data = F.make_image("PNG", 40, 30, orientation=orientation)
    with Image.open(io.BytesIO(data)) as img:
        upright = ImageOps.exif_transpose(img).convert("RGB")
    full = load(data)
    assert np.array_equal(full.rgb, np.asarray(upright))
    small = load(data, Settings(decode_pixels=300))
    assert (small.width, small.height) == (full.width, full.height) == upright.size
    assert small.orientation_applied == full.orientation_applied == (orientation != 1)
    assert np.array_equal(small.rgb, np.asarray(upright.reduce(2)))


def test_reduced_jpeg_with_exif_rotation_keeps_the_files_upright_size():
    img = load(F.make_jpeg(64, 48, orientation=6), Settings(decode_pixels=64 * 48 // 4))
    assert (img.width, img.height, img.reduced_by) == (48, 64, 2)
    assert img.rgb.shape == (32, 24, 3)
    assert img.rgb[3, -3, 2] > 200 and img.rgb[-3, 3, 2] < 60  # blue block went top-right


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [("PNG", "P"), ("PNG", "LA"), ("PNG", "RGBA"), ("PNG", "I;16"), ("PNG", "1")]
    + [("PNG", "L"), ("TIFF", "I"), ("TIFF", "F"), ("TIFF", "CMYK"), ("WEBP", "RGB")],
)
def test_any_mode_over_the_budget_is_the_reduced_full_picture(fmt, mode):
    data = F.make_image(fmt, 40, 30, mode=mode)
    small = load(data, Settings(decode_pixels=300))
    assert small.rgb.shape == (15, 20, 3) and small.rgb.dtype == np.uint8
    expected = np.asarray(Image.fromarray(load(data).rgb).reduce(2), dtype=np.int16)
    assert np.abs(small.rgb.astype(np.int16) - expected).max() <= 1  # rounding only


def test_transparent_pixels_are_white_in_a_reduced_picture_too():
    buf = io.BytesIO()
    Image.new("RGBA", (40, 30), (255, 0, 0, 0)).save(buf, format="PNG")
    img = load(buf.getvalue(), Settings(decode_pixels=300))
    assert img.rgb.shape == (15, 20, 3) and (img.rgb == 255).all()


def test_reduction_factor_keeps_phone_photos_and_bounds_the_largest():
    budget = Settings().decode_pixels
    assert reduction_factor((6000, 4000), budget) == 1  # 24 MP: native pixels
    assert reduction_factor((8160, 6120), budget) == 2  # a 50 MP phone photo: 12.5 MP
    assert reduction_factor((7999, 7999), budget) == 2
    assert reduction_factor((100, 100), 300) == 6  # 17 x 17 = 289 pixels
    assert reduction_factor((100, 100), 10, (1, 2, 4, 8)) == 8  # JPEG scales stop at 1/8

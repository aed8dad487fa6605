"""Face detection and alignment: MTCNN finds the astronaut's face and nothing in a coffee cup.

The photos come from scikit-image (public domain, shipped in its wheel); the geometry is tested
on hand-made boxes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from deepfakescan import faces
from deepfakescan.config import Settings
from deepfakescan.detectors import load_model
from deepfakescan.faces import (
    DetectedFace,
    align_face,
    alignment_matrix,
    crop_and_resize,
    detect_faces,
    eye_angle,
    invert_affine,
    iou,
    nms,
    pnet_boxes,
    pyramid_scales,
    regress_boxes,
    square_boxes,
)

skimage_data = pytest.importorskip("skimage.data")

ASTRONAUT_FACE = (160, 60, 270, 200)
"""x1, y1, x2, y2 that hold Eileen Collins' face in scikit-image's 512x512 astronaut photo."""


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings.from_env(threads=1)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def astronaut_face(astronaut, settings) -> DetectedFace:
    found = detect_faces(astronaut, settings=settings)
    assert len(found) == 1
    return found[0]


def _corners(face: DetectedFace) -> np.ndarray:
    x, y, w, h = face.box
    return np.array([x, y, x + w, y + h])


def _inside(points: np.ndarray, corners) -> bool:
    x1, y1, x2, y2 = corners
    return bool(np.all((points[:, 0] >= x1) & (points[:, 0] <= x2))) and bool(
        np.all((points[:, 1] >= y1) & (points[:, 1] <= y2))
    )


# ------------------------------------------------------------------- the shipped models


@pytest.mark.parametrize("name", [faces.PNET, faces.RNET, faces.ONET])
def test_mtcnn_bundles_load_with_their_cards(name, settings):
    bundle = load_model(name, settings)
    assert bundle.task == "face-detector"
    assert bundle.labels == ["not_face", "face"]
    assert "MIT" in bundle.card["licence"]


def test_pnet_is_fully_convolutional_with_stride_two(settings):
    out = load_model(faces.PNET, settings).run(np.zeros((1, 3, 40, 64), np.float32))
    # 12x12 windows every 2 pixels: (side - 12) // 2 + 1 cells
    assert out["prob"].shape == (1, 2, 15, 27)
    assert out["bbox_reg"].shape == (1, 4, 15, 27)
    np.testing.assert_allclose(out["prob"].sum(axis=1), 1.0, rtol=1e-5)


# ------------------------------------------------------------------- detection


def test_astronaut_has_exactly_one_face_where_her_face_is(astronaut_face):
    box = _corners(astronaut_face)
    assert astronaut_face.confidence > 0.9
    assert iou(box, np.array([ASTRONAUT_FACE]))[0] > 0.4
    # the box centre lies in the known face region
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    assert 160 < cx < 270 and 60 < cy < 200


def test_astronaut_landmarks_are_inside_the_box_with_eyes_above_the_mouth(astronaut_face):
    points = astronaut_face.landmarks
    assert points.shape == (5, 2)
    assert _inside(points, _corners(astronaut_face))
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


def test_coffee_cup_has_no_face(settings):
    assert detect_faces(skimage_data.coffee(), settings=settings) == []


def test_face_free_photos_have_no_face(settings):
    for name in ("chelsea", "rocket", "coins", "brick"):
        assert detect_faces(getattr(skimage_data, name)(), settings=settings) == [], name


def test_two_astronauts_side_by_side_are_two_faces(astronaut, settings):
    pair = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)  # 512 x 1024
    found = detect_faces(pair, settings=settings)
    assert len(found) == 2
    centres = sorted(f.box[0] + f.box[2] / 2 for f in found)
    assert centres[0] < 512 < centres[1]
    # the mirrored copy's face is where the mirror puts it
    assert abs((1024 - centres[1]) - centres[0]) < 10


def test_large_image_is_downscaled_and_boxes_come_back_in_its_pixels(astronaut, settings):
    # 4000 x 3000: the astronaut stretched, so x and y scale differently
    big = np.asarray(Image.fromarray(astronaut).resize((4000, 3000), Image.Resampling.BILINEAR))
    found = detect_faces(big, settings=settings)
    assert len(found) == 1
    sx, sy = 4000 / 512, 3000 / 512
    expected = np.array(ASTRONAUT_FACE) * [sx, sy, sx, sy]
    assert iou(_corners(found[0]), expected[None])[0] > 0.4
    assert _inside(found[0].landmarks, _corners(found[0]))


def test_max_side_bounds_the_work_without_losing_the_face(astronaut, settings):
    small = detect_faces(astronaut, max_side=256, settings=settings)
    full = detect_faces(astronaut, settings=settings)
    assert len(small) == 1
    assert iou(_corners(small[0]), _corners(full[0])[None])[0] > 0.6


def test_photo_faces_are_searched_down_to_a_share_of_the_shorter_side():
    # 4000 x 3000 photo detected at 1280 x 960: 5% of 960 px
    assert faces.relative_min_face(4000, 3000, 0.05, 1280) == pytest.approx(48.0)
    # a small image never asks for less than MTCNN's 20 px
    assert faces.relative_min_face(300, 200, 0.05, 1280) == 20.0


def test_a_photo_scan_finds_the_astronaut_with_the_photo_minimum(astronaut, settings):
    found = faces.detect_photo_faces(astronaut, settings)
    assert len(found) == 1
    assert iou(_corners(found[0]), np.array(ASTRONAUT_FACE)[None])[0] > 0.4


def test_grey_and_rgba_images_are_accepted(astronaut, settings):
    grey = np.asarray(Image.fromarray(astronaut).convert("L"))
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    assert len(detect_faces(grey, settings=settings)) == 1
    assert len(detect_faces(rgba, settings=settings)) == 1


def test_tiny_image_has_no_face_and_no_error(settings):
    assert detect_faces(np.zeros((8, 8, 3), np.uint8), settings=settings) == []


def test_float_image_is_refused(settings):
    with pytest.raises(ValueError, match="uint8"):
        detect_faces(np.zeros((64, 64, 3), np.float32), settings=settings)


def test_detected_face_has_a_json_form(astronaut_face):
    d = astronaut_face.to_dict()
    assert set(d) == {"box", "confidence", "landmarks"}
    assert len(d["box"]) == 4 and len(d["landmarks"]) == 5


# ------------------------------------------------------------------- alignment


def test_aligned_crop_is_square_uint8_and_maps_back_to_the_face(astronaut, astronaut_face):
    aligned = align_face(astronaut, astronaut_face, size=224)
    assert aligned.image.shape == (224, 224, 3) and aligned.image.dtype == np.uint8
    centre = aligned.to_image(np.array([[112, 112]]))[0]
    x, y, w, h = astronaut_face.box
    np.testing.assert_allclose(centre, [x + w / 2, y + h / 2], atol=1e-6)
    # landmarks round-trip through the crop
    inside = aligned.to_crop(astronaut_face.landmarks)
    np.testing.assert_allclose(aligned.to_image(inside), astronaut_face.landmarks, atol=1e-4)
    assert np.all((inside > 0) & (inside < 224))


def test_crop_side_is_margin_times_the_box(astronaut, astronaut_face):
    aligned = align_face(astronaut, astronaut_face, size=100, margin=1.3)
    corners = aligned.to_image(np.array([[0, 0], [100, 0]]))
    side = np.linalg.norm(corners[1] - corners[0])
    assert side == pytest.approx(1.3 * max(astronaut_face.box[2:]), rel=1e-6)


@pytest.mark.parametrize("degrees", [-25, 20])
def test_alignment_levels_the_eyes_of_a_rotated_face(astronaut, settings, degrees):
    rotated = np.asarray(
        Image.fromarray(astronaut).rotate(degrees, Image.Resampling.BILINEAR, center=(215, 130))
    )
    found = detect_faces(rotated, settings=settings)
    assert len(found) == 1
    tilt = math.degrees(eye_angle(found[0].landmarks))
    assert abs(tilt + degrees) < 8  # Pillow rotates counter-clockwise; y points down
    aligned = align_face(rotated, found[0], size=224)
    # detect again inside the crop: the eyes are level there
    again = detect_faces(aligned.image, settings=settings)
    assert len(again) == 1
    assert abs(math.degrees(eye_angle(again[0].landmarks))) < 5


def test_crop_leaving_the_image_is_padded_from_the_image_not_black(settings):
    image = np.full((100, 100, 3), 200, np.uint8)
    face = DetectedFace(
        (0.0, 0.0, 60.0, 60.0),
        1.0,
        np.array([[15, 20], [45, 20], [30, 35], [18, 48], [42, 48]], np.float32),
    )
    aligned = align_face(image, face, size=64)
    assert aligned.image.min() == 200 and aligned.image.max() == 200


# ------------------------------------------------------------------- pure geometry


def test_iou_of_identical_disjoint_and_nested_boxes():
    a = np.array([0, 0, 10, 10])
    others = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 5, 10], [2, 2, 4, 4]])
    np.testing.assert_allclose(iou(a, others), [1.0, 0.0, 0.5, 0.04])
    np.testing.assert_allclose(iou(a, others, "min"), [1.0, 0.0, 1.0, 1.0])


def test_iou_refuses_an_unknown_method():
    with pytest.raises(ValueError, match="union"):
        iou(np.zeros(4), np.zeros((1, 4)), "max")


def test_nms_keeps_the_best_of_each_overlapping_group():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 9.0]])
    scores = np.array([0.8, 0.9, 0.7, 0.6])
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [1, 2])


def test_nms_only_suppresses_by_boxes_it_keeps():
    # B overlaps A and C, A and C do not overlap: greedy NMS keeps A and C
    boxes = np.array([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]])
    np.testing.assert_array_equal(nms(boxes, np.array([0.9, 0.8, 0.7]), 0.3), [0, 2])


def test_nms_min_drops_a_box_inside_a_better_one():
    boxes = np.array([[0, 0, 100, 100], [40, 40, 60, 60]])
    assert list(nms(boxes, np.array([0.9, 0.8]), 0.7, "min")) == [0]
    assert list(nms(boxes, np.array([0.9, 0.8]), 0.7, "union")) == [0, 1]


def test_nms_of_nothing_is_nothing():
    assert nms(np.empty((0, 4)), np.empty(0), 0.5).size == 0


def test_pyramid_starts_at_the_smallest_face_and_stops_at_one_window():
    scales = pyramid_scales(100, min_face=20)
    assert scales[0] == pytest.approx(12 / 20)
    np.testing.assert_allclose(np.diff(np.log(scales)), np.log(0.709))
    assert 100 * scales[-1] >= 12 > 100 * scales[-1] * 0.709
    assert pyramid_scales(11) == []
    with pytest.raises(ValueError):
        pyramid_scales(100, min_face=8)


def test_square_boxes_keep_the_centre_and_take_the_longer_side():
    out = square_boxes(np.array([[10.0, 20.0, 30.0, 60.0]]))
    np.testing.assert_allclose(out, [[0.0, 20.0, 40.0, 60.0]])


def test_box_regression_moves_corners_by_fractions_of_the_size():
    boxes = np.array([[0.0, 0.0, 9.0, 19.0]])  # MTCNN sizes are x2 - x1 + 1: 10 x 20
    out = regress_boxes(boxes, np.array([[0.1, 0.1, -0.1, 0.5]]))
    np.testing.assert_allclose(out, [[1.0, 2.0, 8.0, 29.0]])


def test_pnet_cells_map_to_twelve_pixel_windows_every_two_pixels():
    prob = np.zeros((2, 3, 4))
    prob[1, 2, 3] = 0.9  # row 2, column 3
    reg = np.zeros((4, 3, 4))
    boxes, scores = pnet_boxes(prob, reg, 0.5, 0.6)
    np.testing.assert_allclose(boxes, [[12.0, 8.0, 36.0, 32.0]])  # (6, 4, 18, 16) / 0.5
    np.testing.assert_allclose(scores, [0.9])


def test_crop_and_resize_samples_corner_to_corner_and_greys_outside():
    image = np.arange(10, dtype=np.float32)[None, :, None].repeat(10, 0).repeat(3, 2)  # x ramp
    crops = crop_and_resize(image, np.array([[0.0, 0.0, 9.0, 9.0], [8.0, 0.0, 17.0, 9.0]]), 4)
    assert crops.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(crops[0, 0, 0], [0, 3, 6, 9])
    np.testing.assert_allclose(crops[1, 0, 0], [8, 0, 0, 0])  # past the right edge: 0


def test_alignment_matrix_rotates_about_the_centre_and_inverts():
    m = alignment_matrix((50.0, 40.0), 20.0, math.pi / 2, 10)
    centre = m @ [5, 5, 1]
    np.testing.assert_allclose(centre, [50, 40])
    # the crop's x axis points along the image's +y (90 degrees), 2 image pixels per crop pixel
    np.testing.assert_allclose(m @ [6, 5, 1] - centre, [0, 2], atol=1e-12)
    np.testing.assert_allclose(invert_affine(m) @ [*centre, 1], [5, 5])

"""Glasses stay in front of the surrogate: a wearer is told from a non-wearer, and only the frame's own
pixels are kept (fail closed both ways)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from conftest import SAMPLE, shared_file
from media import read_rgb

from deidstream.engine.generator.aux import canonical_shape
from deidstream.engine.generator.glasses import frame_mask, wears_glasses
from deidstream.engine.generator.masks import face_oval_mask
from deidstream.geometry.mesh import default_mesh
from deidstream.types import FaceView

MESH = default_mesh()


def _faces(path, every: int, limit: int) -> list[FaceView]:
    """The first face found in every ``every``-th of the first ``limit`` frames, with its landmarks (a detector
    of its own: the shared one's output depends on the frames it saw before)."""
    from deidstream.tracking.detector import MediaPipeDetector
    from deidstream.tracking.landmarks import FaceLandmarker

    views = []
    with MediaPipeDetector() as detector, FaceLandmarker() as landmarker:
        for image in read_rgb(path, limit=limit)[::every]:
            found = detector.detect(image)
            points = landmarker.landmarks(image, found[:1])[0] if len(found) else None
            if points is not None:
                views.append(FaceView(image, points))
    return views


@pytest.fixture(scope="module")
def sample_views() -> list[FaceView]:
    return _faces(SAMPLE, 60, 480)


def with_glasses(view: FaceView) -> tuple[FaceView, np.ndarray]:
    """The view with dark round glasses drawn on (lenses around the eyes, a bridge, the arms to the face's
    sides; as thick as talking_head_5's plastic frames) and the (h, w) bool mask of the pixels drawn."""
    p = view.points[:, :2]
    width = float(np.ptp(p[:, 0]))
    thick = max(int(round(0.013 * width)), 2)
    drawn = np.zeros(view.image.shape[:2], np.uint8)
    rims = []
    for outer, inner in ((33, 133), (263, 362)):
        centre = (p[outer] + p[inner]) / 2 + (0, 0.05 * width)
        axes = (0.6 * np.linalg.norm(p[outer] - p[inner]) + 0.04 * width, 0.17 * width)
        angle = np.degrees(np.arctan2(*(p[inner] - p[outer])[::-1]))
        cv2.ellipse(drawn, ((float(centre[0]), float(centre[1])), (2.0 * axes[0], 2.0 * axes[1]), float(angle)), 255,
                    thick)
        rims.append((centre, axes[0]))
    (cl, rl), (cr, rr) = rims
    left, right = (cl, rl), (cr, rr)
    if cl[0] > cr[0]:
        left, right = right, left
    y = int(round((p[133, 1] + p[362, 1]) / 2 - 0.02 * width))  # the bridge at the inner corners' height
    cv2.line(drawn, (int(left[0][0] + left[1]), y), (int(right[0][0] - right[1]), y), 255, thick)
    cv2.line(drawn, (int(left[0][0] - left[1]), int(left[0][1])), (int(p[:, 0].min()), int(left[0][1]) - 3), 255, thick)
    cv2.line(drawn, (int(right[0][0] + right[1]), int(right[0][1])), (int(p[:, 0].max()), int(right[0][1]) - 3), 255,
             thick)
    image = view.image.copy()
    image[drawn > 0] = (35, 30, 30)
    return FaceView(image, view.points), drawn > 0


def test_a_wearer_is_told_from_a_non_wearer(sample_views):
    assert len(sample_views) >= 6
    assert not wears_glasses(sample_views)  # crying, frowning, hands on her face: no glasses
    assert wears_glasses([with_glasses(v)[0] for v in sample_views])


def test_only_the_frames_pixels_are_kept(sample_views):
    for view in sample_views[:4]:
        glasses, drawn = with_glasses(view)
        found = frame_mask(glasses.image, glasses.points)
        assert found is not None
        mask, (x, y) = found
        kept = np.zeros(drawn.shape, bool)
        kept[y:y + mask.shape[0], x:x + mask.shape[1]] = mask > 127
        near = cv2.dilate(drawn.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # its anti-aliased edge
        # a frame behind the brows or inside an eye's margin is the surrogate's; the rest is kept
        assert (kept & drawn).sum() >= 0.5 * drawn.sum()
        # the face around it is not: what is kept lies on the frame
        assert (kept & ~near).sum() <= 0.05 * kept.sum(), "face pixels beside the frame were kept"


def test_the_surrogate_is_drawn_behind_the_frames(sample_views):
    from test_face_render import renderer, surrogate_of

    view = sample_views[0]
    glasses, drawn = with_glasses(view)
    paint = renderer()
    shape = canonical_shape(glasses.points, MESH.vertices, MESH.weights)
    outputs = {}
    for wears in (False, True):
        surrogate = dataclasses.replace(surrogate_of(0), glasses=wears)
        out = glasses.image.copy()
        paint.paint(out, glasses.points, shape, surrogate)
        outputs[wears] = out
    on_face = drawn & (face_oval_mask(glasses.points, drawn.shape) > 0)
    darkness = {wears: float(np.median(out[on_face].mean(axis=-1))) for wears, out in outputs.items()}
    # the frame (drawn at grey 32) stays a dark line on the surrogate; without the flag it is painted over
    assert darkness[True] <= 70 < 110 <= darkness[False], darkness
    changed = {wears: (np.abs(out.astype(int) - glasses.image.astype(int)).max(axis=-1) > 12) & ~drawn
               for wears, out in outputs.items()}
    assert changed[True].sum() >= 0.9 * changed[False].sum()  # the face around the frame is the surrogate's


@pytest.mark.parametrize("clip, wears", [("talking_d13.mp4", True), ("talking_d9.mp4", True),
                                         ("talking_head_5.mp4", True), ("talking_d6.mp4", False),
                                         ("portrait_s18.mp4", False), ("talking_head_4.mp4", False)])
def test_real_wearers_of_the_shared_clips(clip, wears):
    views = _faces(shared_file(f"videos/{clip}"), 40, 200)
    assert len(views) >= 3
    assert wears_glasses(views) == wears


def test_a_rim_near_the_edge_of_the_picture_is_traced_on_what_is_there():
    """Directions that leave the picture read as nothing there (never as leftover memory)."""
    from deidstream.engine.generator.glasses import _pieces, _polar, _trace

    lines = np.zeros((40, 40), np.float32)
    cv2.circle(lines, (5, 20), 12, 10.0, 1)  # a rim around an eye at the picture's left edge
    centre = np.array([5.0, 20.0])
    for _ in range(3):
        polar = _polar(lines, centre, 18)
        pieces, median = _pieces(polar, _trace(polar[None])[0], centre)
        assert np.isfinite(median)
        points = np.concatenate(pieces)
        assert (points[:, 0] > -1).all()  # every piece inside the picture
        assert np.abs(np.hypot(points[:, 0] - 5, points[:, 1] - 20) - 12).max() <= 2.0


def test_the_frame_is_found_once_per_view_for_all_candidates(sample_views, monkeypatch):
    """The lock renders every candidate into the same view: the glasses are looked for once there, again in
    another frame (even one with the same pixels and points: a new frame is a new picture)."""
    from test_face_render import renderer, surrogate_of

    from deidstream.engine.generator import face_render

    calls = []
    monkeypatch.setattr(face_render, "frame_mask", lambda image, points: calls.append(1) or frame_mask(image, points))
    glasses, _ = with_glasses(sample_views[0])
    paint = renderer()
    shape = canonical_shape(glasses.points, MESH.vertices, MESH.weights)
    for donor in (0, 1, 2):
        surrogate = dataclasses.replace(surrogate_of(donor), glasses=True)
        paint.paint(glasses.image.copy(), glasses.points, shape, surrogate, source=glasses.image)
    assert len(calls) == 1
    paint.paint(glasses.image.copy(), glasses.points, shape, surrogate, source=glasses.image.copy())
    assert len(calls) == 2

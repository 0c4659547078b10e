"""Repainter: a face's last render, moved to where the face is now (live, several faces in turn)."""

from __future__ import annotations

import cv2
import numpy as np

from deidstream.engine.compositor import RenderedFace
from deidstream.engine.repaint import Repainter

RNG = np.random.default_rng(3)


def scene() -> tuple[np.ndarray, np.ndarray, RenderedFace]:
    """A noisy frame, 468 landmarks spread over a face-sized square, and an elliptical paint over them."""
    image = RNG.integers(0, 255, (240, 320, 3), np.uint8)
    points = np.zeros((468, 3), np.float32)
    points[:, :2] = RNG.uniform(100, 180, (468, 2))
    alpha = np.zeros((100, 100), np.float32)
    cv2.ellipse(alpha, (50, 50), (40, 45), 0, 0, 360, 1.0, -1)
    return image, points, RenderedFace(np.zeros((100, 100, 3), np.float32), alpha, 90, 90)


def painted(image: np.ndarray, face: RenderedFace) -> np.ndarray:
    """``image`` with a magenta face blended in under ``face.alpha`` (what a render would leave)."""
    out = image.copy()
    roi = out[face.y0:face.y0 + 100, face.x0:face.x0 + 100]
    a = face.alpha[..., None]
    roi[...] = (np.array([255, 0, 255]) * a + roi * (1 - a)).astype(np.uint8)
    return out


def test_a_paint_follows_the_face_to_its_new_place():
    image, points, face = scene()
    rep = Repainter()
    rep.remember(7, 10, painted(image, face), points, face)
    moved = points.copy()
    moved[:, :2] += (12, -5)  # the face moved 12 px right, 5 up
    later = RNG.integers(0, 255, image.shape, np.uint8)
    before = later.copy()
    box = rep.repaint(7, 11, later, moved)
    assert box is not None and rep.repainted == 1
    x0, y0, x1, y1 = box.astype(int)
    assert (x0, y0) == (102, 85)  # the paint's crop, shifted
    # the middle of the face is the paint's magenta now, and nothing outside the box changed
    assert (np.abs(later[135, 152].astype(int) - [255, 0, 255]) <= 2).all()
    outside = np.ones(image.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(later[outside], before[outside])


def test_no_repaint_when_too_old_too_far_or_unknown():
    image, points, face = scene()
    rep = Repainter(max_age=2)
    rep.remember(7, 10, painted(image, face), points, face)
    assert rep.repaint(7, 13, image.copy(), points) is None  # three frames old
    assert rep.repaint(8, 11, image.copy(), points) is None  # nothing remembered for that track
    grown = points.copy()
    grown[:, :2] = (grown[:, :2] - 140) * 1.3 + 140  # came 30% closer: a similarity, but too big a step
    assert rep.repaint(7, 11, image.copy(), grown) is None
    warped = points.copy()
    warped[::2, 0] += 15  # half the landmarks jump: no similarity explains it
    untouched = image.copy()
    assert rep.repaint(7, 11, untouched, warped) is None
    assert np.array_equal(untouched, image) and rep.repainted == 0
    assert rep.repaint(7, 12, image.copy(), points) is not None  # two frames old, unmoved: repainted
    rep.forget_except({8})  # track 7 has ended
    assert rep.repaint(7, 12, image.copy(), points) is None

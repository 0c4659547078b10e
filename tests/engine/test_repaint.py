"""Repainter: a face's last render, moved to where the face is now (live, several faces in turn)."""

from __future__ import annotations

import cv2
import numpy as np

from deidstream.engine.generator.compositor import RenderedFace
from deidstream.engine.generator.repaint import Repainter, anchors_of

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
    rep.remember(7, 10, painted(image, face), anchors_of(points), face)
    moved = points.copy()
    moved[:, :2] += (12, -5)  # the face moved 12 px right, 5 up
    later = RNG.integers(0, 255, image.shape, np.uint8)
    before = later.copy()
    moved_face = rep.repaint(7, 11, later, anchors_of(moved))
    assert moved_face is not None and rep.repainted == 1
    x0, y0, x1, y1 = moved_face.bounds(later.shape)
    assert (x0, y0) == (102, 85)  # the paint's crop, shifted
    # the middle of the face is the paint's magenta now, and nothing outside the box changed
    assert (np.abs(later[135, 152].astype(int) - [255, 0, 255]) <= 2).all()
    outside = np.ones(image.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(later[outside], before[outside])


def test_no_repaint_when_too_old_too_far_or_unknown():
    image, points, face = scene()
    rep = Repainter(max_age=2)
    rep.remember(7, 10, painted(image, face), anchors_of(points), face)
    assert rep.repaint(7, 13, image.copy(), anchors_of(points)) is None  # three frames old
    assert rep.repaint(8, 11, image.copy(), anchors_of(points)) is None  # nothing remembered for that track
    grown = points.copy()
    grown[:, :2] = (grown[:, :2] - 140) * 1.3 + 140  # came 30% closer: a similarity, but too big a step
    assert rep.repaint(7, 11, image.copy(), anchors_of(grown)) is None
    warped = points.copy()
    warped[::2, 0] += 15  # half the landmarks jump: no similarity explains it
    untouched = image.copy()
    assert rep.repaint(7, 11, untouched, anchors_of(warped)) is None
    assert np.array_equal(untouched, image) and rep.repainted == 0
    assert rep.repaint(7, 12, image.copy(), anchors_of(points)) is not None  # two frames old, unmoved: repainted
    rep.forget_except({8})  # track 7 has ended
    assert rep.repaint(7, 12, image.copy(), anchors_of(points)) is None


def _mesh_anchors(frames):
    from deidstream.tracking.detector import MediaPipeDetector
    from deidstream.tracking.landmarks import FaceLandmarker
    from deidstream.tracking.tracker import FaceTracker

    tracker = FaceTracker()
    out = []
    with MediaPipeDetector() as detector, FaceLandmarker() as landmarker:
        for k, frame in enumerate(frames):
            faces = tracker.update(detector.detect(frame), k, (frame.shape[1], frame.shape[0]))
            out.append(anchors_of(landmarker.landmarks(frame, faces[:1])[0]))
    return out


def test_flow_follows_the_anchors_as_facemesh_finds_them_and_stops_where_it_should():
    from conftest import shared_file
    from media import read_rgb

    from deidstream.engine.generator.follow import AnchorFollower

    frames = read_rgb(shared_file("videos/talking_head_1.mp4"), limit=4)
    mesh = _mesh_anchors(frames)
    follower = AnchorFollower(max_gap=2)
    follower.seen(1, 0, frames[0], mesh[0])
    width = float(np.ptp(mesh[0][:, 0]))
    for k in (1, 2):
        flowed = follower.follow(1, k, frames[k])
        assert flowed is not None
        # within what a repaint tolerates (FaceMesh itself jitters by 1-2% of the width between frames)
        assert np.linalg.norm(flowed - mesh[k], axis=1).mean() < 0.03 * width, "flow lands where FaceMesh does"
    assert follower.follow(1, 3, frames[3]) is None, "no further than max_gap frames from FaceMesh's own"
    follower.seen(1, 3, frames[3], mesh[3])
    assert follower.follow(1, 5, frames[3]) is None, "only from the frame just before"
    assert follower.follow(2, 4, frames[3]) is None, "nothing for an unknown track"
    # another picture altogether (a cut): no rigid motion explains it, nothing is followed
    other = np.ascontiguousarray(np.flipud(frames[3]))
    assert follower.follow(1, 4, other) is None
    assert follower.followed == 2 and follower.refused == 1

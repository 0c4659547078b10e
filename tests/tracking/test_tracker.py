"""Tracker behaviour frame by frame on synthetic trajectories."""

from __future__ import annotations

import numpy as np
import pytest

from deidstream.config import TrackerConfig
from deidstream.errors import ConfigError
from deidstream.geometry.boxes import containment_matrix
from deidstream.tracking.tracker import FaceTracker, TrackState
from deidstream.types import FaceDetections


def box(cx: float, cy: float, size: float = 40.0) -> list[float]:
    return [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]


def dets(*boxes: list[float]) -> FaceDetections:
    if not boxes:
        return FaceDetections.empty()
    return FaceDetections(np.array(boxes, np.float32), np.ones(len(boxes), np.float32))


def covers(covered: FaceDetections, face: list[float], fraction: float = 0.95) -> bool:
    if len(covered) == 0:
        return False
    return bool(containment_matrix(np.array([face]), covered.xyxy).max() >= fraction)


def test_ids_stay_stable_through_a_crossing():
    tracker = FaceTracker()
    ids_a, ids_b = set(), set()
    for t in range(40):
        a = box(20 + 8 * t, 100)  # left to right
        b = box(332 - 8 * t, 112)  # right to left, crossing at t ~ 19.5
        out = tracker.update(dets(a, b), t)
        centres = (out.xyxy[:, :2] + out.xyxy[:, 2:]) / 2
        ia = out.track_id[np.argmin(np.abs(centres[:, 0] - (20 + 8 * t)) + np.abs(centres[:, 1] - 100))]
        ib = out.track_id[np.argmin(np.abs(centres[:, 0] - (332 - 8 * t)) + np.abs(centres[:, 1] - 112))]
        ids_a.add(int(ia))
        ids_b.add(int(ib))
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b


def test_a_missed_face_stays_covered_through_a_gap():
    cfg = TrackerConfig()
    tracker = FaceTracker(cfg)
    gap = range(10, 10 + cfg.max_coast)
    first_id = None
    for t in range(40):
        face = box(50 + 4 * t, 80 + 1 * t)
        out = tracker.update(dets() if t in gap else dets(face), t)
        assert covers(out, face), f"face not covered in frame {t}"
        if first_id is None:
            first_id = int(out.track_id[0])
        if t in gap:
            assert out.coasting.all()
        assert set(out.track_id.tolist()) == {first_id}


def test_a_tentative_face_is_covered_the_frame_after_it_was_seen():
    tracker = FaceTracker()
    face = box(100, 100)
    tracker.update(dets(face), 0)  # seen once: tentative
    out = tracker.update(dets(), 1)
    assert covers(out, face)
    assert tracker.tracks[0].state is TrackState.TENTATIVE


def test_tracks_end_after_max_coast_and_are_confirmed_after_min_hits():
    cfg = TrackerConfig(min_hits=3, max_coast=5)
    tracker = FaceTracker(cfg)
    for t in range(3):
        tracker.update(dets(box(100, 100)), t)
    assert tracker.tracks[0].state is TrackState.CONFIRMED
    for t in range(3, 3 + cfg.max_coast):
        assert len(tracker.update(dets(), t)) == 1
    assert tracker.tracks[0].state is TrackState.LOST
    assert len(tracker.update(dets(), 3 + cfg.max_coast)) == 0
    assert tracker.tracks_ended == 1 and tracker.tracks == []


def test_a_face_that_returns_within_the_coast_keeps_its_id():
    tracker = FaceTracker()
    for t in range(5):
        tracker.update(dets(box(100, 100)), t)
    for t in range(5, 9):
        tracker.update(dets(), t)
    out = tracker.update(dets(box(104, 100)), 9)
    assert out.track_id.tolist() == [1] and not out.coasting[0]


def test_far_apart_faces_are_not_associated():
    tracker = FaceTracker()
    tracker.update(dets(box(50, 50)), 0)
    out = tracker.update(dets(box(400, 300)), 1)
    assert sorted(out.track_id.tolist()) == [1, 2]


def test_two_trackers_do_not_share_ids():
    a, b = FaceTracker(), FaceTracker()
    a.update(dets(box(10, 10), box(200, 200)), 0)
    out_b = b.update(dets(box(10, 10)), 0)
    assert out_b.track_id.tolist() == [1]


def test_coasting_boxes_grow_but_never_shrink():
    tracker = FaceTracker()
    for t in range(5):
        tracker.update(dets(box(100, 100, 40)), t)
    widths = [float(tracker.update(dets(), t).width[0]) for t in range(5, 10)]
    assert widths[0] >= 40 and widths == sorted(widths)


@pytest.mark.parametrize("kwargs", [{"max_coast": 0}, {"min_hits": 0}, {"max_coast_tentative": 50}])
def test_invalid_tracker_config(kwargs):
    with pytest.raises(ConfigError):
        TrackerConfig(**kwargs)

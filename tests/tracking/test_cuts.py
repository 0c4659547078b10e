"""Hard cuts end every track, so no face of the next shot inherits a track (or a surrogate)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file
from media import read_rgb

from deidstream.config import CutConfig
from deidstream.errors import ConfigError
from deidstream.tracking.cuts import CutDetector
from deidstream.tracking.tracker import FaceTracker
from deidstream.types import FaceDetections


def test_the_stage_clip_cuts_are_found_and_nothing_else():
    detector = CutDetector()
    frames = read_rgb(shared_file("videos/stage_multi_person_cuts.mp4"))
    assert [i for i, f in enumerate(frames) if detector.is_cut(f)] == [20, 82, 211]


@pytest.mark.parametrize("clip", ["talking_head_1.mp4", "crowd_1080p.mp4"])
def test_motion_within_a_shot_is_not_a_cut(clip):
    detector = CutDetector()
    assert not any(detector.is_cut(f) for f in read_rgb(shared_file(f"videos/{clip}"), limit=80))


def test_a_change_of_scene_is_a_cut_and_the_first_frame_is_not():
    rng = np.random.default_rng(0)
    warm = np.zeros((90, 120, 3), np.uint8)
    warm[...] = (200, 120, 40)
    cool = np.zeros_like(warm)
    cool[...] = (30, 90, 200)
    noisy = np.clip(warm + rng.integers(-5, 6, warm.shape), 0, 255).astype(np.uint8)
    detector = CutDetector()
    assert [detector.is_cut(f) for f in (warm, noisy, cool, cool)] == [False, False, True, False]


def test_end_all_starts_new_tracks():
    tracker = FaceTracker()
    box = FaceDetections(np.array([[10, 10, 50, 50]], np.float32), np.ones(1, np.float32))
    first = tracker.update(box, 0)
    tracker.end_all()
    second = tracker.update(box, 1)
    assert int(first.track_id[0]) != int(second.track_id[0])
    assert tracker.tracks_ended == 1


def test_bad_cut_config_is_refused():
    with pytest.raises(ConfigError):
        CutConfig(threshold=1.5)

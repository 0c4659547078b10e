"""Landmark smoothing: jitter removed, fast motion followed, tracks independent."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file

from deidstream.config import OneEuroConfig
from deidstream.errors import ConfigError
from deidstream.tracking.smoothing import LandmarkSmoother

FPS = 30.0


def face(size: float = 200.0, seed: int = 0) -> np.ndarray:
    """468 points spread like a face of ``size`` px width (x), 1.2 x as tall, somewhere in the frame."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (468, 3)) * [size, 1.2 * size, 0.5 * size] + [300, 200, 0]


def run_still(smoother: LandmarkSmoother, truth: np.ndarray, noise: float, frames: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([smoother.smooth(1, i / FPS, truth + rng.normal(0, noise, truth.shape)) for i in range(frames)])


def jitter_ratio(size: float, noise: float) -> float:
    truth = face(size)
    out = run_still(LandmarkSmoother(), truth, noise, 90)[30:]  # past the start-up
    return noise / float((out - truth)[..., :2].std())


def test_still_face_jitter_is_reduced_at_least_three_times():
    assert jitter_ratio(200, 1.0) >= 3.0


def test_fast_linear_motion_is_followed_within_two_pixels_after_three_frames():
    truth = face(200)
    s = LandmarkSmoother()
    run_still(s, truth, 1.0, 30)
    rng = np.random.default_rng(2)
    lags = []
    for k in range(1, 6):  # 20 px per frame to the right, starting from rest
        moved = truth + [20.0 * k, 0, 0]
        out = s.smooth(1, (29 + k) / FPS, moved + rng.normal(0, 1.0, truth.shape))
        lags.append(float(np.abs(out[:, 0] - moved[:, 0]).mean()))
    assert lags[2] < 2.0 and lags[4] < 2.0
    assert lags[0] > lags[2]  # it did lag at first: the filter is not a no-op


def test_a_step_is_caught_up_within_three_frames():
    truth = face(200)
    s = LandmarkSmoother()
    run_still(s, truth, 1.0, 30)
    moved = truth + [20.0, -10.0, 0]
    for k in range(3):
        out = s.smooth(1, (30 + k) / FPS, moved)
    assert np.linalg.norm(out[:, :2] - moved[:, :2], axis=1).mean() < 2.0


def test_mouth_opening_is_followed_although_the_head_is_still():
    """Points moving on their own (lips) get a high cutoff; the rest of the face stays smoothed."""
    truth = face(200)
    lips = np.arange(40)
    s = LandmarkSmoother()
    run_still(s, truth, 1.0, 30)
    rng = np.random.default_rng(3)
    for k in range(1, 6):
        moved = truth.copy()
        moved[lips, 1] += 8.0 * k
        out = s.smooth(1, (29 + k) / FPS, moved + rng.normal(0, 1.0, truth.shape))
    assert np.abs(out[lips, 1] - moved[lips, 1]).mean() < 2.0
    gated = LandmarkSmoother(OneEuroConfig(residual_gate=100.0))  # the point's own motion ignored
    run_still(gated, truth, 1.0, 30)
    for k in range(1, 6):
        moved = truth.copy()
        moved[lips, 1] += 8.0 * k
        late = gated.smooth(1, (29 + k) / FPS, moved)
    assert np.abs(late[lips, 1] - moved[lips, 1]).mean() > 3.0


def test_small_and_large_faces_are_smoothed_alike():
    """Noise and motion proportional to the face size give the same relative jitter and lag."""
    ratios = [jitter_ratio(size, 0.005 * size) for size in (60, 400)]
    assert ratios[0] == pytest.approx(ratios[1], rel=0.1)
    lags = []
    for size in (60, 400):
        truth = face(size)
        s = LandmarkSmoother()
        run_still(s, truth, 0.005 * size, 30)
        for k in range(1, 4):
            out = s.smooth(1, (29 + k) / FPS, truth + [0.1 * size * k, 0, 0])
        lags.append(float(np.abs(out[:, 0] - truth[:, 0] - 0.3 * size).mean()) / size)
    assert lags[0] == pytest.approx(lags[1], rel=0.1)


def test_two_tracks_are_independent():
    a, b = face(200, seed=0), face(120, seed=5) + [400, 0, 0]
    rng = np.random.default_rng(4)
    both, alone = LandmarkSmoother(), LandmarkSmoother()
    for i in range(20):
        pa = a + rng.normal(0, 1.0, a.shape) + [3.0 * i, 0, 0]
        pb = b + rng.normal(0, 1.0, b.shape) - [5.0 * i, 0, 0]
        out_a = both.smooth(1, i / FPS, pa)
        both.smooth(2, i / FPS, pb)
        assert np.array_equal(out_a, alone.smooth(1, i / FPS, pa))
    assert both.track_ids == [1, 2] and alone.track_ids == [1]


@pytest.mark.parametrize("dt", [0.0, -0.5])
def test_a_time_that_does_not_advance_restarts_the_track(dt):
    truth = face(200)
    s = LandmarkSmoother()
    run_still(s, truth, 1.0, 10)
    t_last = 9 / FPS
    jumped = truth + [50, 0, 0]
    assert np.allclose(s.smooth(1, t_last + dt, jumped), jumped)  # restarted at the new points
    assert np.isfinite(s.smooth(1, t_last + dt + 1 / FPS, jumped + 1)).all()


def test_drop_and_reset_forget_tracks():
    truth = face(200)
    s = LandmarkSmoother()
    s.smooth(1, 0.0, truth)
    s.smooth(2, 0.0, truth)
    s.drop(1)
    s.drop(99)  # unknown ids are fine
    assert s.track_ids == [2]
    assert np.allclose(s.smooth(1, 0.1, truth + 40), truth + 40)  # a fresh start, no memory of the old track
    s.reset()
    assert s.track_ids == []


@pytest.mark.parametrize(
    "kwargs,error",
    [
        ({}, None),
        ({"min_cutoff": 0.0}, ConfigError),
        ({"min_cutoff": -1.0}, ConfigError),
        ({"beta": -0.1}, ConfigError),
        ({"d_cutoff": 0.0}, ConfigError),
        ({"residual_gate": 0.5}, ConfigError),
        ({"beta": float("nan")}, ConfigError),
        ({"min_cutoff": 2.0, "beta": 0.0, "d_cutoff": 1.0}, None),
    ],
)
def test_config_ranges_are_checked(kwargs, error):
    if error is None:
        OneEuroConfig(**kwargs)
    else:
        with pytest.raises(error, match="expected"):
            OneEuroConfig(**kwargs)


@pytest.mark.parametrize("points", [np.zeros((468,)), np.zeros((468, 4)), np.zeros((2, 2))])
def test_bad_points_are_refused(points):
    with pytest.raises(ValueError, match="expected"):
        LandmarkSmoother().smooth(1, 0.0, points)


def test_landmarker_smooths_tracked_faces_and_drops_ended_tracks():
    import av

    from deidstream.tracking.detector import MediaPipeDetector
    from deidstream.tracking.landmarks import FaceLandmarker
    from deidstream.tracking.tracker import FaceTracker
    from deidstream.types import FaceDetections

    with av.open(str(shared_file("videos/talking_head_1.mp4"))) as c:
        stream = c.streams.video[0]
        frames = [(f.to_ndarray(format="rgb24"), float(f.time)) for _, f in zip(range(15), c.decode(stream))]
    tracker = FaceTracker()
    reference = LandmarkSmoother()
    with MediaPipeDetector() as det, FaceLandmarker(smoother=LandmarkSmoother()) as smoothed, FaceLandmarker() as raw:
        with pytest.raises(ValueError, match="expected the frame time"):
            smoothed.landmarks(frames[0][0], FaceDetections.empty())
        for i, (frame, t) in enumerate(frames):
            faces = tracker.update(det.detect(frame), i)
            got, plain = smoothed.landmarks(frame, faces, t), raw.landmarks(frame, faces)
            assert len(got) == 1 and got[0] is not None and plain[0] is not None
            # the hook is exactly the smoother applied to what the landmarker found
            assert np.allclose(got[0], reference.smooth(int(faces.track_id[0]), t, plain[0]), atol=1e-3)
            assert np.linalg.norm(got[0][:, :2] - plain[0][:, :2], axis=1).mean() < 0.02 * np.ptp(plain[0][:, 0])
        assert smoothed.smoother.track_ids == [int(faces.track_id[0])]
        smoothed.landmarks(frames[0][0], FaceDetections.empty(), frames[-1][1] + 0.1)
        assert smoothed.smoother.track_ids == []  # the ended track is dropped from the smoother too

"""E_id on tracked faces: configuration, gates, scheduling, and agreement with dlib's own pipeline."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from conftest import shared_file
from media import read_rgb

from deidstream.config import file_embedder_config
from deidstream.errors import ConfigError
from deidstream.evaluation.judge import SAME_PERSON
from deidstream.stream.source import FileSource
from deidstream.tracking.detector import MediaPipeDetector, detect_upright
from deidstream.tracking.embedding import (
    BLUR,
    NO_LANDMARKS,
    POSE,
    SMALL,
    EmbedderConfig,
    FaceEmbedder,
    FaceObservation,
    alignment_tolerance,
    landmark_box,
)
from deidstream.tracking.landmarks import FaceLandmarker
from deidstream.tracking.tracker import FaceTracker
from deidstream.types import FaceDetections, Frame


@dataclass(frozen=True)
class FrameRun:
    index: int
    faces: FaceDetections  # the tracker's output
    observations: list[FaceObservation]


@functools.cache
def embedder(every_n_frames: int = 6) -> FaceEmbedder:
    return FaceEmbedder(EmbedderConfig(every_n_frames=every_n_frames))


@functools.cache
def track_and_embed(clip: str, every_n_frames: int = 6) -> tuple[FrameRun, ...]:
    """The engine's detector and tracker on every frame, landmarks on every tracked face, E_id
    on the faces that are due (one pass per clip and setting, shared by the tests)."""
    path = shared_file(f"videos/{clip}")
    emb = embedder(every_n_frames)
    emb.reset()
    out = []
    with FileSource(path) as src, MediaPipeDetector() as det, FaceLandmarker() as lm:
        tracker = FaceTracker()
        for item in src.items():
            if isinstance(item, Frame):
                faces = tracker.update(detect_upright(det, item), item.index, (item.width, item.height))
                points = lm.landmarks(item.image, faces)
                out.append(FrameRun(item.index, faces, emb.observe(item.image, faces, points, item.index)))
    return tuple(out)


def observations(clip: str, every_n_frames: int = 6) -> list[FaceObservation]:
    return [o for run in track_and_embed(clip, every_n_frames) for o in run.observations]


@pytest.mark.parametrize("kwargs,error", [
    ({}, None),
    ({"min_face_px": 4}, "min_face_px"),
    ({"min_face_px": 100, "full_quality_px": 50}, "full_quality_px"),
    ({"max_yaw_deg": 0}, "max_yaw_deg"),
    ({"max_pitch_deg": 95}, "max_pitch_deg"),
    ({"min_sharpness": -1}, "min_sharpness"),
    ({"max_alignment_error": 0}, "max_alignment_error"),
    ({"every_n_frames": 0}, "every_n_frames"),
    ({"first_frames": -1}, "first_frames"),
])
def test_config_ranges(kwargs, error):
    if error is None:
        EmbedderConfig(**kwargs)
        return
    with pytest.raises(ConfigError, match=f"expected {error}.*got"):
        EmbedderConfig(**kwargs)


def test_observation_checks_and_never_prints_its_descriptor():
    d = np.full(128, 0.123456, np.float32)
    obs = FaceObservation(3, 1, np.zeros(4), d, 0.5, 10.0)
    assert obs.usable and obs.descriptor.dtype == np.float32 and "0.123" not in repr(obs)
    assert not FaceObservation(3, 1, np.zeros(4), None, 0.0, 10.0, reason=POSE).usable
    with pytest.raises(ValueError, match="reason"):
        FaceObservation(3, 1, np.zeros(4), None, 0.0, 10.0)  # quality 0 must say why
    with pytest.raises(ValueError, match="descriptor"):
        FaceObservation(3, 1, np.zeros(4), None, 0.5, 10.0)
    with pytest.raises(ValueError, match="shape"):
        FaceObservation(3, 1, np.zeros(4), np.zeros(64), 0.5, 10.0)


@pytest.fixture(scope="module")
def one_face():
    """A frame of one frontal face, its tracker-like faces column and landmarks."""
    image = read_rgb(shared_file("videos/talking_head_1.mp4"), limit=1)[0]
    with MediaPipeDetector() as det, FaceLandmarker() as lm:
        found = det.detect(image)
        faces = FaceDetections(found.xyxy[:1], found.score[:1], track_id=np.array([7]))
        points = lm.landmarks(image, faces)
    assert points[0] is not None
    return image, faces, points


def test_landmark_box_aligns_like_dlibs_own_detector(one_face):
    """The product's E_id (dlib's 5-point model in numpy on the landmarks' box, the network in
    torch) against dlib's whole pipeline on its own HOG box."""
    from deidstream.evaluation.judge import DlibRecognizer

    pytest.importorskip("dlib")
    image, _, points = one_face
    judge = DlibRecognizer("hog", upsample=1)
    own = judge.detect(image)
    assert len(own) == 1
    box = landmark_box(points[0])
    assert np.abs(box - own[0].box).max() < 0.1 * (own[0].box[2] - own[0].box[0])
    d = np.linalg.norm(judge.describe(image, own)[0] - embedder().recognizer.describe_landmarks(image, points))
    assert d < 0.12, d


def test_gates_reject_small_turned_blurred_and_unlandmarked_faces(one_face):
    image, faces, points = one_face
    emb = FaceEmbedder(EmbedderConfig(), recognizer=embedder().recognizer)
    (good,) = emb.observe(image, faces, points, 0)
    assert good.usable and 0 < good.quality <= 1 and good.reason == "" and abs(good.yaw) < 35

    def one(cfg: EmbedderConfig, img: np.ndarray, pts: list) -> FaceObservation:
        (obs,) = FaceEmbedder(cfg, recognizer=emb.recognizer).observe(img, faces, pts, 0)
        return obs

    assert one(EmbedderConfig(), image, [None]).reason == NO_LANDMARKS
    side = float(landmark_box(points[0])[2] - landmark_box(points[0])[0])
    assert one(EmbedderConfig(min_face_px=side + 1, full_quality_px=side + 1), image, points).reason == SMALL
    assert one(EmbedderConfig(max_yaw_deg=abs(good.yaw) / 2 + 0.01), image, points).reason == POSE
    # a file's embedder keeps a turned look, at a fraction of a frontal look's weight, so frontal looks lead
    turned = one(EmbedderConfig(max_yaw_deg=abs(good.yaw) / 2 + 0.01, turned_yaw_deg=90.0), image, points)
    assert turned.usable and turned.quality < 0.1 * good.quality
    assert np.allclose(turned.descriptor, good.descriptor)
    blurred = cv2.GaussianBlur(image, (0, 0), 6)
    low = one(EmbedderConfig(), blurred, points)
    assert low.reason == BLUR and low.descriptor is None and low.sharpness < good.sharpness / 4


def test_alignment_tolerance_grows_only_past_thirty_degrees():
    cfg = EmbedderConfig()
    assert alignment_tolerance(cfg, 0.0) == alignment_tolerance(cfg, -30.0) == cfg.max_alignment_error
    assert alignment_tolerance(cfg, 45.0) == pytest.approx(2 * cfg.max_alignment_error)
    assert alignment_tolerance(cfg, -55.0) > alignment_tolerance(cfg, 45.0)


def test_files_keep_turned_looks_live_does_not():
    assert file_embedder_config().turned_yaw_deg > EmbedderConfig().max_yaw_deg
    assert EmbedderConfig().turned_yaw_deg == 0.0
    with pytest.raises(ConfigError, match="turned_yaw_deg"):
        EmbedderConfig(max_yaw_deg=40.0, turned_yaw_deg=30.0)


def test_schedule_first_frames_then_every_n():
    runs = track_and_embed("talking_head_1.mp4", 6)
    frames = [o.frame_index for r in runs for o in r.observations]
    tracks = {o.track_id for r in runs for o in r.observations}
    assert len(tracks) == 1 and frames[:3] == [runs[0].index, runs[1].index, runs[2].index]
    gaps = np.diff(frames[3:])
    assert (gaps >= 6).all() and np.median(gaps) == 6
    assert len(frames) <= 3 + len(runs) / 6


def test_looks_without_landmarks_back_off_until_a_face_is_found(one_face):
    """A face FaceMesh does not find is looked at on consecutive frames only for its first looks,
    then every n; a face it finds but E_id turns down (here: defocused) on every frame, since its
    usable frames come and go; a found face restarts consecutive looks."""
    image, faces, points = one_face
    emb = FaceEmbedder(EmbedderConfig(every_n_frames=3), recognizer=embedder().recognizer)
    looked = [i for i in range(9) if emb.observe(image, faces, [None], i)]
    assert looked == [0, 1, 2, 5, 8]
    (obs,) = emb.observe(image, faces, points, 11)
    assert obs.usable and emb.usable_looks(7) == 1
    assert [emb.due(7, i) for i in (12, 13)] == [True, True]  # consecutive again until 3 usable

    blurred = cv2.GaussianBlur(image, (0, 0), 6)
    emb = FaceEmbedder(EmbedderConfig(every_n_frames=3), recognizer=embedder().recognizer)
    seen = [emb.observe(blurred, faces, points, i) for i in range(6)]
    assert [o.reason for (o,) in seen] == [BLUR] * 6 and emb.usable_looks(7) == 0


def test_descriptors_agree_within_a_person_and_differ_between_people():
    single = [o.descriptor for o in observations("talking_head_1.mp4") if o.usable]
    assert len(single) >= 10
    mean = np.mean(single, axis=0)
    assert max(np.linalg.norm(d - mean) for d in single) < SAME_PERSON
    two = [o for o in observations("two_faces_selfie_portrait.mp4") if o.usable]
    by_track = {t: np.mean([o.descriptor for o in two if o.track_id == t], axis=0) for t in {o.track_id for o in two}}
    assert len(by_track) == 2
    a, b = by_track.values()
    assert np.linalg.norm(a - b) > SAME_PERSON

"""Canonical mesh in landmark order, and head pose by weighted Procrustes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import shared_file
from scipy.spatial.transform import Rotation

from deidstream.geometry.mesh import CanonicalMesh
from deidstream.geometry.pose import fit_pose

METADATA = "face_geometry/geometry_pipeline_metadata_landmarks.pbtxt"


@pytest.fixture(scope="module")
def mesh() -> CanonicalMesh:
    return CanonicalMesh.from_metadata(shared_file(METADATA))


def test_mesh_loads_in_landmark_order(mesh):
    assert mesh.vertices.shape == (468, 3) and mesh.uvs.shape == (468, 2) and mesh.triangles.shape == (898, 3)
    assert mesh.triangles.min() == 0 and mesh.triangles.max() == 467
    assert ((mesh.uvs >= 0) & (mesh.uvs <= 1)).all()
    assert (mesh.weights > 0).sum() == 33
    v = mesh.vertices
    assert v[1, 2] < np.median(v[:, 2])  # landmark 1, the nose tip, is nearest the camera
    assert v[10, 1] < v[152, 1]  # landmark 10 (forehead) above landmark 152 (chin), y down
    assert v[33, 0] < v[263, 0]  # landmark 33 (eye corner on the image's left) left of 263
    assert mesh.uvs[10, 1] < mesh.uvs[152, 1]  # the texture is upright too


@pytest.mark.parametrize("yaw,pitch,roll", [(0, 0, 0), (45, -10, 5), (-45, 15, -20), (70, 0, 0)])
def test_pose_recovers_a_known_rigid_transform(yaw, pitch, roll):
    rng = np.random.default_rng(0)
    canonical = rng.normal(size=(468, 3)) * [6, 8, 4]
    weights = rng.uniform(0.1, 1.0, 468)
    truth = Rotation.from_euler("xyz", [pitch, yaw, roll], degrees=True)
    observed = 11.5 * truth.apply(canonical) + [320, 180, 40] + rng.normal(scale=0.05, size=(468, 3))
    pose = fit_pose(observed, canonical, weights)
    assert (pose.rotation.inv() * truth).magnitude() < np.radians(0.2)
    assert pose.scale == pytest.approx(11.5, rel=1e-3)
    assert np.allclose(pose.translation, [320, 180, 40], atol=0.2)
    assert np.linalg.norm(pose.quaternion) == pytest.approx(1.0) and pose.quaternion[3] >= 0
    assert pose.yaw_pitch_roll() == pytest.approx((yaw, pitch, roll), abs=0.2)
    assert np.abs(pose.residual).mean() < 0.01


def test_pose_refuses_mismatched_input():
    with pytest.raises(ValueError):
        fit_pose(np.zeros((10, 3)), np.zeros((11, 3)), np.ones(10))


def test_pose_of_real_faces(mesh):
    import mediapipe as mp

    photo = cv2.cvtColor(cv2.imread(str(shared_file("images/two_people.jpg"))), cv2.COLOR_BGR2RGB)
    h, w = photo.shape[:2]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=2) as fm:
        faces = fm.process(photo).multi_face_landmarks
    assert faces is not None and len(faces) == 2
    for face in faces:
        pts = np.array([(p.x * w, p.y * h, p.z * w) for p in face.landmark[:468]])
        pose = fit_pose(pts, mesh.vertices, mesh.weights)
        yaw, pitch, roll = pose.yaw_pitch_roll()
        assert abs(yaw) < 45 and abs(pitch) < 45 and abs(roll) < 45
        # A rigid fit of the canonical face explains a real face to within a few millimetres.
        assert np.linalg.norm(pose.residual, axis=1).mean() < 0.6


def test_landmarks_on_track_crops_match_a_full_frame_search():
    import mediapipe as mp

    from deidstream.tracking.detector import MediaPipeDetector
    from deidstream.tracking.landmarks import FaceLandmarker

    photo = cv2.cvtColor(cv2.imread(str(shared_file("images/two_people.jpg"))), cv2.COLOR_BGR2RGB)
    h, w = photo.shape[:2]
    with MediaPipeDetector() as det, FaceLandmarker() as lm:
        faces = det.detect(photo)
        ours = lm.landmarks(photo, faces)
        blank = lm.landmarks(np.zeros_like(photo), faces)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=2) as fm:
        found = fm.process(photo).multi_face_landmarks
    full = [np.array([(p.x * w, p.y * h) for p in f.landmark[:468]]) for f in found]
    assert len(ours) == 2 and all(p is not None and p.shape == (468, 3) for p in ours)
    assert blank == [None, None]
    for pts in ours:
        nearest = min(full, key=lambda f: np.abs(f - pts[:, :2]).mean())
        face_width = np.ptp(nearest[:, 0])
        assert np.linalg.norm(nearest - pts[:, :2], axis=1).mean() < 0.03 * face_width


def test_tracked_faces_get_their_own_mesh_that_agrees_with_a_fresh_search():
    import av

    from deidstream.tracking.detector import MediaPipeDetector
    from deidstream.tracking.landmarks import FaceLandmarker
    from deidstream.tracking.tracker import FaceTracker
    from deidstream.types import FaceDetections

    with av.open(str(shared_file("videos/talking_head_1.mp4"))) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(20), c.decode(video=0))]
    tracker = FaceTracker()
    with MediaPipeDetector() as det, FaceLandmarker() as tracked, FaceLandmarker(max_tracked=0) as fresh:
        for i, frame in enumerate(frames):
            faces = tracker.update(det.detect(frame), i)
            a = tracked.landmarks(frame, faces)
            b = fresh.landmarks(frame, FaceDetections(faces.xyxy, faces.score))
            assert len(a) == len(b) == 1 and a[0] is not None and b[0] is not None
            width = np.ptp(b[0][:, 0])
            assert np.linalg.norm(a[0][:, :2] - b[0][:, :2], axis=1).mean() < 0.03 * width
        assert list(tracked._per_track) == [1] and fresh._per_track == {}
        mesh = tracked._per_track[1]
        assert tracked.landmarks(frames[0], faces, skip=[True]) == [None]  # skipped this frame...
        assert tracked._per_track[1] is mesh  # ...but still tracked: its mesh stays for the next
        tracked.landmarks(frames[0], FaceDetections.empty())
        assert tracked._per_track == {}  # the mesh of a track that is gone is released


def test_a_skipped_face_is_smoothed_afresh_and_a_held_one_is_not():
    """After frames without FaceMesh a face's smoothing restarts (smoothing against old landmarks would
    lag); a face held for a frame (followed another way) keeps it."""
    import av

    from deidstream.tracking.detector import MediaPipeDetector
    from deidstream.tracking.landmarks import FaceLandmarker
    from deidstream.tracking.smoothing import LandmarkSmoother
    from deidstream.tracking.tracker import FaceTracker

    with av.open(str(shared_file("videos/talking_head_1.mp4"))) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(2), c.decode(video=0))]
    with MediaPipeDetector() as det, FaceLandmarker(smoother=LandmarkSmoother()) as lm:
        faces = FaceTracker().update(det.detect(frames[0]), 0)
        assert lm.landmarks(frames[0], faces, t=0.0)[0] is not None and lm.smoother.track_ids == [1]
        assert lm.landmarks(frames[1], faces, t=0.04, hold=[True]) == [None]
        assert lm.smoother.track_ids == [1] and list(lm._per_track) == [1]
        assert lm.landmarks(frames[1], faces, t=0.08, skip=[True]) == [None]
        assert lm.smoother.track_ids == [] and list(lm._per_track) == [1]


def test_a_mesh_kept_from_an_ended_track_finds_the_next_persons_face():
    """Live keeps spare FaceMesh graphs (building one is a 30-100 ms spike in a frame): a mesh that
    tracked one person must find the next person's landmarks as a fresh search does."""
    from deidstream.tracking.detector import MediaPipeDetector
    from deidstream.tracking.landmarks import FaceLandmarker
    from deidstream.types import FaceDetections

    photo = cv2.cvtColor(cv2.imread(str(shared_file("images/two_people.jpg"))), cv2.COLOR_BGR2RGB)
    with MediaPipeDetector() as det, FaceLandmarker(spares=1) as kept, FaceLandmarker(max_tracked=0) as fresh:
        faces = det.detect(photo)
        assert len(faces) == 2
        first = FaceDetections(faces.xyxy[:1], faces.score[:1], track_id=np.array([1]))
        for _ in range(3):  # the spare becomes track 1's mesh and tracks the first person
            kept.landmarks(photo, first)
        mesh = kept._per_track[1]
        second = FaceDetections(faces.xyxy[1:], faces.score[1:], track_id=np.array([2]))
        ours = kept.landmarks(photo, second)[0]  # track 1 ended: its mesh now serves track 2
        assert kept._per_track == {2: mesh}
        reference = fresh.landmarks(photo, FaceDetections(faces.xyxy[1:], faces.score[1:]))[0]
    assert ours is not None and reference is not None
    width = np.ptp(reference[:, 0])
    assert np.linalg.norm(ours[:, :2] - reference[:, :2], axis=1).mean() < 0.03 * width

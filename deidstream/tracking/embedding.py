"""E_id on tracked faces: dlib's 128-d ResNet descriptor (in torch), with a quality weight per observation.

Each face is aligned by dlib's 5-point shape predictor started from a box derived from its 468
MediaPipe landmarks (:func:`~deidstream.geometry.boxes.landmark_box`, close to dlib's own detector
box); the predictor is dlib's model run in numpy (:mod:`deidstream.networks.shape_predictor`, the
same points as dlib's) and the network dlib's in torch (:mod:`deidstream.tracking.eid`), so no dlib
runs. Descriptors lie at a median 0.036 (p90 0.076) from those of dlib's whole pipeline (its HOG
box) on 643 faces of the shared data (benchmarks/bench_eid.py). dlib's 5 points are checked against the
corresponding MediaPipe landmarks, so a predictor that slid off the face is caught.

Gates (size, pose from the landmarks, sharpness of the aligned chip, alignment) reject faces
whose descriptors are unreliable; rejected faces come back with quality 0 and a ``reason`` so
callers can count them. Descriptors are biometric data: this module never logs them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from deidstream.config import EmbedderConfig
from deidstream.geometry.boxes import landmark_box
from deidstream.geometry.chips import MEDIAPIPE_FOR_DLIB5, face_chips
from deidstream.geometry.mesh import CanonicalMesh, default_mesh
from deidstream.geometry.pose import fit_pose
from deidstream.tracking.eid import DESCRIPTOR_SIZE, EidRecognizer
from deidstream.types import FaceDetections

log = logging.getLogger(__name__)


# Reasons an observation has quality 0.
NO_LANDMARKS = "no_landmarks"
SMALL = "small"
POSE = "pose"
BLUR = "blur"
ALIGNMENT = "alignment"
REASONS = (NO_LANDMARKS, SMALL, POSE, BLUR, ALIGNMENT)



@dataclass(frozen=True, slots=True, repr=False)
class FaceObservation:
    """One look at one tracked face. ``quality`` > 0 means ``descriptor`` is usable; a face a
    gate rejected has quality 0, ``reason`` naming the gate, and no descriptor when the gate
    ran before the network. ``yaw``/``pitch`` are degrees (nan without landmarks)."""

    frame_index: int
    track_id: int
    box: np.ndarray  # (4,) float32, the landmarks' box
    descriptor: np.ndarray | None  # (128,) float32
    quality: float
    yaw: float
    pitch: float = float("nan")
    sharpness: float = float("nan")
    reason: str = ""

    def __post_init__(self) -> None:
        box = np.asarray(self.box, np.float32)
        if box.shape != (4,):
            raise ValueError(f"expected a box of shape (4,), got {box.shape}")
        object.__setattr__(self, "box", box)
        if self.descriptor is not None:
            d = np.asarray(self.descriptor, np.float32)
            if d.shape != (DESCRIPTOR_SIZE,):
                raise ValueError(f"expected a descriptor of shape ({DESCRIPTOR_SIZE},), got {d.shape}")
            object.__setattr__(self, "descriptor", d)
        if not 0.0 <= self.quality <= 1.0:
            raise ValueError(f"expected quality in [0, 1], got {self.quality}")
        if self.quality > 0 and (self.descriptor is None or self.reason):
            raise ValueError("expected a descriptor and no reason for an observation with quality > 0")
        if self.quality == 0 and self.reason not in REASONS:
            raise ValueError(f"expected a reason in {REASONS} for quality 0, got {self.reason!r}")

    @property
    def usable(self) -> bool:
        return self.quality > 0

    def __repr__(self) -> str:  # never print a descriptor
        return (f"FaceObservation(frame_index={self.frame_index}, track_id={self.track_id}, "
                f"quality={self.quality:.3f}, yaw={self.yaw:.1f}, reason={self.reason!r})")


def alignment_tolerance(config: EmbedderConfig, yaw: float) -> float:
    """How far dlib's 5 points may lie from MediaPipe's (face sides) on a face turned ``yaw`` degrees:
    ``max_alignment_error`` up to 30°, then growing by itself every 15° (they part as the face turns)."""
    return config.max_alignment_error * (1.0 + max(0.0, abs(yaw) - 30.0) / 15.0)


def sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian of the grey chip: low when blurred (motion, focus, upscaling)."""
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


@dataclass(slots=True)
class _TrackState:
    last_attempt: int
    usable: int = 0
    unfound_in_row: int = 0  # looks in a row, since the last usable one, where FaceMesh found no face


@dataclass(slots=True)
class _Candidate:
    index: int
    box: np.ndarray
    yaw: float
    pitch: float
    weight: float  # size x pose part of the quality


class FaceEmbedder:
    """E_id per tracked face with a quality weight; keeps per-track scheduling state.

    ``canonical`` is the mesh the pose is fitted to (default: the shipped face model's).
    """

    def __init__(
        self,
        config: EmbedderConfig | None = None,
        *,
        recognizer: EidRecognizer | None = None,
        canonical: CanonicalMesh | None = None,
    ) -> None:
        self.config = config or EmbedderConfig()
        self.recognizer = recognizer or EidRecognizer()
        self._canonical = canonical or default_mesh()
        self._tracks: dict[int, _TrackState] = {}
        self.descriptors_computed = 0

    def due(self, track_id: int, frame_index: int) -> bool:
        """Whether ``observe`` would look at this track in this frame."""
        state = self._tracks.get(track_id)
        cfg = self.config
        if state is None or frame_index < state.last_attempt:
            return True
        if state.usable < cfg.first_frames and state.unfound_in_row < cfg.first_frames:
            return True
        every = cfg.settled_every if state.usable >= cfg.settled_after else cfg.every_n_frames
        return frame_index - state.last_attempt >= every

    def usable_looks(self, track_id: int) -> int:
        """How many of this track's looks gave a descriptor so far."""
        state = self._tracks.get(track_id)
        return 0 if state is None else state.usable

    def reset(self) -> None:
        """Forget every track (a new stream starts; its tracker counts ids from 1 again)."""
        self._tracks.clear()

    def observe(
        self, image: np.ndarray, faces: FaceDetections, landmarks: list[np.ndarray | None], frame_index: int
    ) -> list[FaceObservation]:
        """Observations of the tracked faces that are due in this frame (RGB ``image``).

        Call once per frame with every tracked face (the tracker's output) and its landmarks:
        scheduling state of tracks that are no longer there is dropped.
        """
        if faces.track_id is None:
            raise ValueError("expected faces with track ids (the tracker's output), got none")
        if len(landmarks) != len(faces):
            raise ValueError(f"expected {len(faces)} landmark entries, got {len(landmarks)}")
        ids = [int(t) for t in faces.track_id]
        for gone in set(self._tracks) - set(ids):
            del self._tracks[gone]
        out: list[FaceObservation] = []
        candidates: list[_Candidate] = []
        for i, tid in enumerate(ids):
            if not self.due(tid, frame_index):
                continue
            self._tracks.setdefault(tid, _TrackState(frame_index)).last_attempt = frame_index
            rejected, candidate = self._gate_geometry(i, faces.xyxy[i], landmarks[i])
            if candidate is None:
                out.append(self._rejected(frame_index, tid, faces.xyxy[i], rejected))
            else:
                candidates.append(candidate)
        out.extend(self._describe(image, candidates, ids, landmarks, frame_index))
        for obs in out:
            state = self._tracks[obs.track_id]
            state.usable += obs.usable
            state.unfound_in_row = state.unfound_in_row + 1 if obs.reason == NO_LANDMARKS else 0
        return out

    def _gate_geometry(
        self, index: int, track_box: np.ndarray, points: np.ndarray | None
    ) -> tuple[tuple[str, float, float], _Candidate | None]:
        cfg = self.config
        if points is None:
            return (NO_LANDMARKS, float("nan"), float("nan")), None
        box = landmark_box(points)
        side = float(box[2] - box[0])
        yaw, pitch, _ = fit_pose(points, self._canonical.vertices, self._canonical.weights).yaw_pitch_roll()
        if side < cfg.min_face_px:
            return (SMALL, yaw, pitch), None
        if abs(yaw) > max(cfg.max_yaw_deg, cfg.turned_yaw_deg) or abs(pitch) > cfg.max_pitch_deg:
            return (POSE, yaw, pitch), None
        size_term = min(1.0, side / cfg.full_quality_px)
        turned = cfg.turned_weight if abs(yaw) > cfg.max_yaw_deg else 1.0
        frontal_yaw = min(abs(yaw), cfg.max_yaw_deg)
        pose_term = turned * (1.0 - 0.5 * (frontal_yaw / cfg.max_yaw_deg) ** 2) * (
            1.0 - 0.5 * (pitch / cfg.max_pitch_deg) ** 2)
        return ("", yaw, pitch), _Candidate(index, box, yaw, pitch, size_term * pose_term)

    def _rejected(
        self, frame_index: int, track_id: int, box: np.ndarray, why: tuple[str, float, float], sharp: float = np.nan
    ) -> FaceObservation:
        reason, yaw, pitch = why
        return FaceObservation(frame_index, track_id, box, None, 0.0, yaw, pitch, sharp, reason)

    def _describe(
        self, image: np.ndarray, candidates: list[_Candidate], ids: list[int],
        landmarks: list[np.ndarray | None], frame_index: int,
    ) -> list[FaceObservation]:
        if not candidates:
            return []
        cfg = self.config
        rec = self.recognizer
        marks = [landmarks[c.index] for c in candidates]  # candidates have landmarks
        aligned = rec.points(image, marks)
        chips = face_chips(image, aligned)
        out: list[FaceObservation] = []
        keep: list[tuple[_Candidate, float, np.ndarray]] = []
        for c, pts, five, chip in zip(candidates, marks, aligned, chips):
            assert pts is not None
            tid = ids[c.index]
            side = float(c.box[2] - c.box[0])
            error = float(np.linalg.norm(five - pts[list(MEDIAPIPE_FOR_DLIB5), :2], axis=1).mean()) / side
            sharp = sharpness(chip)
            if error > alignment_tolerance(cfg, c.yaw):
                out.append(self._rejected(frame_index, tid, c.box, (ALIGNMENT, c.yaw, c.pitch), sharp))
            elif sharp < cfg.min_sharpness:
                out.append(self._rejected(frame_index, tid, c.box, (BLUR, c.yaw, c.pitch), sharp))
            else:
                keep.append((c, sharp, chip))
        descriptors = rec.describe_chips([chip for _, _, chip in keep])
        self.descriptors_computed += len(keep)
        for (c, sharp, _), descriptor in zip(keep, descriptors):
            sharp_term = min(1.0, 0.5 + 0.5 * sharp / (4.0 * cfg.min_sharpness)) if cfg.min_sharpness else 1.0
            quality = float(np.clip(c.weight * sharp_term, 1e-3, 1.0))
            out.append(FaceObservation(frame_index, ids[c.index], c.box, descriptor, quality, c.yaw, c.pitch, sharp))
        return out

"""Multi-face tracking: one filterpy Kalman filter per face, Hungarian assignment by scipy.

Every live track is covered, tentative ones included, and a track the detector misses keeps
covering its predicted (and slowly widening) box for a while: a face seen in one frame is
never left bare in the next because the detector blinked.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import Enum

import numpy as np
from filterpy.common import Q_discrete_white_noise
from filterpy.kalman import KalmanFilter
from scipy.optimize import linear_sum_assignment

from deidstream.config import TrackerConfig
from deidstream.geometry.boxes import iou_matrix, scale_about_centre
from deidstream.types import FaceDetections

_INVALID = 1e6
_POSITION_NOISE = 0.05  # measurement noise, fraction of face height
_ACCELERATION_NOISE = 0.03  # process noise, fraction of face height per frame
# White-noise acceleration for (cx, cy, w, h) and their velocities, at unit variance; scaled per face.
_UNIT_Q = Q_discrete_white_noise(2, dt=1.0, var=1.0, block_size=4, order_by_dim=False)


class TrackState(Enum):
    TENTATIVE = "tentative"
    CONFIRMED = "confirmed"
    LOST = "lost"


def _to_z(box: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], np.float64)


def _to_box(z: np.ndarray) -> np.ndarray:
    cx, cy, w, h = z[:4]
    w, h = max(w, 1.0), max(h, 1.0)
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


def _new_filter(box: np.ndarray) -> KalmanFilter:
    kf = KalmanFilter(dim_x=8, dim_z=4)
    kf.F = np.eye(8)
    kf.F[:4, 4:] = np.eye(4)  # constant velocity, one frame per step
    kf.H = np.eye(4, 8)
    z = _to_z(box)
    kf.x[:4, 0] = z
    size = max(z[3], 1.0)
    kf.P = np.diag([(0.1 * size) ** 2] * 4 + [(0.5 * size) ** 2] * 4)
    return kf


def _outside(box: np.ndarray, frame_size: tuple[int, int]) -> bool:
    return bool(box[2] <= 0 or box[3] <= 0 or box[0] >= frame_size[0] or box[1] >= frame_size[1])


@dataclass(eq=False)
class Track:
    """One face followed over time; ``cover_box`` is the box covered when it was last matched."""

    id: int
    kf: KalmanFilter
    last_detection: np.ndarray
    first_frame: int
    state: TrackState = TrackState.TENTATIVE
    hits: int = 1
    misses: int = 0
    cover_box: np.ndarray | None = None

    @property
    def predicted_box(self) -> np.ndarray:
        return _to_box(self.kf.x[:, 0])

    def predict(self) -> None:
        size = max(self.kf.x[3, 0], 1.0)
        self.kf.Q = _UNIT_Q * (_ACCELERATION_NOISE * size) ** 2
        self.kf.predict()

    def correct(self, box: np.ndarray) -> None:
        z = _to_z(box)
        self.kf.R = np.eye(4) * (_POSITION_NOISE * max(z[3], 1.0)) ** 2
        self.kf.update(z)


def backfill_boxes(boxes: np.ndarray, steps: int, config: TrackerConfig) -> np.ndarray:
    """Where to hide faces first detected now in the frame ``steps`` before (back-fill): their first
    boxes, grown as a coasting track's box grows, since the face may have moved in between."""
    return scale_about_centre(boxes, min(1.0 + 2 * config.coast_growth * steps, config.max_coast_scale))


TRACK_IDS_PER_SEGMENT = 10**6


def first_track_id(segment_index: int) -> int:
    """Where the track ids of a file's segment start (1 for the first, or a whole file): unique across segments."""
    return 1 + segment_index * TRACK_IDS_PER_SEGMENT


class FaceTracker:
    """Associates detections to tracks frame by frame and says which boxes to cover.

    Ids count from ``first_id`` (1) per tracker instance; two trackers never share state (the segments
    of one file count from far apart, so their ids never meet).
    """

    def __init__(self, config: TrackerConfig | None = None, first_id: int = 1) -> None:
        self.config = config or TrackerConfig()
        self._ids = itertools.count(first_id)
        self.tracks: list[Track] = []
        self.tracks_ended = 0  # a count, not a list: a live stream runs for days

    def end_all(self) -> None:
        """End every track (a hard cut: no face of the next shot continues a track of this one)."""
        self.tracks_ended += len(self.tracks)
        self.tracks = []

    def born(self, frame_index: int) -> np.ndarray:
        """(n, 4) first boxes of the faces first detected in frame ``frame_index``: those back-fill hides
        in the frames before."""
        return np.array([t.last_detection for t in self.tracks if t.first_frame == frame_index],
                        np.float32).reshape(-1, 4)

    def update(
        self, detections: FaceDetections, frame_index: int, frame_size: tuple[int, int] | None = None
    ) -> FaceDetections:
        """Advance one frame; returns every box to cover, with ``track_id`` and ``coasting``.

        With ``frame_size`` (width, height), a coasting track whose box has left the frame ends.
        """
        cfg = self.config
        for track in self.tracks:
            track.predict()
        matches, lone_tracks, lone_dets = self._associate(detections)
        for ti, di in matches:
            track = self.tracks[ti]
            # Cover the detection and where the track expected the face: detectors disagree on a
            # face's box from frame to frame (and model to model), the union never leaves a part bare.
            prior = track.predicted_box
            found = detections.xyxy[di]
            track.cover_box = np.concatenate([np.minimum(prior[:2], found[:2]), np.maximum(prior[2:], found[2:])])
            track.correct(found)
            track.last_detection = found.copy()
            track.hits += 1
            track.misses = 0
            if track.state is TrackState.LOST or (track.state is TrackState.TENTATIVE and track.hits >= cfg.min_hits):
                track.state = TrackState.CONFIRMED
        survivors = []
        for ti, track in enumerate(self.tracks):
            if ti in lone_tracks:
                track.misses += 1
                if track.state is TrackState.CONFIRMED:
                    track.state = TrackState.LOST
                limit = cfg.max_coast_tentative if track.state is TrackState.TENTATIVE else cfg.max_coast
                if track.misses > limit or (frame_size is not None and _outside(track.predicted_box, frame_size)):
                    self.tracks_ended += 1
                    continue
            survivors.append(track)
        self.tracks = survivors
        for di in lone_dets:
            box = detections.xyxy[di].copy()
            self.tracks.append(Track(next(self._ids), _new_filter(box), box, first_frame=frame_index))
        return self._cover()

    def _associate(self, dets: FaceDetections) -> tuple[list[tuple[int, int]], set[int], list[int]]:
        n_t, n_d = len(self.tracks), len(dets)
        if n_t == 0 or n_d == 0:
            return [], set(range(n_t)), list(range(n_d))
        cfg = self.config
        predicted = np.stack([t.predicted_box for t in self.tracks])
        iou = iou_matrix(predicted, dets.xyxy)
        pc = (predicted[:, :2] + predicted[:, 2:]) / 2
        dc = (dets.xyxy[:, :2] + dets.xyxy[:, 2:]) / 2
        scale = np.maximum(predicted[:, 3] - predicted[:, 1], 1.0)[:, None]
        dist = np.linalg.norm(pc[:, None, :] - dc[None, :, :], axis=2) / scale
        cost = (1.0 - iou) + cfg.centre_weight * dist
        valid = (iou >= cfg.min_iou) | (dist <= cfg.max_centre_distance)
        cost = np.where(valid, cost, _INVALID)
        rows, cols = linear_sum_assignment(cost)
        matches = [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] < _INVALID]
        matched_t = {r for r, _ in matches}
        matched_d = {c for _, c in matches}
        return matches, set(range(n_t)) - matched_t, [d for d in range(n_d) if d not in matched_d]

    def _cover(self) -> FaceDetections:
        cfg = self.config
        if not self.tracks:
            return FaceDetections(np.zeros((0, 4)), np.zeros(0), track_id=np.zeros(0), coasting=np.zeros(0, bool))
        boxes, ids, coasting = [], [], []
        for track in self.tracks:
            if track.misses == 0:
                box = track.cover_box if track.cover_box is not None else track.last_detection
            else:
                # Coast: cover both where the face was last seen and where it is predicted to be,
                # each widened with time, so neither a stop nor a move leaves it bare.
                growth = min(1.0 + cfg.coast_growth * track.misses, cfg.max_coast_scale)
                grown = scale_about_centre(np.stack([track.last_detection, track.predicted_box]), growth)
                box = np.concatenate([grown[:, :2].min(axis=0), grown[:, 2:].max(axis=0)])
            boxes.append(box)
            ids.append(track.id)
            coasting.append(track.misses > 0)
        return FaceDetections(
            np.stack(boxes),
            np.ones(len(boxes), np.float32),
            track_id=np.array(ids),
            coasting=np.array(coasting),
        )

"""Temporal smoothing of face landmarks: jitter out, no lag on fast motion.

A One Euro filter (Casiez, Roussel and Vogel, CHI 2012) per landmark coordinate: a first-order
low-pass whose cutoff rises with speed, so a still face is smoothed hard and a moving one is
followed closely. Two changes make it fit a 468-point face:

- the speed that sets the cutoff is measured in face sizes per second (the points' bounding-box
  diagonal), so a 60 px and a 400 px face are smoothed alike;
- each point's speed is the face's affine motion field at that point (translation, rotation,
  zoom, fitted to all points at once, so per-point noise averages out) plus whatever of the
  point's own motion stands out from the frame's median residual (a mouth opening or a blink),
  so noise alone does not open the filter.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from deidstream.config import OneEuroConfig

log = logging.getLogger(__name__)


def _smoothing(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Exponential smoothing factor of a first-order low-pass at ``cutoff`` Hz over ``dt`` seconds."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / dt)


def _face_size(points: np.ndarray) -> float:
    return float(np.hypot(*np.ptp(points[:, :2], axis=0)))


def _affine_field(points: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    """Least-squares affine velocity field v(p) = c + A (p - mean) of the xy motion, at each point."""
    centred = points[:, :2] - points[:, :2].mean(axis=0)
    design = np.hstack([np.ones((len(points), 1)), centred])
    coef, *_ = np.linalg.lstsq(design, velocity[:, :2], rcond=None)
    return design @ coef


@dataclass(slots=True)
class _State:
    t: float
    points: np.ndarray  # filtered (n, d)
    velocity: np.ndarray  # filtered (n, d), pixels per second


@dataclass(slots=True)
class LandmarkSmoother:
    """One Euro filter state per track id. Not thread-safe: one per pipeline.

    A timestamp that does not advance (a seek, a restarted stream, a repeated frame) restarts that
    track's filter at the new points rather than dividing by a zero or negative time step; so does
    a change in the number of points.

    >>> s = LandmarkSmoother()
    >>> s.smooth(1, 0.0, np.zeros((468, 3))).shape, s.track_ids
    ((468, 3), [1])
    """

    config: OneEuroConfig = field(default_factory=OneEuroConfig)
    _tracks: dict[int, _State] = field(default_factory=dict, init=False, repr=False)

    @property
    def track_ids(self) -> list[int]:
        return sorted(self._tracks)

    def smooth(self, track_id: int, t: float, points: np.ndarray) -> np.ndarray:
        """Filtered copy of (n, 2|3) ``points`` seen at ``t`` seconds on track ``track_id``."""
        x = np.asarray(points, np.float64)
        if x.ndim != 2 or x.shape[1] not in (2, 3) or len(x) < 3:
            raise ValueError(f"expected points of shape (n >= 3, 2 or 3), got {x.shape}")
        if not np.isfinite(t):
            raise ValueError(f"expected a finite time in seconds, got {t}")
        state = self._tracks.get(int(track_id))
        if state is None or t <= state.t or state.points.shape != x.shape:
            if state is not None:
                log.debug("landmark smoother: track %s restarts at t=%.4f (was %.4f)", track_id, t, state.t)
            self._tracks[int(track_id)] = _State(float(t), x.copy(), np.zeros_like(x))
            return x.astype(np.float32)
        cfg = self.config
        dt = t - state.t
        raw_velocity = (x - state.points) / dt
        velocity = state.velocity + _smoothing(cfg.d_cutoff, dt) * (raw_velocity - state.velocity)
        field_xy = _affine_field(x, velocity)
        own = np.linalg.norm(velocity[:, :2] - field_xy, axis=1)
        own = np.maximum(own - cfg.residual_gate * np.median(own), 0.0)
        speed = (np.linalg.norm(field_xy, axis=1) + own) / max(_face_size(x), 1.0)
        alpha = _smoothing(cfg.min_cutoff + cfg.beta * speed, dt)[:, None]
        state.points = state.points + alpha * (x - state.points)
        state.velocity = velocity
        state.t = float(t)
        return state.points.astype(np.float32)

    def drop(self, track_id: int) -> None:
        """Forget a track that ended (no error if it is unknown)."""
        self._tracks.pop(int(track_id), None)

    def reset(self) -> None:
        self._tracks.clear()

"""Values that flow through the pipeline, source to sink."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(slots=True)
class Frame:
    """One decoded picture with the timing it must keep until it is encoded.

    ``image`` is RGB in the stored (not displayed) orientation; ``rotation`` says how a
    player turns it for display, so detectors can look at faces upright.
    """

    index: int
    image: np.ndarray
    pts: int
    time_base: Fraction
    duration: int = 0
    rotation: int = 0

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {self.image.shape} {self.image.dtype}")
        if self.rotation % 90:
            raise ValueError(f"expected a rotation that is a multiple of 90 degrees, got {self.rotation}")

    @property
    def time(self) -> float:
        """Presentation time in seconds."""
        return float(self.pts * self.time_base)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def _column(name: str, value: np.ndarray, n: int, tail: tuple[int, ...], dtype: type) -> np.ndarray:
    arr = np.asarray(value, dtype=dtype)
    if arr.shape != (n, *tail):
        raise ValueError(f"expected {name} of shape {(n, *tail)}, got {arr.shape}")
    return arr


@dataclass(frozen=True, slots=True)
class FaceDetections:
    """Faces of one frame as columns: boxes, scores, optional keypoints and track ids.

    >>> d = FaceDetections(np.array([[0, 0, 10, 10], [5, 5, 20, 20]]), np.array([0.9, 0.6]))
    >>> len(d), len(d[d.score > 0.7]), len(FaceDetections.empty())
    (2, 1, 0)
    """

    xyxy: np.ndarray
    score: np.ndarray
    keypoints: np.ndarray | None = None
    track_id: np.ndarray | None = None
    coasting: np.ndarray | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"expected xyxy of shape (n, 4), got {xyxy.shape}")
        n = xyxy.shape[0]
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "score", _column("score", self.score, n, (), np.float32))
        if self.keypoints is not None:
            kp = np.asarray(self.keypoints, dtype=np.float32)
            if kp.ndim != 3 or kp.shape[0] != n or kp.shape[2] != 2:
                raise ValueError(f"expected keypoints of shape ({n}, k, 2), got {kp.shape}")
            object.__setattr__(self, "keypoints", kp)
        if self.track_id is not None:
            object.__setattr__(self, "track_id", _column("track_id", self.track_id, n, (), np.int64))
        if self.coasting is not None:
            object.__setattr__(self, "coasting", _column("coasting", self.coasting, n, (), np.bool_))

    @classmethod
    def empty(cls) -> FaceDetections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: int | slice | np.ndarray) -> FaceDetections:
        if isinstance(index, (int, np.integer)):
            index = np.array([index])

        def pick(col: np.ndarray | None) -> np.ndarray | None:
            return None if col is None else col[index]

        return FaceDetections(
            self.xyxy[index],
            self.score[index],
            pick(self.keypoints),
            pick(self.track_id),
            pick(self.coasting),
        )

    @property
    def width(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def height(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]

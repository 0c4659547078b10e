"""Values that flow through the pipeline, source to sink."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Generic, TypeVar

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
    """Faces of one frame as columns: boxes, scores, optional keypoints, track ids, coasting flags and
    dense landmarks (``landmarks`` (n, 468, 3) frame pixels, NaN for a face without them).

    >>> d = FaceDetections(np.array([[0, 0, 10, 10], [5, 5, 20, 20]]), np.array([0.9, 0.6]))
    >>> len(d), len(d[d.score > 0.7]), len(FaceDetections.empty())
    (2, 1, 0)
    """

    xyxy: np.ndarray
    score: np.ndarray
    keypoints: np.ndarray | None = None
    track_id: np.ndarray | None = None
    coasting: np.ndarray | None = None
    landmarks: np.ndarray | None = None

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
        if self.landmarks is not None:
            lm = np.asarray(self.landmarks, dtype=np.float32)
            if lm.ndim != 3 or lm.shape[0] != n or lm.shape[2] != 3:
                raise ValueError(f"expected landmarks of shape ({n}, k, 3), got {lm.shape}")
            object.__setattr__(self, "landmarks", lm)

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
            pick(self.landmarks),
        )

    def with_landmarks(self, points: Sequence[np.ndarray | None]) -> FaceDetections:
        """These faces with each one's landmarks ((k, 3) or None: not found).

        >>> d = FaceDetections(np.zeros((2, 4)), np.ones(2)).with_landmarks([np.ones((468, 3)), None])
        >>> d.landmark(0).shape, d.landmark(1)
        ((468, 3), None)
        """
        k = next((len(p) for p in points if p is not None), 0)
        column = np.full((len(self), k, 3), np.nan, np.float32)
        for i, p in enumerate(points):
            if p is not None:
                column[i] = p
        return dataclasses.replace(self, landmarks=column)

    def landmark(self, i: int) -> np.ndarray | None:
        """Face ``i``'s landmarks, or None where it has none."""
        if self.landmarks is None or not self.landmarks.shape[1] or np.isnan(self.landmarks[i, 0, 0]):
            return None
        return self.landmarks[i]

    def landmark_list(self) -> list[np.ndarray | None]:
        return [self.landmark(i) for i in range(len(self))]

    @property
    def width(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def height(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]


@dataclass(frozen=True, slots=True)
class FaceView:
    """One good look at a person, kept to verify their surrogate in: ``image`` (H, W, 3) uint8 RGB (a crop
    around the face) and ``points`` (468, 3) its landmarks in that image."""

    image: np.ndarray
    points: np.ndarray


S = TypeVar("S")


@dataclass(slots=True, eq=False)
class Person(Generic[S]):
    """Everything the run knows of one person, owned by the identity book and used by files and live
    alike: their tracks, best views (best first), pose-normalised identity shapes, whether they are
    kept unaltered, and their surrogate search: how many searches and candidates, the E_id distance of
    the verified (or, without a surrogate, the best) candidate, None when none was judged; ``surrogate``
    None means the fallback. No embedding is kept here."""

    identity: int
    tracks: list[int] = field(default_factory=list)
    views: list[FaceView] = field(default_factory=list)
    shapes: list[np.ndarray] = field(default_factory=list)
    keep: bool = False
    surrogate: S | None = None
    searches: int = 0
    candidates_tried: int = 0
    distance: float | None = None
    looks_since_search: int = 0  # usable looks since the last search (a live retry waits for better ones)
    _mean: tuple[int, np.ndarray] | None = field(default=None, repr=False)

    @property
    def shape(self) -> np.ndarray:
        """(468, 3) the person's own identity shape: the mean of their pose-normalised shapes (computed
        again only when shapes were added: the renderer asks for it per face and frame)."""
        if self._mean is None or self._mean[0] != len(self.shapes):
            self._mean = (len(self.shapes), np.mean(self.shapes, axis=0).astype(np.float32))
        return self._mean[1]

    @property
    def locked(self) -> bool:
        return self.surrogate is not None

    def set_shapes(self, shapes: list[np.ndarray]) -> None:
        """Replace the identity shapes (the identity book brought the record up to date)."""
        self.shapes = shapes
        self._mean = None

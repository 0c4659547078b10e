"""The per-frame core every pipeline runs: detect → cut → track → back-fill window → cover.

The fail-closed rules live here once. Every tracked face (tentative and coasting ones included) is
handed to the pipeline's cover; a face first detected late (a small face, a turn, a model that runs
every few frames) is also hidden in the frames the pipeline still holds, back to the start of its
shot (``cuts`` tells shots apart; before a cut it was not there). The one-pass file pipeline hides
faces with an anonymiser, the two-pass pipeline records what to hide for its render pass, the live
relay covers within a time budget: each supplies how a held item hides boxes, nothing else.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from deidstream.config import TrackerConfig
from deidstream.stream.threads import StageClock
from deidstream.tracking.cuts import CutDetector
from deidstream.tracking.detector import FaceDetector, detect_upright
from deidstream.tracking.tracker import FaceTracker, backfill_boxes
from deidstream.types import FaceDetections, Frame

NOBODY = np.zeros((0, 4), np.float32)  # no face first detected in a frame

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Tracked:
    """A frame after tracking: the detector's own boxes, every box to hide (with track ids and
    coasting flags), the first boxes of faces first detected in it, and whether it starts a shot."""

    frame: Frame
    detections: FaceDetections
    faces: FaceDetections
    born: np.ndarray = field(default_factory=lambda: NOBODY)
    cut: bool = False


class FrameCore:
    """Detection (stateless, so it may run ahead on its own thread) and, in frame order, cuts and
    tracking. ``backfill``: the pipeline back-fills, so each frame says which faces were first
    detected in it. ``cuts`` None: no shot boundaries. ``end_tracks_at_cuts``: no face of a new shot
    continues a track of the last one (identities must not cross a cut)."""

    def __init__(self, detector: FaceDetector, tracker: FaceTracker, *, backfill: bool = False,
                 cuts: CutDetector | None = None, end_tracks_at_cuts: bool = False,
                 clock: StageClock | None = None) -> None:
        self.detector = detector
        self.tracker = tracker
        self.backfill = backfill
        self.cuts = cuts
        self.end_tracks_at_cuts = end_tracks_at_cuts
        self.clock = clock or StageClock()
        self.cut_frames: list[int] = []

    def detect(self, frame: Frame) -> tuple[Frame, FaceDetections]:
        t0 = time.perf_counter()
        detections = detect_upright(self.detector, frame)
        self.clock.add("detect", time.perf_counter() - t0)
        return frame, detections

    def track(self, detected: tuple[Frame, FaceDetections]) -> Tracked:
        frame, detections = detected
        t0 = time.perf_counter()
        cut = self.cuts is not None and self.cuts.is_cut(frame.image)
        if cut:
            self.cut_frames.append(frame.index)
            if self.end_tracks_at_cuts:
                self.tracker.end_all()
        faces = self.tracker.update(detections, frame.index, (frame.width, frame.height))
        born = self.tracker.born(frame.index) if self.backfill else NOBODY
        self.clock.add("track", time.perf_counter() - t0)
        return Tracked(frame, detections, faces, born, cut)


class BackfillWindow(Generic[T]):
    """The newest ``size`` covered items, held before they leave; a face first detected in a frame is
    hidden in the held items of its shot, newest first, its box widened as when coasting.

    ``hide(item, boxes)`` returns the item with ``boxes`` hidden (in place or as a new item).
    """

    def __init__(self, size: int, tracker: TrackerConfig, hide: Callable[[T, np.ndarray], T]) -> None:
        self.size = size
        self.tracker = tracker
        self.hide = hide
        self._held: deque[T] = deque()
        self._shot = 0  # how many of the newest held items belong to the current shot
        self.faces_backfilled = 0

    def note(self, born: np.ndarray, cut: bool) -> None:
        """What a frame tells of the stream before it is held (or after it was dropped): ``cut``, it
        starts a new shot; ``born``, (n, 4) first boxes of the faces first detected in it."""
        if cut:
            self._shot = 0
        for steps in range(1, self._shot + 1) if len(born) else ():
            grown = backfill_boxes(born, steps, self.tracker)
            self._held[-steps] = self.hide(self._held[-steps], grown)
            self.faces_backfilled += len(grown)

    def push(self, item: T) -> list[T]:
        """Hold a covered item; returns the items that leave, oldest first."""
        self._held.append(item)
        self._shot += 1
        out = []
        while len(self._held) > self.size:
            out.append(self._held.popleft())
        self._shot = min(self._shot, len(self._held))
        return out

    def flush(self) -> list[T]:
        """Every held item, oldest first (the input ended)."""
        out = list(self._held)
        self._held.clear()
        self._shot = 0
        return out

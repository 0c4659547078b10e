"""Live back-fill: covered frames held back a little before sending, so that a face the detector
finds late is hidden in them too.

Files hide a new face in up to ``--backfill`` frames before its first detection (detectors find a
face late: a turn, a small face, a cut). A live relay sends each frame once it is covered, so it can
only do the same for frames it has not sent yet: with ``LiveConfig.hold_frames`` it holds that many,
at a frame interval of latency each, which a recording or a camera relay can spend and a video call
cannot. Faces are hidden in held frames of the new face's shot only: before a cut it was not there.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from deidstream.config import TrackerConfig
from deidstream.engine.anonymizers import FaceAnonymizer
from deidstream.stream.live_source import Captured
from deidstream.tracking.tracker import backfill_boxes
from deidstream.types import FaceDetections


class HeldFrames:
    """The last ``size`` covered frames, not yet sent."""

    def __init__(self, size: int, fallback: FaceAnonymizer, tracker: TrackerConfig) -> None:
        self.size = size
        self.fallback = fallback
        self.tracker = tracker
        self._held: deque[Captured] = deque()
        self._shot = 0  # how many of the newest held frames belong to the current shot
        self.faces_backfilled = 0  # faces hidden in held frames

    def note(self, born: np.ndarray, cut: bool) -> None:
        """What a frame told of the stream, before it is held (or after it was dropped): ``cut``, it
        starts a new shot; ``born``, (n, 4) first boxes of the faces first detected in it, hidden in
        the held frames of its shot."""
        if cut:
            self._shot = 0
        for steps in range(1, self._shot + 1) if len(born) else ():
            grown = backfill_boxes(born, steps, self.tracker)
            self.fallback.apply(self._held[-steps].frame.image, FaceDetections(grown, np.ones(len(grown), np.float32)))
            self.faces_backfilled += len(grown)

    def push(self, item: Captured) -> list[Captured]:
        """Hold a covered frame; returns the frames that leave, oldest first."""
        self._held.append(item)
        self._shot += 1
        out = []
        while len(self._held) > self.size:
            out.append(self._held.popleft())
        self._shot = min(self._shot, len(self._held))
        return out

    def flush(self) -> list[Captured]:
        """Every held frame, oldest first (the source ended)."""
        out = list(self._held)
        self._held.clear()
        self._shot = 0
        return out

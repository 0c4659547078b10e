"""Per-frame de-identification: detect, track, then hide every tracked face.

This is the engine slot: a renderer that replaces faces (the 3D generator) plugs in where
the anonymiser is, and the anonymiser stays as the fail-closed fallback.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from deidstream.engine.anonymizers import FaceAnonymizer
from deidstream.stream.pipeline import StageClock
from deidstream.tracking.cuts import CutDetector
from deidstream.tracking.detector import FaceDetector, detect_upright
from deidstream.tracking.tracker import FaceTracker, backfill_boxes
from deidstream.types import FaceDetections, Frame


@dataclass(frozen=True, slots=True)
class FrameResult:
    """What happened to one frame: the raw detections, the boxes covered, the pixel regions hidden."""

    frame: Frame
    detections: FaceDetections
    covered: FaceDetections
    regions: np.ndarray


class FaceProcessor:
    """Detector → tracker → anonymiser for one stream; keeps the tracker's state between frames.

    ``lookback`` frames are held back after hiding: when a face is first found (by a model that
    runs only every few frames, or one that finds it late), it is also hidden in the held
    frames of its shot (``cuts`` tells shots apart), where it was most likely already present.
    """

    def __init__(
        self,
        detector: FaceDetector,
        tracker: FaceTracker,
        anonymizer: FaceAnonymizer,
        clock: StageClock | None = None,
        *,
        lookback: int = 0,
        cuts: CutDetector | None = None,
    ) -> None:
        self.detector = detector
        self.tracker = tracker
        self.anonymizer = anonymizer
        self.clock = clock or StageClock()
        self.lookback = lookback
        self.cuts = cuts
        self._held: deque[FrameResult] = deque()
        self._shot_held = 0  # how many of the newest held frames belong to the current shot

    def detect(self, frame: Frame) -> tuple[Frame, FaceDetections]:
        """First half; stateless, so it can run on its own thread ahead of ``cover``."""
        t0 = time.perf_counter()
        detections = detect_upright(self.detector, frame)
        self.clock.add("detect", time.perf_counter() - t0)
        return frame, detections

    def cover(self, detected: tuple[Frame, FaceDetections]) -> list[FrameResult]:
        """Second half, in frame order: track, hide every tracked face, back-fill new faces into
        held frames. Returns the frames that leave the look-back window (oldest first)."""
        frame, detections = detected
        t0 = time.perf_counter()
        if self.cuts is not None and self.lookback and self.cuts.is_cut(frame.image):
            self._shot_held = 0
        covered = self.tracker.update(detections, frame.index, (frame.width, frame.height))
        t1 = time.perf_counter()
        regions = self.anonymizer.apply(frame.image, covered)
        self._backfill(frame.index)
        self.clock.add("track", t1 - t0)
        self.clock.add("anonymise", time.perf_counter() - t1)
        self._held.append(FrameResult(frame, detections, covered, regions))
        self._shot_held += 1
        out = []
        while len(self._held) > self.lookback:
            out.append(self._held.popleft())
        self._shot_held = min(self._shot_held, len(self._held))
        return out

    def flush(self) -> list[FrameResult]:
        out = list(self._held)
        self._held.clear()
        self._shot_held = 0
        return out

    def process(self, frame: Frame) -> list[FrameResult]:
        """Both halves in one call, for callers without a pipeline."""
        return self.cover(self.detect(frame))

    def _backfill(self, frame_index: int) -> None:
        """Hide faces first found in this frame in the held frames of its shot, newest first."""
        boxes = self.tracker.born(frame_index)
        if not len(boxes):
            return
        for steps in range(1, self._shot_held + 1):
            held = self._held[-steps]
            grown = backfill_boxes(boxes, steps, self.tracker.config)
            extra = self.anonymizer.apply(held.frame.image, FaceDetections(grown, np.ones(len(grown), np.float32)))
            self._held[-steps] = FrameResult(held.frame, held.detections, held.covered,
                                             np.concatenate([held.regions.reshape(-1, 4), extra]))

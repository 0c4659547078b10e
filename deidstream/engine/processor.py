"""Per-frame de-identification: detect, track, then hide every tracked face.

This is the engine slot: a renderer that replaces faces (the 3D generator) plugs in where
the anonymiser is, and the anonymiser stays as the fail-closed fallback.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from deidstream.engine.anonymizers import FaceAnonymizer
from deidstream.stream.pipeline import StageClock
from deidstream.tracking.detector import FaceDetector, detect_upright
from deidstream.tracking.tracker import FaceTracker
from deidstream.types import FaceDetections, Frame


@dataclass(frozen=True, slots=True)
class FrameResult:
    """What happened to one frame: the raw detections and the boxes that were covered."""

    frame: Frame
    detections: FaceDetections
    covered: FaceDetections
    regions: np.ndarray


class FaceProcessor:
    """Detector → tracker → anonymiser for one stream; keeps the tracker's state between frames."""

    def __init__(
        self,
        detector: FaceDetector,
        tracker: FaceTracker,
        anonymizer: FaceAnonymizer,
        clock: StageClock | None = None,
    ) -> None:
        self.detector = detector
        self.tracker = tracker
        self.anonymizer = anonymizer
        self.clock = clock or StageClock()

    def process(self, frame: Frame) -> FrameResult:
        """Both halves in one call, for callers without a pipeline."""
        return self.cover(self.detect(frame))

    def detect(self, frame: Frame) -> tuple[Frame, FaceDetections]:
        """First half; stateless, so it can run on its own thread ahead of ``cover``."""
        t0 = time.perf_counter()
        detections = detect_upright(self.detector, frame)
        self.clock.add("detect", time.perf_counter() - t0)
        return frame, detections

    def cover(self, detected: tuple[Frame, FaceDetections]) -> FrameResult:
        """Second half: track (stateful, in frame order) and hide every tracked face."""
        frame, detections = detected
        t0 = time.perf_counter()
        covered = self.tracker.update(detections, frame.index, (frame.width, frame.height))
        t1 = time.perf_counter()
        regions = self.anonymizer.apply(frame.image, covered)
        self.clock.add("track", t1 - t0)
        self.clock.add("anonymise", time.perf_counter() - t1)
        return FrameResult(frame, detections, covered, regions)

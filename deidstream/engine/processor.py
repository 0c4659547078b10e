"""Per-frame de-identification: detect, track, then hide every tracked face.

This is the engine slot: a renderer that replaces faces (the 3D generator) plugs in where
the anonymiser is, and the anonymiser stays as the fail-closed fallback.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

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
        t0 = time.perf_counter()
        detections = detect_upright(self.detector, frame)
        t1 = time.perf_counter()
        covered = self.tracker.update(detections, frame.index)
        t2 = time.perf_counter()
        self.anonymizer.apply(frame.image, covered)
        t3 = time.perf_counter()
        self.clock.add("detect", t1 - t0)
        self.clock.add("track", t2 - t1)
        self.clock.add("anonymise", t3 - t2)
        return FrameResult(frame, detections, covered)

"""Blur, pixelate or solid on a file: detect, track and hide every tracked face in one pass.

The anonymiser covers each frame as it is tracked; ``lookback`` covered frames are held so that a
face first found late is also hidden in those of its shot (:class:`~deidstream.pipelines.core.BackfillWindow`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deidstream.config import PipelineConfig
from deidstream.engine.anonymizers import FaceAnonymizer, make_anonymizer
from deidstream.pipelines.core import BackfillWindow, FrameCore
from deidstream.report import ProgressCallback, ProgressReporter, RunReport
from deidstream.stream.segments import Segment
from deidstream.stream.sink import FileSink
from deidstream.stream.source import AudioPacket, FileSource
from deidstream.stream.threads import StageClock, run_pipeline
from deidstream.tracking.cuts import CutDetector
from deidstream.tracking.detector import FaceDetector
from deidstream.tracking.tracker import FaceTracker, first_track_id
from deidstream.types import FaceDetections, Frame


@dataclass(frozen=True, slots=True)
class FrameResult:
    """What happened to one frame: the raw detections, the boxes covered, the pixel regions hidden."""

    frame: Frame
    detections: FaceDetections
    covered: FaceDetections
    regions: np.ndarray


class FaceProcessor:
    """Detector → tracker → anonymiser for one stream, on the per-frame core; keeps its state
    between frames. ``cuts`` tells shots apart for back-fill (``lookback`` > 0)."""

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
        self.anonymizer = anonymizer
        self.core = FrameCore(detector, tracker, backfill=lookback > 0, cuts=cuts if lookback else None,
                              clock=clock)
        self.clock = self.core.clock
        self.window: BackfillWindow[FrameResult] = BackfillWindow(lookback, tracker.config, self._hide)

    def detect(self, frame: Frame) -> tuple[Frame, FaceDetections]:
        """First half; stateless, so it can run on its own thread ahead of ``cover``."""
        return self.core.detect(frame)

    def cover(self, detected: tuple[Frame, FaceDetections]) -> list[FrameResult]:
        """Second half, in frame order: track, hide every tracked face, back-fill new faces into
        held frames. Returns the frames that leave the look-back window (oldest first)."""
        tracked = self.core.track(detected)
        t0 = time.perf_counter()
        regions = self.anonymizer.apply(tracked.frame.image, tracked.faces)
        self.window.note(tracked.born, tracked.cut)
        self.clock.add("anonymise", time.perf_counter() - t0)
        return self.window.push(FrameResult(tracked.frame, tracked.detections, tracked.faces, regions))

    def flush(self) -> list[FrameResult]:
        return self.window.flush()

    def process(self, frame: Frame) -> list[FrameResult]:
        """Both halves in one call, for callers without a pipeline."""
        return self.cover(self.detect(frame))

    def _hide(self, held: FrameResult, boxes: np.ndarray) -> FrameResult:
        extra = self.anonymizer.apply(held.frame.image, FaceDetections(boxes, np.ones(len(boxes), np.float32)))
        return dataclasses.replace(held, regions=np.concatenate([held.regions.reshape(-1, 4), extra]))


class _DetectStage:
    """Pipeline stage 1: detection, on its own thread; audio passes through."""

    def __init__(self, processor: FaceProcessor) -> None:
        self.processor = processor

    def __call__(self, item: Frame | AudioPacket) -> list[object]:
        return [item if isinstance(item, AudioPacket) else self.processor.detect(item)]


class _CoverStage:
    """Pipeline stage 2: tracking and hiding in frame order; records each frame in the report."""

    def __init__(self, processor: FaceProcessor, report: RunReport, progress: ProgressReporter) -> None:
        self.processor = processor
        self.report = report
        self.progress = progress

    def __call__(self, item: tuple[Frame, FaceDetections] | AudioPacket) -> list[Frame | AudioPacket]:
        if isinstance(item, AudioPacket):
            return [item]
        return self._finish(self.processor.cover(item))

    def flush(self) -> list[Frame | AudioPacket]:
        return self._finish(self.processor.flush())

    def _finish(self, results: list[FrameResult]) -> list[Frame | AudioPacket]:
        for result in results:
            self.report.add_frame(result.frame.index, result.detections, result.covered, result.regions)
            self.progress.step()
        return [r.frame for r in results]


def run_one_pass(input_path: Path, output_path: Path, config: PipelineConfig, report: RunReport,
                 detector: FaceDetector, clock: StageClock, progress: ProgressCallback | None,
                 segment: Segment | None = None) -> None:
    """The whole file (or one ``segment`` of it, into a video-only part), decode, detection, covering and
    encode each on its own thread; fills ``report``."""
    with FileSource(input_path, segment) as source:
        info = source.info
        reporter = ProgressReporter(progress, input_path.name, source.frames_expected)
        reporter.start("anonymising")
        tracker = FaceTracker(config.tracker, first_id=first_track_id(segment.index if segment else 0))
        processor = FaceProcessor(detector, tracker, make_anonymizer(config.anonymizer),
                                  clock, lookback=config.lookback, cuts=CutDetector())
        stages = [_DetectStage(processor), _CoverStage(processor, report, reporter)]
        started = time.perf_counter()
        with FileSink(output_path, info, source.audio_streams, config.encoder) as sink:
            run_pipeline(source.items(), stages, sink.write, queue_size=config.queue_size, clock=clock)
        report.seconds = time.perf_counter() - started
        report.frames_written = sink.frames_written
        report.decode_errors = source.decode_errors

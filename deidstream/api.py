"""The Python API: anonymise a file or a folder of files::

    from deidstream import anonymize
    report = anonymize("in.mp4", "out.mp4", mode="pixelate")
    print(report.summary())

and live sources with ``relay`` (``deidstream.stream.live_run``)::

    from deidstream.api import relay
    stats = relay("rtsp://cam/stream", push="rtsp://server/out", record="out.mp4", segment_s=600)
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from deidstream.config import FALLBACK_MODES, MODES, GeneratorConfig, PipelineConfig
from deidstream.engine.anonymizers import make_anonymizer
from deidstream.engine.processor import FaceProcessor, FrameResult
from deidstream.errors import ConfigError, InputNotFoundError, InvalidInputError, InvalidOutputError
from deidstream.native import blas_single_threaded, heap_frozen
from deidstream.report import RunReport, write_json_atomic
from deidstream.stream.live_run import relay  # noqa: F401 - the live counterpart of anonymize()
from deidstream.stream.pipeline import StageClock, run_pipeline
from deidstream.stream.sink import FileSink, check_output_path
from deidstream.stream.source import AudioPacket, FileSource, VideoInfo
from deidstream.tracking.cuts import CutDetector
from deidstream.tracking.detector import FaceDetector, MediaPipeDetector
from deidstream.tracking.tracker import FaceTracker
from deidstream.types import Frame

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".gif", ".mpg", ".mpeg", ".ts", ".wmv", ".flv"}

ProgressCallback = Callable[[VideoInfo | None, int], None]


def _config_with_mode(config: PipelineConfig | None, mode: str | None) -> PipelineConfig:
    """``mode`` "surrogate" renders a surrogate per person (blur etc. as the fallback); the other
    modes hide every face that way and run no generator."""
    config = config or PipelineConfig()
    if mode == "surrogate":
        config = dataclasses.replace(config, generator=config.generator or GeneratorConfig())
    elif mode is not None:
        if mode not in FALLBACK_MODES:
            raise ConfigError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        config = dataclasses.replace(config, generator=None,
                                     anonymizer=dataclasses.replace(config.anonymizer, mode=mode))
    return config


class _DetectStage:
    """Pipeline stage 1: detection, on its own thread; audio passes through."""

    def __init__(self, processor: FaceProcessor) -> None:
        self.processor = processor

    def __call__(self, item: Frame | AudioPacket) -> list[object]:
        return [item if isinstance(item, AudioPacket) else self.processor.detect(item)]


class _CoverStage:
    """Pipeline stage 2: tracking and hiding in frame order; records each frame in the report."""

    def __init__(self, processor: FaceProcessor, report: RunReport, progress: ProgressCallback | None) -> None:
        self.processor = processor
        self.report = report
        self.progress = progress

    def __call__(self, item: object) -> list[Frame | AudioPacket]:
        if isinstance(item, AudioPacket):
            return [item]
        return self._finish(self.processor.cover(item))  # type: ignore[arg-type]

    def flush(self) -> list[Frame | AudioPacket]:
        return self._finish(self.processor.flush())

    def _finish(self, results: list[FrameResult]) -> list[Frame | AudioPacket]:
        for result in results:
            self.report.add_frame(result.frame.index, result.detections, result.covered, result.regions)
            if self.progress:
                self.progress(None, self.report.frames)
        return [r.frame for r in results]


def anonymize(
    input_path: str | Path,
    output_path: str | Path,
    *,
    mode: str | None = None,
    config: PipelineConfig | None = None,
    overwrite: bool = False,
    report_path: str | Path | None = None,
    progress: ProgressCallback | None = None,
    detector: FaceDetector | None = None,
    keep: Callable[[object], bool] | None = None,
    save_book: str | Path | None = None,
) -> RunReport:
    """Anonymise every face of ``input_path`` into ``output_path`` (same frames, timing, audio).

    The default mode ("surrogate") gives each person a surrogate identity in two passes over
    the file; ``keep(embedding)`` True leaves that person unaltered (``--keep PHOTO``);
    ``save_book`` writes the people's E_id embeddings there (biometric data: only on request).

    ``progress(info, frames_done)`` is called once with the input's info and 0, then per frame.
    Pass your own ``detector`` to reuse one across files or to bring another model.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    config = _config_with_mode(config, mode)
    if not input_path.exists():
        raise InputNotFoundError(f"{input_path}: no such file")
    check_output_path(input_path, output_path, overwrite=overwrite)
    report = RunReport(str(input_path), str(output_path), config.mode)
    clock = StageClock()
    own_detector = detector is None
    detector = detector or MediaPipeDetector(config.detector)
    try:
        with blas_single_threaded(), heap_frozen():
            if config.generator is not None:
                from deidstream.twopass import run_two_pass

                run_two_pass(input_path, output_path, config, report, detector, clock, progress, keep,
                             Path(save_book) if save_book is not None else None)
            else:
                _run_one_pass(input_path, output_path, config, report, detector, clock, progress)
    finally:
        if own_detector:
            detector.close()
    report.stage_seconds = dict(clock.seconds)
    if report.frames_written != report.frames:
        raise InvalidOutputError(f"{output_path}: wrote {report.frames_written} of {report.frames} frames")
    if report_path is not None:
        write_json_atomic(report_path, report.to_dict())
    log.info(report.summary())
    return report


def _run_one_pass(input_path: Path, output_path: Path, config: PipelineConfig, report: RunReport,
                  detector: FaceDetector, clock: StageClock, progress: ProgressCallback | None) -> None:
    """Blur, pixelate or solid: detect, track and hide in one pass."""
    with FileSource(input_path) as source:
        info = source.info
        if progress:
            progress(info, 0)
        processor = FaceProcessor(detector, FaceTracker(config.tracker), make_anonymizer(config.anonymizer),
                                  clock, lookback=config.lookback, cuts=CutDetector())

        stages = [_DetectStage(processor), _CoverStage(processor, report, progress)]
        started = time.perf_counter()
        with FileSink(output_path, info, source.audio_streams, config.encoder) as sink:
            run_pipeline(source.items(), stages, sink.write, queue_size=config.queue_size, clock=clock)
        report.seconds = time.perf_counter() - started
        report.frames_written = sink.frames_written
        report.decode_errors = source.decode_errors


def output_name(path: Path, taken: set[str]) -> str:
    """``clip.mov`` becomes ``clip.mp4``; a clash with another input keeps the old extension too."""
    name = path.stem + ".mp4"
    if name in taken:
        name = path.name + ".mp4"
    taken.add(name)
    return name


def anonymize_directory(
    input_dir: str | Path,
    output_dir: str | Path,
    *,
    mode: str | None = None,
    config: PipelineConfig | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    on_error: Callable[[Path, Exception], None] | None = None,
    keep: Callable[[object], bool] | None = None,
) -> list[RunReport]:
    """Anonymise every video in ``input_dir`` (not recursive) into ``output_dir`` as .mp4.

    A file that fails is reported through ``on_error`` (or raised when it is None) and the
    rest still run; outputs of failed files are not written.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise InputNotFoundError(f"{input_dir}: no such directory")
    if output_dir.resolve() == input_dir.resolve():
        raise InvalidOutputError(f"{output_dir}: output directory is the input directory")
    # .mp4 inputs first, so they keep their own names when another input has the same stem.
    videos = sorted((p for p in input_dir.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS),
                    key=lambda p: (p.suffix.lower() != ".mp4", p.name))
    if not videos:
        raise InvalidInputError(f"{input_dir}: contains no video files ({', '.join(sorted(VIDEO_EXTENSIONS))})")
    output_dir.mkdir(parents=True, exist_ok=True)
    config = _config_with_mode(config, mode)
    reports = []
    taken: set[str] = set()
    with MediaPipeDetector(config.detector) as detector:
        for video in videos:
            target = output_dir / output_name(video, taken)
            try:
                reports.append(anonymize(video, target, config=config, overwrite=overwrite,
                                         progress=progress, detector=detector, keep=keep))
            except (InvalidInputError, InvalidOutputError, FileExistsError) as exc:
                if on_error is None:
                    raise
                on_error(video, exc)
    return reports

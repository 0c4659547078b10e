"""The Python API: anonymise a file or a folder of files::

    from deidstream import anonymize
    report = anonymize("in.mp4", "out.mp4", mode="pixelate")
    print(report.summary())

and live sources with ``relay`` (``deidstream.pipelines.live_run``)::

    from deidstream.api import relay
    stats = relay("rtsp://cam/stream", push="rtsp://server/out", record="out.mp4", segment_s=600)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from deidstream.config import PipelineConfig, with_mode
from deidstream.errors import InputNotFoundError, InvalidInputError, InvalidOutputError
from deidstream.native import blas_single_threaded, heap_frozen
from deidstream.pipelines.live_run import relay
from deidstream.pipelines.onepass import run_one_pass
from deidstream.pipelines.twopass import run_two_pass
from deidstream.report import ProgressCallback, RunReport, write_json_atomic
from deidstream.stream.sink import check_output_path
from deidstream.stream.threads import StageClock
from deidstream.tracking.detector import FaceDetector, MediaPipeDetector

__all__ = ["anonymize", "anonymize_directory", "relay"]

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".gif", ".mpg", ".mpeg", ".ts", ".wmv", ".flv"}


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

    ``progress`` is called with a :class:`~deidstream.report.Progress` at each phase and each frame of each pass.
    Pass your own ``detector`` to reuse one across files or to bring another model.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    config = with_mode(config, mode)
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
                run_two_pass(input_path, output_path, config, report, detector, clock, progress, keep,
                             Path(save_book) if save_book is not None else None)
            else:
                run_one_pass(input_path, output_path, config, report, detector, clock, progress)
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


def output_name(path: Path, taken: set[str]) -> str:
    """``clip.mov`` becomes ``clip.mp4``; a clash with another input keeps the old extension too."""
    name = path.stem + ".mp4"
    if name in taken:
        name = path.name + ".mp4"
    taken.add(name)
    return name


def plan_directory(input_dir: str | Path, output_dir: str | Path) -> list[tuple[Path, Path]]:
    """(input, output) for every video in ``input_dir`` (not recursive), outputs in ``output_dir`` (made) as .mp4;
    .mp4 inputs first, so they keep their own names when another input has the same stem."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise InputNotFoundError(f"{input_dir}: no such directory")
    if output_dir.resolve() == input_dir.resolve():
        raise InvalidOutputError(f"{output_dir}: output directory is the input directory")
    videos = sorted((p for p in input_dir.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS),
                    key=lambda p: (p.suffix.lower() != ".mp4", p.name))
    if not videos:
        raise InvalidInputError(f"{input_dir}: contains no video files ({', '.join(sorted(VIDEO_EXTENSIONS))})")
    output_dir.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    return [(video, output_dir / output_name(video, taken)) for video in videos]


def with_job_key(config: PipelineConfig) -> PipelineConfig:
    """``config`` with one identity key for every file of a job: the user's, or one drawn for the job (so a
    person in two files of one folder gets one surrogate even without ``--identity-key``)."""
    if config.generator is None or config.generator.key is not None:
        return config
    return replace(config, generator=replace(config.generator, key=config.generator.run_key()))


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
    """Anonymise every video in ``input_dir`` (not recursive) into ``output_dir`` as .mp4, one identity key
    for all of them.

    A file that fails is reported through ``on_error`` (or raised when it is None) and the
    rest still run; outputs of failed files are not written.
    """
    jobs = plan_directory(input_dir, output_dir)
    config = with_job_key(with_mode(config, mode))
    reports = []
    with MediaPipeDetector(config.detector) as detector:
        for video, target in jobs:
            try:
                reports.append(anonymize(video, target, config=config, overwrite=overwrite,
                                         progress=progress, detector=detector, keep=keep))
            except (InvalidInputError, InvalidOutputError, FileExistsError) as exc:
                if on_error is None:
                    raise
                on_error(video, exc)
    return reports

"""A folder of videos as Ray tasks: one task per file, on a local Ray instance or an existing cluster.

The driver plans the job as ``anonymize_directory`` does (same outputs, one identity key for all files) and
sends each task its paths and the configuration; frames never leave the worker, only paths, settings,
progress counts and each file's report. Workers must see the same paths (one machine, or a shared
filesystem) and have deidstream installed.

Nothing is lost and nothing half-written stays: a worker that dies mid-file is replaced by Ray and the file
run again (``RayJob.retries``), after the temporary output the dead one left is removed; a file that fails
for good is reported and the others finish; an interrupted job cancels its tasks and removes what they left.
An output is whole or absent.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deidstream.api import plan_directory, with_job_key
from deidstream.cluster.work import SegmentedFile, Tasks, WholeFile, discard
from deidstream.config import PipelineConfig, with_mode
from deidstream.errors import ConfigError, DeidstreamError, InputNotFoundError
from deidstream.report import Progress, ProgressCallback, RunReport, write_json_atomic
from deidstream.stream.segments import Segment, plan_segments
from deidstream.stream.source import FileSource

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.5  # how often a worker tells the driver how far it is
# a file is split when it is longer than 1.5 of these seconds: a segment's tasks load their models once each
# (a few seconds), small beside five minutes of video
SEGMENT_S = 300.0


@dataclass(frozen=True, slots=True)
class RayJob:
    """Where a job runs: ``address`` of an existing Ray cluster (None: start a local instance of ``workers``
    CPUs, None: all of them); each task takes one CPU; a task whose worker dies is run again up to ``retries``
    times. A file longer than 1.5 ``segment_s`` seconds is split into segments of about that length, run in
    parallel (None: never split)."""

    address: str | None = None
    workers: int | None = None
    retries: int = 2
    segment_s: float | None = SEGMENT_S

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")
        if self.segment_s is not None and self.segment_s <= 0:
            raise ConfigError(f"segment_s must be > 0, got {self.segment_s}")


class _Tally:
    """A Ray actor: each file's steps done, as its worker last reported them (the totals the driver probes)."""

    def __init__(self) -> None:
        self.steps: dict[str, int] = {}

    def note(self, name: str, done: int) -> None:
        self.steps[name] = done

    def done(self) -> int:
        return sum(self.steps.values())


def _reporting(tally: Any, name: str) -> ProgressCallback:
    """A progress callback that tells ``tally`` at most every ``PROGRESS_EVERY_S`` (and at a pass's end)."""
    last = [0.0]

    def callback(progress: Progress) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or progress.done == progress.total:
            last[0] = now
            tally.note.remote(name, progress.done)

    return callback


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'deidstream[ray]'") from None
    return ray


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A ``host:port`` that answers nothing is an error now, not Ray retrying it for minutes."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def _connect(ray: Any, job: RayJob) -> bool:
    """Join ``job``'s cluster, or start a local instance; True when this call started Ray (and stops it)."""
    if ray.is_initialized():
        return False
    if job.address:
        _check_reachable(job.address)
    quiet = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=log.isEnabledFor(logging.DEBUG))
    try:
        if job.address:
            ray.init(address=job.address, **quiet)
        else:
            # a new local instance takes token authentication, Ray's default, and need not warn that it does
            logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
            ray.init(num_cpus=job.workers, **quiet)
    except ConnectionError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {job.address}: {exc}") from None
    return True


def _frames(video: Path, passes: int) -> int:
    """Steps a file's progress will count (0 when its header does not say; its task reports the error)."""
    try:
        with FileSource(video) as source:
            return source.info.frame_count * passes
    except DeidstreamError:
        return 0


def _failure(ray: Any, video: Path, exc: BaseException, retries: int) -> Exception:
    """What a failed task raised (the worker's own exception), or what killed it, naming the file."""
    if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(exc.cause, Exception):
        return exc.cause
    if isinstance(exc, DeidstreamError | OSError):  # the driver's own step of a segmented file
        return exc
    if isinstance(exc, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
        return DeidstreamError(f"{video}: the worker running it died ({retries + 1} attempt{'s' if retries else ''})")
    return DeidstreamError(f"{video}: {type(exc).__name__}: {exc}")


def anonymize_directory_on_ray(
    input_dir: str | Path,
    output_dir: str | Path,
    *,
    mode: str | None = None,
    config: PipelineConfig | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    on_error: Callable[[Path, Exception], None] | None = None,
    keep: Callable[[object], bool] | None = None,
    job: RayJob | None = None,
) -> list[RunReport]:
    """``anonymize_directory`` with each file a Ray task: the same outputs, reports in the same order.
    ``progress`` gets the whole job's steps (``Progress.name`` "N files")."""
    jobs = plan_directory(input_dir, output_dir)
    config = with_job_key(with_mode(config, mode))
    job = job or RayJob()
    with ray_session(job) as ray:
        return _run(ray, jobs, config, overwrite, keep, job, progress, on_error)


@contextlib.contextmanager
def ray_session(job: RayJob) -> Iterator[Any]:
    """Ray, joined to ``job``'s cluster or a local instance started for it (and stopped after)."""
    ray = _import_ray()
    started = _connect(ray, job)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def anonymize_on_ray(input_path: str | Path, output_path: str | Path, *, mode: str | None = None,
                     config: PipelineConfig | None = None, overwrite: bool = False,
                     report_path: str | Path | None = None, progress: ProgressCallback | None = None,
                     keep: Callable[[object], bool] | None = None, job: RayJob | None = None) -> RunReport:
    """``anonymize`` on Ray: a file longer than 1.5 ``job.segment_s`` runs as segments in parallel."""
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise InputNotFoundError(f"{input_path}: no such file")
    config = with_job_key(with_mode(config, mode))
    job = job or RayJob()
    with ray_session(job) as ray:
        report = _run(ray, [(input_path, output_path)], config, overwrite, keep, job, progress, None)[0]
    if report_path is not None:
        write_json_atomic(report_path, report.to_dict())
    return report


def _plan(ray: Any, tasks: Tasks, jobs: list[tuple[Path, Path]], config: PipelineConfig, shared: Any,
          overwrite: bool, keep: Callable[[object], bool] | None, job: RayJob) -> list[WholeFile | SegmentedFile]:
    """Each file's work: one task, or segments when it is long enough (a file that cannot be read is one
    task, which reports why)."""
    work: list[WholeFile | SegmentedFile] = []
    for video, target in jobs:
        segments: list[Segment] = []
        if job.segment_s is not None:
            try:
                segments = plan_segments(video, job.segment_s)
            except DeidstreamError:
                segments = []
        if len(segments) > 1:
            work.append(SegmentedFile(ray, tasks, video, target, config, shared, overwrite, keep, segments))
        else:
            work.append(WholeFile(ray, tasks, video, target, shared, overwrite, keep))
    return work


def _run(ray: Any, jobs: list[tuple[Path, Path]], config: PipelineConfig, overwrite: bool,
         keep: Callable[[object], bool] | None, job: RayJob, progress: ProgressCallback | None,
         on_error: Callable[[Path, Exception], None] | None) -> list[RunReport]:
    tally = ray.remote(num_cpus=0)(_Tally).remote()
    tasks = Tasks.make(ray, job.retries, tally, _reporting)
    shared = ray.put(config)
    pending: dict[Any, WholeFile | SegmentedFile] = {}
    passes = 2 if config.generator is not None else 1
    total = sum(_frames(video, passes) for video, _ in jobs) or None
    work = _plan(ray, tasks, jobs, config, shared, overwrite, keep, job)
    finished = 0
    try:
        for item in work:
            _submit(ray, pending, item, item.start, on_error, job.retries)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=PROGRESS_EVERY_S)
            for ref in done:
                item = pending.pop(ref)  # a failed file's other tasks left ``pending`` with it
                ok = _submit(ray, pending, item, lambda item=item, ref=ref: item.advance(ref), on_error, job.retries)
                if not ok or item.report is not None:
                    finished += 1
            if progress is not None:
                progress(Progress(f"{len(jobs)} files", f"{finished} of {len(jobs)} done",
                                  ray.get(tally.done.remote()), total))
    except BaseException:
        _cancel(ray, pending)
        raise
    reports = {item.video: item.report for item in work if item.report is not None}
    return [reports[video] for video, _ in jobs if video in reports]


def _submit(ray: Any, pending: dict[Any, Any], item: WholeFile | SegmentedFile, step: Callable[[], list[Any]],
            on_error: Callable[[Path, Exception], None] | None, retries: int) -> bool:
    """Run a file's next ``step`` and wait on the tasks it starts; False when the file failed for good (its
    other tasks cancelled, what it wrote removed, the error raised or handed to ``on_error``)."""
    try:
        pending.update(dict.fromkeys(step(), item))
        return True
    except Exception as exc:  # noqa: BLE001 - every failure is the file's, reported by name
        _cancel(ray, {ref: other for ref, other in pending.items() if other is item})
        for ref in [ref for ref, other in pending.items() if other is item]:
            del pending[ref]
        discard(item.target)
        error = _failure(ray, item.video, exc, retries)
        if on_error is None:
            raise error from None
        on_error(item.video, error)
        return False


def _cancel(ray: Any, pending: dict[Any, Any], wait_s: float = 10.0) -> None:
    """Stop every task still running and remove what they wrote (after they are gone: a task cancelled
    before it opened its output could otherwise create it after the removal)."""
    if not pending:
        return
    for ref in pending:
        ray.cancel(ref, force=True)
    ray.wait(list(pending), num_returns=len(pending), timeout=wait_s)
    for item in {id(item): item for item in pending.values()}.values():
        discard(item.target)

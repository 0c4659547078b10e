"""The work of one file on Ray: a single task, or the steps of a file split into segments.

A driver loop (:mod:`deidstream.cluster.archive`) waits on every file's pending tasks at once and hands
each finished one to its file, which may start the file's next step. A long file in the default mode:
pass 1 per segment in parallel (each task returns what the driver needs and, kept in Ray's object store
for its own pass 2, each frame's faces and landmarks), the people resolved and their surrogates chosen on
the driver, pass 2 per segment in parallel, then the parts joined (one more task) into the output, which
appears whole or not at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deidstream.api import anonymize
from deidstream.config import PipelineConfig
from deidstream.errors import InvalidOutputError
from deidstream.pipelines.segmented import (
    SegmentLooks,
    analyse_segment,
    cover_segment,
    for_rendering,
    render_segment,
    resolve_segments,
)
from deidstream.pipelines.twopass import people_summary
from deidstream.report import RunReport
from deidstream.stream.segments import Segment, join_parts, part_path, parts_dir, remove_parts
from deidstream.stream.sink import check_output_path, leftover_parts

log = logging.getLogger(__name__)


def discard(target: Path) -> None:
    """Remove what a failed, killed or cancelled attempt at ``target`` left: temporary outputs and parts."""
    for leftover in leftover_parts(target):
        leftover.unlink(missing_ok=True)
        log.debug("removed %s, left by a failed task", leftover)
    remove_parts(target)


def _anonymize_file(video: str, target: str, config: PipelineConfig, overwrite: bool,
                    keep: Callable[[object], bool] | None, progress: Any) -> RunReport:
    """One task: the whole file, after removing what an earlier, killed attempt at it left."""
    discard(Path(target))
    return anonymize(video, target, config=config, overwrite=overwrite, keep=keep, progress=progress)


def _join(parts: list[str], video: str, target: str, config: PipelineConfig, overwrite: bool) -> int:
    """The last task of a segmented file: its parts and the input's audio into the output."""
    for leftover in leftover_parts(Path(target)):
        leftover.unlink(missing_ok=True)
    check_output_path(Path(video), Path(target), overwrite=overwrite)
    return join_parts([Path(p) for p in parts], video, target, config.encoder)


@dataclass(frozen=True, slots=True)
class Tasks:
    """The job's Ray remote functions and progress tally (made once per job)."""

    whole: Any
    analyse: Any
    render: Any
    cover: Any
    join: Any
    tally: Any
    reporting: Callable[[Any, str], Any]

    @classmethod
    def make(cls, ray: Any, retries: int, tally: Any, reporting: Callable[[Any, str], Any]) -> Tasks:
        def remote(fn: Callable[..., Any], **options: Any) -> Any:
            return ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=False, **options)(fn)

        return cls(remote(_anonymize_file), remote(analyse_segment, num_returns=2), remote(render_segment),
                   remote(cover_segment), remote(_join), tally, reporting)


class WholeFile:
    """A file as one task."""

    def __init__(self, ray: Any, tasks: Tasks, video: Path, target: Path, config: Any, overwrite: bool,
                 keep: Callable[[object], bool] | None) -> None:
        self.ray, self.video, self.target = ray, video, target
        self.report: RunReport | None = None
        self._start = lambda: [tasks.whole.remote(str(video), str(target), config, overwrite, keep,
                                                  tasks.reporting(tasks.tally, target.name))]

    def start(self) -> list[Any]:
        return self._start()

    def advance(self, ref: Any) -> list[Any]:
        self.report = self.ray.get(ref)
        return []


class SegmentedFile:
    """A long file in ``segments``: pass 1 per segment, people on the driver, pass 2 per segment, the join
    (blur modes: one pass per segment, the join)."""

    def __init__(self, ray: Any, tasks: Tasks, video: Path, target: Path, config: PipelineConfig,
                 shared_config: Any, overwrite: bool, keep: Callable[[object], bool] | None,
                 segments: list[Segment]) -> None:
        self.ray, self.tasks, self.video, self.target = ray, tasks, video, target
        self.config, self.shared, self.overwrite, self.keep = config, shared_config, overwrite, keep
        self.segments = segments
        self.report: RunReport | None = None
        self._looks: dict[Any, int] = {}  # pass 1's refs (what the driver reads) → segment
        self._faces: dict[int, Any] = {}  # segment → pass 1's ref of what its pass 2 reads
        self._looked: dict[int, SegmentLooks] = {}
        self._parts: dict[Any, int] = {}  # pass 2 (or the blur pass) refs → segment
        self._reports: dict[int, RunReport] = {}
        self._people: list[dict] = []  # what the report says of them (no embeddings)
        self._cuts: list[int] = []
        self._lock_s = 0.0
        self._started = time.perf_counter()

    def _progress(self, segment: Segment, step: str) -> Any:
        return self.tasks.reporting(self.tasks.tally, f"{self.target.name}/{segment.index}/{step}")

    def start(self) -> list[Any]:
        check_output_path(self.video, self.target, overwrite=self.overwrite)
        discard(self.target)
        parts_dir(self.target).mkdir()
        log.info("%s: %d segments", self.video, len(self.segments))
        video = str(self.video)
        if self.config.generator is None:
            self._parts = {self.tasks.cover.remote(video, str(part_path(self.target, s)), s, self.shared,
                                                   self._progress(s, "p")): s.index for s in self.segments}
            return list(self._parts)
        for s in self.segments:
            looks, faces = self.tasks.analyse.remote(video, s, self.shared, self._progress(s, "a"))
            self._looks[looks], self._faces[s.index] = s.index, faces
        return list(self._looks)

    def advance(self, ref: Any) -> list[Any]:
        if ref in self._looks:
            self._looked[self._looks[ref]] = self.ray.get(ref)
            return self._render() if len(self._looked) == len(self.segments) else []
        if ref in self._parts:
            self._reports[self._parts[ref]] = self.ray.get(ref)
            return self._joining() if len(self._reports) == len(self.segments) else []
        self._finish(self.ray.get(ref))
        return []

    def _render(self) -> list[Any]:
        """Every segment seen: people and surrogates here, then pass 2 per segment."""
        looks = [self._looked[s.index] for s in self.segments]
        t0 = time.perf_counter()
        people = resolve_segments(looks, self.config, self.keep)
        self._lock_s = time.perf_counter() - t0
        self._people = people_summary(people)
        self._cuts = sorted(c for part in looks for c in part.cuts)
        slim = self.ray.put(for_rendering(people))
        video = str(self.video)
        self._parts = {self.tasks.render.remote(video, str(part_path(self.target, s)), s, self.shared,
                                                self._faces.pop(s.index), slim, self._progress(s, "r")): s.index
                       for s in self.segments}
        return list(self._parts)

    def _joining(self) -> list[Any]:
        parts = [str(part_path(self.target, s)) for s in self.segments]
        return [self.tasks.join.remote(parts, str(self.video), str(self.target), self.shared, self.overwrite)]

    def _finish(self, written: int) -> None:
        report = RunReport(str(self.video), str(self.target), self.config.mode)
        for s in self.segments:
            report.extend(self._reports[s.index])
        for part in self._looked.values():
            for stage, seconds in part.stage_seconds.items():
                report.stage_seconds[stage] = report.stage_seconds.get(stage, 0.0) + seconds
        if self._looked:
            report.stage_seconds["lock"] = report.stage_seconds.get("lock", 0.0) + self._lock_s
            report.people, report.cuts = self._people, self._cuts
        report.output, report.frames_written = str(self.target), written
        report.seconds = time.perf_counter() - self._started
        remove_parts(self.target)
        if written != report.frames:
            self.target.unlink(missing_ok=True)
            raise InvalidOutputError(f"{self.target}: joined {written} of {report.frames} frames")
        self.report = report

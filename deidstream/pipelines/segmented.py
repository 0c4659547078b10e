"""One file in segments, each a step a worker can take on its own (``deidstream.cluster`` runs them on Ray).

Blur, pixelate and solid: each segment in one pass, into its part. The default mode keeps its promise
across segments: pass 1 per segment (:func:`analyse_segment`) hands the driver what it saw of people (the
identity book: E_id embeddings and a few best views, in memory only) and keeps each frame's faces and
landmarks for its own pass 2; :func:`resolve_segments` groups the tracks of all segments into people and
chooses one surrogate per person, so a person crossing a boundary keeps theirs; pass 2 per segment
(:func:`render_segment`) renders its part. Parts are joined by :func:`deidstream.stream.segments.join_parts`.

Not bit-identical to a single run: each segment starts with no tracks (a face on a boundary starts a new
track there, found again by the detector, not carried by the tracker, and back-fill does not reach across
the boundary), and each part is its own encode (its first frame a keyframe).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deidstream.config import GeneratorConfig, PipelineConfig
from deidstream.engine.deid import FrameFaces
from deidstream.engine.generator.face_render import make_renderer
from deidstream.native import blas_single_threaded, heap_frozen
from deidstream.pipelines.onepass import run_one_pass
from deidstream.pipelines.twopass import analyse, first_frames, render_pass, resolve_people
from deidstream.report import ProgressCallback, ProgressReporter, RunReport
from deidstream.stream.segments import Segment
from deidstream.stream.threads import StageClock
from deidstream.tracking.detector import MediaPipeDetector
from deidstream.tracking.eid import EidRecognizer
from deidstream.tracking.identity import IdentityBook
from deidstream.types import Person


@dataclass(slots=True)
class SegmentLooks:
    """What pass 1 of a segment tells the driver: the people it saw (embeddings and best views: biometric,
    never written), each track's first frame, the cuts it found and its stage times."""

    segment: Segment
    book: IdentityBook
    track_first: dict[int, int]
    cuts: list[int]
    stage_seconds: dict[str, float]


@dataclass(slots=True)
class SegmentFaces:
    """What pass 1 of a segment keeps for its pass 2: each frame's faces and landmarks (no pixels)."""

    frames: list[FrameFaces]
    points: dict[int, tuple[np.ndarray | None, ...]]


def analyse_segment(input_path: str | Path, segment: Segment, config: PipelineConfig,
                    progress: ProgressCallback | None = None) -> tuple[SegmentLooks, SegmentFaces]:
    """Pass 1 over ``segment``: detection, tracking (ids of the segment's own), E_id and best views."""
    clock = StageClock()
    with MediaPipeDetector(config.detector) as detector, blas_single_threaded(), heap_frozen():
        analysis, _ = analyse(Path(input_path), detector, config, clock, progress, segment)
    analysis.recognizer.close()
    looks = SegmentLooks(segment, analysis.book, first_frames(analysis.frames), analysis.cut_frames,
                         dict(clock.seconds))
    return looks, SegmentFaces(analysis.frames, analysis.points)


def resolve_segments(looks: list[SegmentLooks], config: PipelineConfig,
                     keep: Callable[[np.ndarray], bool] | None = None) -> dict[int, Person]:
    """Every segment's tracks grouped into people and one surrogate chosen per person (on the driver):
    each track's person record, as a single run's ``resolve_people`` gives."""
    generator_config = config.generator or GeneratorConfig()
    book, track_first = IdentityBook(), {}
    for part in looks:
        book.absorb(part.book)
        track_first.update(part.track_first)
    recognizer = EidRecognizer(generator_config.eid)
    try:
        return resolve_people(book, track_first, generator_config, make_renderer(generator_config), recognizer, keep)
    finally:
        recognizer.close()


def for_rendering(people: dict[int, Person]) -> dict[int, Person]:
    """The records pass 2 needs, without the best views (face crops stay on the driver): each person's
    surrogate, keep flag and mean identity shape."""
    slim: dict[int, Person] = {}
    by_identity: dict[int, Person] = {}
    for track, person in people.items():
        if person.identity not in by_identity:
            shapes = [person.shape] if person.shapes else []
            by_identity[person.identity] = Person(person.identity, list(person.tracks), [], shapes, person.keep,
                                                  person.surrogate, person.searches, person.candidates_tried,
                                                  person.distance)
        slim[track] = by_identity[person.identity]
    return slim


def render_segment(input_path: str | Path, part: str | Path, segment: Segment, config: PipelineConfig,
                   faces: SegmentFaces, people: dict[int, Person],
                   progress: ProgressCallback | None = None) -> RunReport:
    """Pass 2 over ``segment`` into ``part`` (video only): each face rendered or given the fallback."""
    input_path = Path(input_path)
    report = RunReport(str(input_path), str(part), config.mode)
    clock = StageClock()
    started = time.perf_counter()
    reporter = ProgressReporter(progress, input_path.name, segment.frames)
    reporter.start("rendering")
    with blas_single_threaded(), heap_frozen():
        render_pass(input_path, Path(part), config, report, clock, faces.frames, faces.points, people,
                    make_renderer(config.generator or GeneratorConfig()), reporter, segment)
    report.seconds = time.perf_counter() - started
    report.stage_seconds = dict(clock.seconds)
    return report


def cover_segment(input_path: str | Path, part: str | Path, segment: Segment, config: PipelineConfig,
                  progress: ProgressCallback | None = None) -> RunReport:
    """Blur, pixelate or solid over ``segment`` into ``part`` (video only), in one pass."""
    input_path = Path(input_path)
    report = RunReport(str(input_path), str(part), config.mode)
    clock = StageClock()
    with MediaPipeDetector(config.detector) as detector, blas_single_threaded(), heap_frozen():
        run_one_pass(input_path, Path(part), config, report, detector, clock, progress, segment=segment)
    report.stage_seconds = dict(clock.seconds)
    return report

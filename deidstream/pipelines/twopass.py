"""The default mode on files: two passes, so a person has their surrogate from their first frame.

Pass 1 reads the whole file once: detection, tracking, E_id embeddings of good views, and each
person's best views. FaceMesh's 468 landmarks (smoothed per track) are found there on every
frame of a track once E_id has had a usable look at it, since such a face may be rendered, and
otherwise only on the frames where E_id looks. Then the IdentityBook resolves tracks into people
(the same person after a cut or a re-entry), people on the keep list are set aside, and every
other person's surrogate is chosen and verified once. Pass 2 reads the file again and renders:
FaceMesh for the faces of people with a surrogate that pass 1 has no landmarks for (a track's
frames before its first usable look), then each such face in this frame's pose, expression and
light; every other face gets the fallback, which needs only its box. Landmarks were the analysis
pass's largest cost, and most faces of a crowded clip are never usable to E_id nor rendered.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from deidstream.config import GeneratorConfig, PipelineConfig, file_embedder_config, file_lock_config
from deidstream.engine.anonymizers import make_anonymizer
from deidstream.engine.deid import Deidentifier, FrameFaces
from deidstream.engine.generator.aux import canonical_shape
from deidstream.engine.generator.face_render import FaceRenderer, make_renderer
from deidstream.engine.lock import SECOND_SEARCH_WITHIN, Lock, SurrogateLocker, wide_enough
from deidstream.engine.natural_lock import NaturalLocker
from deidstream.geometry.mesh import default_mesh
from deidstream.pipelines.core import BackfillWindow, FrameCore
from deidstream.pipelines.locking import make_locker
from deidstream.pipelines.pass_two import HandStage, LandmarkStage, RenderStage
from deidstream.report import ProgressCallback, ProgressReporter, RunReport
from deidstream.stream.segments import Segment
from deidstream.stream.sink import FileSink
from deidstream.stream.source import FileSource
from deidstream.stream.threads import StageClock, run_pipeline
from deidstream.tracking.cuts import CutDetector
from deidstream.tracking.detector import FaceDetector
from deidstream.tracking.eid import EidRecognizer
from deidstream.tracking.embedding import FaceEmbedder
from deidstream.tracking.identity import IdentityBook
from deidstream.tracking.landmarks import FaceLandmarker
from deidstream.tracking.smoothing import LandmarkSmoother
from deidstream.tracking.tracker import FaceTracker, first_track_id
from deidstream.types import FaceDetections, FaceView, Frame, Person

log = logging.getLogger(__name__)


def _with_backfill(known: FrameFaces, boxes: np.ndarray) -> FrameFaces:
    return dataclasses.replace(known, backfill=np.concatenate([known.backfill, boxes]))


class Analysis:
    """Pass 1 state: per-frame faces, the identity book, and per-track shapes and best views."""

    def __init__(self, detector: FaceDetector, config: PipelineConfig, clock: StageClock, first_track: int = 1) -> None:
        # a face of a new shot must not inherit a track (and a surrogate): tracks end at cuts
        self.core = FrameCore(detector, FaceTracker(config.tracker, first_id=first_track), backfill=config.lookback > 0,
                              cuts=CutDetector(), end_tracks_at_cuts=True, clock=clock)
        self.window: BackfillWindow[FrameFaces] = BackfillWindow(config.lookback, config.tracker, _with_backfill)
        self.landmarker = FaceLandmarker(smoother=LandmarkSmoother(), second_looks=True)
        # on the embed thread: onnxruntime and torch let go of the GIL
        self.recognizer = EidRecognizer((config.generator or GeneratorConfig()).eid)
        self.embedder = FaceEmbedder(file_embedder_config(), recognizer=self.recognizer)
        self.book = IdentityBook()
        self.clock = clock
        self.frames: list[FrameFaces] = []  # every frame, once it has left the back-fill window
        # frame index -> landmarks, where found: the embed thread's, apart from ``frames`` (the track
        # thread's, which back-filling revises)
        self.points: dict[int, tuple[np.ndarray | None, ...]] = {}
        self._canonical = default_mesh()

    @property
    def cut_frames(self) -> list[int]:
        return self.core.cut_frames

    def detect(self, frame: Frame) -> tuple[Frame, FaceDetections]:
        return self.core.detect(frame)

    def track(self, detected: tuple[Frame, FaceDetections]) -> tuple[Frame, FaceDetections]:
        """Cuts, tracking and back-fill (the second thread)."""
        tracked = self.core.track(detected)
        self.window.note(tracked.born, tracked.cut)
        known = FrameFaces(tracked.frame.index, tracked.faces, detections=tracked.detections)
        self.frames.extend(self.window.push(known))
        return tracked.frame, tracked.faces

    def finish(self) -> None:
        """The frames still held for back-fill, once the input has ended."""
        self.frames.extend(self.window.flush())

    def embed(self, tracked: tuple[Frame, FaceDetections]) -> None:
        """Landmarks, E_id and the identity book (the third thread; MediaPipe and torch let go of
        the GIL, so the first two go on with the next frames)."""
        frame, faces = tracked
        t0 = time.perf_counter()
        ids = [int(t) for t in faces.track_id] if faces.track_id is not None else []
        needed = [self.embedder.usable_looks(t) > 0 or self.embedder.due(t, frame.index) for t in ids]
        points = self.landmarker.landmarks(frame.image, faces, t=frame.time, skip=[not n for n in needed])
        if any(p is not None for p in points):
            self.points[frame.index] = tuple(points)
        t1 = time.perf_counter()
        self.clock.add("landmarks", t1 - t0)
        for obs in self.embedder.observe(frame.image, faces, points, frame.index):
            self.book.add(obs)
            if obs.usable:
                self._remember(obs.track_id, obs.quality, frame.image, points, faces)
        self.book.see(faces, frame.index)  # present = detected this frame (coasting faces are guesses)
        self.clock.add("embed", time.perf_counter() - t1)

    def _remember(self, tid: int, quality: float, image: np.ndarray, points: list, faces: FaceDetections) -> None:
        i = int(np.flatnonzero(faces.track_id == tid)[0])
        p = points[i]
        if p is None:
            return
        mesh = self._canonical
        self.book.people.remember(tid, quality, image, p, canonical_shape(p, mesh.vertices, mesh.weights))

    def close(self) -> None:
        """Frees the landmarker (the recogniser stays for the lock; the caller closes it)."""
        self.landmarker.close()


def first_frames(frames: Iterable[FrameFaces]) -> dict[int, int]:
    """Track id → the first frame it covers (the order people are numbered and searched in)."""
    first: dict[int, int] = {}
    for ff in frames:
        for tid in (ff.faces.track_id if ff.faces.track_id is not None else []):
            first.setdefault(int(tid), ff.index)
    return first


def resolve_people(book: IdentityBook, track_first: dict[int, int], generator_config: GeneratorConfig,
                   renderer: FaceRenderer, recognizer: EidRecognizer,
                   keep: Callable[[np.ndarray], bool] | None = None) -> dict[int, Person]:
    """Tracks → people → locked surrogates (one search per person): the step between the passes. Returns
    each track's person record. ``track_first``: each track's first frame (:func:`first_frames`)."""
    track_to_identity = book.resolve()
    first_seen: dict[int, int] = {}
    for tid, frame in sorted(track_first.items(), key=lambda item: item[1]):
        ident = track_to_identity.get(tid)
        if ident is not None:
            first_seen.setdefault(ident, frame)
    lock_config = file_lock_config(generator_config)
    locker = make_locker(renderer, recognizer, generator_config, lock_config)
    people: dict[int, Person] = {}
    embeddings = {i: book.embedding(i) for i in first_seen if book.has_embedding(i)}
    for label, ident in enumerate(sorted(first_seen, key=first_seen.get)):
        person = book.person(ident)
        embedding = embeddings.get(ident)
        seen = book.frames_seen(ident) >= lock_config.min_seen_frames
        if embedding is not None and person.shapes and person.views and seen:
            if keep is not None and keep(embedding):
                person.keep = True
            else:
                others = np.array([e for i, e in embeddings.items() if i != ident], np.float32).reshape(-1, 128)
                lock = _search(locker, label, embedding, person.views, others)
                person.surrogate, person.distance = lock.surrogate, lock.distance
                person.searches, person.candidates_tried = person.searches + 1, lock.attempts
        for t in person.tracks:
            people[t] = person
    return people


def _search(locker: SurrogateLocker | NaturalLocker, label: int, embedding: np.ndarray, views: list[FaceView],
            others: np.ndarray) -> Lock:
    """A person's surrogate; a failed search that came within ``SECOND_SEARCH_WITHIN`` of τ is made
    again once, with new candidates verified in all three best views, for a face wide enough in them
    (``SECOND_SEARCH_MIN_FACE_PX``); the farther of the two is reported. One search at τ 0.9 failed
    for the README's sample in 2 of 5 random keys (best 0.76)."""
    lock = locker.lock(label, embedding, views, others)
    close = lock.distance is not None and lock.distance >= locker.config.tau - SECOND_SEARCH_WITHIN
    if not lock.locked and close and wide_enough(views):
        log.info("person %d: searching again, with new candidates verified in three views", label)
        again = locker.lock(label, embedding, views, others, first_attempt=locker.config.candidates, verify_views=3)
        farther = again.locked or (again.distance or 0.0) > (lock.distance or 0.0)
        lock = dataclasses.replace(again if farther else lock, attempts=lock.attempts + again.attempts)
    if not lock.locked:
        best = "no candidate cleared the bounds" if lock.distance is None else f"best {lock.distance:.2f}"
        log.warning("person %d: no surrogate reached tau=%.2f (%s in %d candidates); fallback blur",
                    label, locker.config.tau, best, lock.attempts)
    return lock


def run_two_pass(
    input_path: Path, output_path: Path, config: PipelineConfig, report: RunReport, detector: FaceDetector,
    clock: StageClock, progress: ProgressCallback | None = None,
    keep: Callable[[np.ndarray], bool] | None = None, save_book: Path | None = None,
) -> None:
    """Both passes over one file; fills ``report`` (frames, tracks, people, face outcomes).
    ``save_book`` writes the identity book (biometric embeddings) there: only when asked."""
    generator_config = config.generator or GeneratorConfig()
    started = time.perf_counter()
    analysis, reporter = analyse(input_path, detector, config, clock, progress)
    reporter.start("choosing surrogates")
    t0 = time.perf_counter()
    renderer = make_renderer(generator_config)
    try:
        people = resolve_people(analysis.book, first_frames(analysis.frames), generator_config, renderer,
                                analysis.recognizer, keep)
    finally:
        analysis.recognizer.close()
    if save_book is not None:
        analysis.book.save(save_book)
    clock.add("lock", time.perf_counter() - t0)
    reporter.start("rendering")
    render_pass(input_path, output_path, config, report, clock, analysis.frames, analysis.points, people,
                renderer, reporter)
    report.seconds = time.perf_counter() - started
    report.people = people_summary(people)
    report.cuts = analysis.cut_frames


def render_pass(input_path: Path, output_path: Path, config: PipelineConfig, report: RunReport, clock: StageClock,
                frames: Iterable[FrameFaces], points: dict[int, tuple[np.ndarray | None, ...]],
                people: dict[int, Person], renderer: FaceRenderer, reporter: ProgressReporter,
                segment: Segment | None = None) -> None:
    """Pass 2 over the file, or over one ``segment`` of it into a video-only part; fills ``report``'s frames
    and face outcomes."""
    deid = Deidentifier(renderer, make_anonymizer(config.anonymizer), config.generator or GeneratorConfig(), people)

    def on_frame(frame: Frame, known: FrameFaces, regions: np.ndarray) -> None:
        report.add_frame(frame.index, known.detections if known.detections is not None else known.faces,
                         known.faces, regions, deid.outcomes)
        reporter.step()

    landmarks, hands = LandmarkStage(frames, points, people, clock), HandStage(people, clock)
    try:
        with FileSource(input_path, segment) as source:
            stages = [landmarks, hands, RenderStage(deid, clock, on_frame)]
            with FileSink(output_path, source.info, source.audio_streams, config.encoder) as sink:
                run_pipeline(source.items(), stages, sink.write, queue_size=config.queue_size, clock=clock)
            report.frames_written = sink.frames_written
            report.decode_errors = source.decode_errors
    finally:
        landmarks.close()
        hands.close()
    report.face_outcomes = {"rendered": deid.counts.rendered, "fallback": deid.counts.fallback,
                            "rendered_64px": deid.counts.rendered_wide, "fallback_64px": deid.counts.fallback_wide,
                            "kept": deid.counts.kept, "fallback_reasons": dict(deid.counts.reasons)}


def analyse(input_path: Path, detector: FaceDetector, config: PipelineConfig, clock: StageClock,
            progress: ProgressCallback | None, segment: Segment | None = None) -> tuple[Analysis, ProgressReporter]:
    """Pass 1 over the whole file or one ``segment`` (three threads: detection, tracking, landmarks and
    E_id). The recogniser stays open for the lock; on failure everything is closed."""
    analysis = Analysis(detector, config, clock, first_track_id(segment.index if segment is not None else 0))
    try:
        with FileSource(input_path, segment) as source:
            reporter = ProgressReporter(progress, input_path.name, source.frames_expected, passes=2)
            reporter.start("analysing")

            def embed(item: tuple[Frame, FaceDetections]) -> list[object]:
                analysis.embed(item)
                reporter.step()
                return []

            stages = [lambda item: [analysis.detect(item)] if isinstance(item, Frame) else [],
                      lambda item: [analysis.track(item)], embed]
            run_pipeline(source.items(), stages, lambda _: None, queue_size=config.queue_size, clock=clock)
        analysis.finish()
    except BaseException:
        analysis.recognizer.close()
        raise
    finally:
        analysis.close()
    return analysis, reporter


def people_summary(people: dict[int, Person]) -> list[dict]:
    by_identity: dict[int, dict] = {}
    for track, person in sorted(people.items()):
        entry = by_identity.setdefault(person.identity, {
            "person": len(by_identity), "tracks": [], "keep": person.keep, "locked": person.locked})
        entry["tracks"].append(track)
        if person.searches:
            entry["candidates_tried"] = person.candidates_tried
            if person.distance is not None:  # a search without a surrogate reports its best candidate's distance
                entry["id_distance_verified" if person.locked else "best_id_distance"] = round(person.distance, 3)
    return list(by_identity.values())

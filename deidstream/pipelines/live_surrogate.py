"""The surrogate mode for live sources: identities resolved online, surrogates locked in the
background, faces rendered within the frame's budget.

The live scheduler calls ``prepare`` once per frame after tracking: the 468 landmarks of every
face (FaceMesh per track, smoothed); then ``render_face`` for each face, on another thread. E_id
and the surrogate lock are too slow for a frame budget (E_id, dlib's network in torch, about 10 ms
a face with its alignment; a lock renders and describes dozens of candidates), so a worker thread
at a lower priority does them:
it embeds a face when it is due, assigns tracks to identities online (an assignment never
changes, so a surrogate never jumps), and locks a surrogate once a person has enough views.
Until then the face is not ``ready`` and gets the fallback.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from deidstream.config import GeneratorConfig, live_lock_config
from deidstream.engine.deid import Deidentifier
from deidstream.engine.generator.aux import canonical_shape
from deidstream.engine.generator.compositor import RenderedFace
from deidstream.engine.generator.face_render import FaceRenderer
from deidstream.engine.generator.follow import AnchorFollower
from deidstream.engine.generator.repaint import Repainter, anchors_of
from deidstream.engine.lock import SECOND_SEARCH_MIN_FACE_PX, wide_enough
from deidstream.native import lower_priority
from deidstream.pipelines.locking import make_locker
from deidstream.tracking.eid import EidRecognizer
from deidstream.tracking.embedding import FaceEmbedder
from deidstream.tracking.identity import IdentityBook
from deidstream.tracking.landmarks import FaceLandmarker
from deidstream.tracking.smoothing import LandmarkSmoother
from deidstream.types import FaceDetections, Person

log = logging.getLogger(__name__)
MIN_VIEWS_TO_LOCK = 3
TURN_CYCLE_MIN = 3  # frames in which locked faces take their turns at a new render, when there are several
TURN_NEVER = 1 << 30  # the age of a face that never had a turn: due first
LIVE_RETRIES = 2  # further searches for a person whose search failed (a failed person stays blurred)
RETRY_LOOKS = 24  # usable looks between searches (looks come every 3rd, later every 15th frame)
RETRY_MIN_FACE_PX = SECOND_SEARCH_MIN_FACE_PX  # only faces this wide in all three views are searched again
WORK_QUEUE = 4  # frames waiting for the worker; more are skipped (the worker is behind, not the stream)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What ``prepare`` found in a frame: its number, each face's landmarks (None where only its
    anchors were followed), its anchors, and whether it is each face's turn for a new render (the
    others get their last one moved)."""

    index: int
    points: tuple[np.ndarray | None, ...]
    anchors: tuple[np.ndarray | None, ...]
    turns: tuple[bool, ...]


def render_turns(index: int, track_ids: np.ndarray, locked: np.ndarray, waiting: int = 0,
                 planned: dict[int, int] | None = None) -> tuple[bool, ...]:
    """Whose turn it is for a new render in frame ``index`` (``planned``: each track's last turn).

    A lone face renders every frame. Faces that share the CPU (locked, or ``waiting`` while their
    person's surrogate is being looked for) take turns, at most one new render per frame: the locked
    face whose last turn is oldest, once that is at least ``max(locked, 3)`` frames ago. With two,
    that is two renders in three frames instead of three, while the others' repaints are 1-2
    frames old (:class:`Repainter` allows 3); that CPU is what two faces lacked on a 2-core machine
    (benchmarks/bench_live.py). A turn missed for lack of time is taken off ``planned``, so that face
    is the next one due. Faces without a surrogate never have a turn."""
    ids = [int(t) for t, is_locked in zip(track_ids, locked) if is_locked]
    if len(ids) + waiting <= 1:
        return tuple(bool(x) for x in locked)
    planned = planned or {}
    age = {t: index - planned[t] if t in planned else index + TURN_NEVER for t in ids}
    due = max(ids, key=lambda t: (age[t], -t), default=None)
    if due is None or age[due] < max(len(ids), TURN_CYCLE_MIN):
        due = None
    return tuple(bool(is_locked) and int(t) == due for t, is_locked in zip(track_ids, locked))


@dataclass(frozen=True, slots=True)
class _Job:
    index: int
    image: np.ndarray | None  # None when no face of the job is due a look (the book only sees the faces)
    faces: FaceDetections
    points: tuple[np.ndarray | None, ...]


class SurrogatePath:
    """A live ``FacePath``: the surrogate of the face's person, or False (fallback) until it is locked."""

    name = "surrogate"
    budgets_itself = True  # a repaint fits where a new render would not

    def __init__(self, config: GeneratorConfig, renderer: FaceRenderer, *, landmarker: FaceLandmarker | None = None,
                 embedder: FaceEmbedder | None = None, book: IdentityBook | None = None,
                 recognizer: EidRecognizer | None = None) -> None:
        from deidstream.tracking.embedding import FaceEmbedder
        from deidstream.tracking.identity import IdentityBook
        from deidstream.tracking.landmarks import FaceLandmarker

        self.config = config
        self.renderer = renderer
        self.landmarker = landmarker or FaceLandmarker(smoother=LandmarkSmoother(), spares=2)
        self.follower = AnchorFollower()  # a face waiting for its turn needs only its anchors
        # E_id runs on the identity worker (lower priority); torch lets go of the GIL inside the
        # network, so the frame's landmarks, rendering and encoding go on meanwhile
        self._own_recognizer = recognizer is None
        self.recognizer = recognizer or EidRecognizer(config.eid)
        self.embedder = embedder or FaceEmbedder(recognizer=self.recognizer)
        self.book = book or IdentityBook()
        self.locker = make_locker(renderer, self.recognizer, config, live_lock_config(config))
        self._rendering = False  # a locked face was in the last frame prepared: a search yields to its renders
        self.locker.pause_when = lambda: self._rendering
        self._mesh = renderer.model.mesh
        # per face only: the scheduler applies the fallback to the faces this path declines
        self._deid = Deidentifier(renderer, None, config, {})
        self._state = threading.Lock()
        # each person's record (views, shapes, searches, surrogate) is the book's; a person has a verdict
        # once ``searches`` > 0 (locked, or not: the fallback, with retries while they are left)
        self.retry_looks, self.retry_min_face_px = RETRY_LOOKS, RETRY_MIN_FACE_PX
        self._frame_index = -1
        self._painting = -1  # the frame render_face is working on (the cover thread's)
        self._painted: list[RenderedFace] = []  # what render_face blended into that frame
        self.repainter = Repainter(max_age=3)
        self._planned: dict[int, int] = {}  # track → frame of its last turn at a new render (see render_turns)
        self._render_cost = 0.0  # running mean of a new render, seconds
        self.over_budget = 0  # faces neither rendered nor repainted in time (the scheduler blurs them)
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=WORK_QUEUE)
        self._worker = threading.Thread(target=self._work, name="deidstream-identities", daemon=True)
        self._worker.start()
        self.jobs_skipped = 0

    def close(self) -> None:
        self._jobs.put(None)
        self._worker.join(timeout=30)
        self.landmarker.close()
        if self._own_recognizer:
            self.recognizer.close()

    # -- per frame: ``prepare`` on the scheduler's tracking thread, ``render_face`` on its cover thread --
    def prepare(self, image: np.ndarray, faces: FaceDetections) -> _Prepared:
        """Landmarks of every face of this frame (FaceMesh per track, smoothed); hands the faces whose
        person has no verdict yet to the identity worker."""
        self._frame_index += 1
        index, now = self._frame_index, time.monotonic()
        if faces.track_id is None:
            points = tuple(self.landmarker.landmarks(image, faces, t=now))
            return _Prepared(index, points, tuple(None if p is None else anchors_of(p) for p in points),
                             (False,) * len(faces))
        ids = [int(t) for t in faces.track_id]
        with self._state:
            known = [self.book.identity_of(t) for t in ids]
            people = [None if k is None else self._verdict(k) for k in known]
        locked = np.array([p is not None and p.surrogate is not None for p in people], bool)
        self._rendering = bool(locked.any())
        waiting = sum(p is None for p in people)
        done = [p is not None and (p.surrogate is not None or not self._may_retry(k)) for p, k in zip(people, known)]
        # Landmarks are for rendering (locked faces) and for E_id's looks at the others, which come every
        # 3rd, later every 15th frame; the fallback needs only the box. (The worker decides again: a
        # look it finds due without landmarks is spent as "no landmarks", which only delays it.)
        looking = [not d and self.embedder.due(t, index) for d, t in zip(done, ids)]
        turns = render_turns(index, faces.track_id, locked, waiting, self._planned)
        for gone in set(self._planned) - set(ids):
            self._planned.pop(gone, None)
        for tid, turn in zip(ids, turns):
            if turn:
                self._planned[tid] = index
        points, anchors = self._landmarks(image, faces, ids, turns, locked if locked.sum() + waiting > 1 else None, now,
                                          locked | np.array(looking, bool))
        prepared = _Prepared(index, points, anchors, turns)
        if all(done):  # everyone in view has their surrogate (or their verdict): no E_id work
            return prepared
        if self._jobs.full():  # the worker is behind: no frame copy for a job that would be skipped
            self.jobs_skipped += 1  # (only this thread puts while frames flow: a queue with room keeps it)
            return prepared
        pending = np.flatnonzero(~np.array(done))
        self._jobs.put_nowait(_Job(self._frame_index, image.copy() if any(looking) else None, faces[pending],
                                   tuple(points[i] for i in pending)))
        return prepared

    def _landmarks(self, image: np.ndarray, faces: FaceDetections, ids: list[int], turns: tuple[bool, ...],
                   taking_turns: np.ndarray | None, now: float, needed: np.ndarray
                   ) -> tuple[tuple[np.ndarray | None, ...], tuple[np.ndarray | None, ...]]:
        """FaceMesh's landmarks of the ``needed`` faces, except for locked faces waiting for their turn
        whose anchors flow followed (their last render only moves); FaceMesh after all where flow
        could not follow. ``taking_turns``: which faces are locked, when faces take turns (None: they
        do not). A face not needed gets None and its next landmarks are smoothed afresh."""
        follower = self.follower
        follower.forget_except(set(ids))
        anchors: list[np.ndarray | None] = [None] * len(ids)
        if taking_turns is not None:
            for i, tid in enumerate(ids):
                if taking_turns[i] and not turns[i] and follower.can_follow(tid, self._frame_index):
                    anchors[i] = follower.follow(tid, self._frame_index, image)
        points = self.landmarker.landmarks(image, faces, t=now, skip=[not n for n in needed],
                                           hold=[a is not None for a in anchors])
        for i, (tid, p) in enumerate(zip(ids, points)):
            if p is not None:
                anchors[i] = anchors_of(p)
                if taking_turns is not None and taking_turns[i]:  # only locked faces are ever followed
                    follower.seen(tid, self._frame_index, image, anchors[i])
        return tuple(points), tuple(anchors)

    def ready(self, faces: FaceDetections, i: int) -> bool:
        return self._person_of(faces, i) is not None

    def render_face(self, image: np.ndarray, faces: FaceDetections, i: int, deadline: float,
                    prepared: object) -> bool:
        """The face's surrogate: rendered anew, or, with several locked faces in view and when it is
        another face's turn, its last render moved to where it is now (:class:`Repainter`). A face
        with followed anchors only can be repainted, not rendered."""
        frame: _Prepared = prepared  # type: ignore[assignment]
        person = self._person_of(faces, i)
        points, anchors = frame.points[i], frame.anchors[i]
        if faces.track_id is None or self._deid.why_not(person, anchors, faces.xyxy[i]) is not None:
            return False  # a repaint follows the anchors: they must be this face's
        tid = int(faces.track_id[i])
        if frame.index != self._painting:
            self._painting = frame.index
            self._painted = []
            self.repainter.forget_except({int(t) for t in faces.track_id})
        start = time.monotonic()
        no_time = start + self._render_cost > deadline
        if no_time or not frame.turns[i] or points is None:
            if frame.turns[i]:  # a turn missed: this face is due again (prepare may be frames ahead)
                self._missed_turn(tid, frame.index)
            if (moved := self.repainter.repaint(tid, frame.index, image, anchors)) is not None:
                self._painted.append(moved)
                return True
        if points is None:
            return False
        if no_time:
            self.over_budget += 1
            self._render_cost *= 0.95  # forget a slow spell slowly
            return False
        face = self._deid.render_face(image, faces.xyxy[i], points, person)
        if face is None:
            return False
        spent = time.monotonic() - start
        self._render_cost = spent if self._render_cost == 0 else 0.8 * self._render_cost + 0.2 * spent
        self.repainter.remember(tid, frame.index, image, anchors, face)
        self._painted.append(face)
        if not frame.turns[i] and self._planned.get(tid, -1) < frame.index:
            self._planned[tid] = frame.index  # rendered anew out of turn (its repaint was refused)
        return True

    def painted(self) -> list[RenderedFace]:
        """The faces rendered or repainted in the frame ``render_face`` worked on last."""
        return self._painted

    def _missed_turn(self, track_id: int, frame_index: int) -> None:
        if self._planned.get(track_id) == frame_index:
            self._planned.pop(track_id, None)

    @property
    def repainted(self) -> int:
        """Faces given their last render, moved, instead of a new one."""
        return self.repainter.repainted

    def _person_of(self, faces: FaceDetections, i: int) -> Person | None:
        """The locked person of face ``i``, or None (not known yet, or no surrogate: fallback)."""
        if faces.track_id is None:
            return None
        with self._state:
            identity = self.book.identity_of(int(faces.track_id[i]))
            person = self._verdict(identity) if identity is not None else None
        return person if person is not None and person.surrogate is not None else None

    def _verdict(self, identity: int) -> Person | None:
        """The person's record once their first search is over (call holding ``_state``)."""
        person = self.book.people.get(identity)
        return person if person is not None and person.searches else None

    # -- the worker: E_id, online identities, locks --------------------------------------------------
    def _work(self) -> None:
        lower_priority(threading.get_native_id())  # E_id and locks wait; the frames do not
        try:
            self.locker.warm()  # while the source connects, not while the first person waits
        except Exception:  # noqa: BLE001 - a lock builds the same on its own, later
            log.warning("could not prepare the surrogate search ahead; the first one builds it", exc_info=True)
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                self._digest(job)
            except Exception:  # noqa: BLE001 - the stream goes on with the fallback; say why once per failure
                log.warning("identity worker failed on frame %d; those faces keep the fallback", job.index,
                            exc_info=True)

    def _digest(self, job: _Job) -> None:
        observations = self.embedder.observe(job.image, job.faces, list(job.points), job.index)
        with self._state:
            self.book.see(job.faces, job.index)
        for obs in observations:
            with self._state:
                identity = self.book.add(obs)
            if not obs.usable:
                continue
            i = int(np.flatnonzero(job.faces.track_id == obs.track_id)[0])
            p = job.points[i]
            if p is None:
                continue
            shape = canonical_shape(p, self._mesh.vertices, self._mesh.weights)
            with self._state:
                self.book.people.remember(obs.track_id, obs.quality, job.image, p, shape)
                person = self.book.person(identity) if identity is not None else None
            if person is None or self.book.people.views_of(obs.track_id) < MIN_VIEWS_TO_LOCK:
                continue
            if not person.searches:
                self._lock(person)
            elif self._retry_due(person):
                self._lock(person, retry=True)

    def _may_retry(self, identity: int | None) -> bool:
        """Whether a person without a surrogate may still get one (their search failed, retries are left)."""
        person = None if identity is None else self.book.people.get(identity)
        return person is not None and person.searches <= LIVE_RETRIES

    def _retry_due(self, person: Person) -> bool:
        """A failed person's next search: after ``retry_looks`` more usable looks (better views than
        the first three), on faces at least ``retry_min_face_px`` wide in all three views. A small
        face's descriptor moves 0.4-0.6 between its frames, and more draws against a noisy check is
        how a surrogate that does not hold passes (measured on files: one such second search left a
        stage performer re-identified in 2 of 34 faces), so small faces are not retried: a chance
        that comes when the face is too small is spent without a search."""
        if person.surrogate is not None or person.searches > LIVE_RETRIES:
            return False
        person.looks_since_search += 1
        if person.looks_since_search < self.retry_looks:
            return False
        if wide_enough(person.views, self.retry_min_face_px):
            return True
        # too small now: that chance is spent, so a face that stays small stops costing E_id work
        with self._state:
            person.searches += 1
            person.looks_since_search = 0
        return False

    def _lock(self, person: Person, *, retry: bool = False) -> None:
        """A search for the person's surrogate; a retry draws new candidates and verifies each in all
        three views instead of two."""
        identity, attempt = person.identity, person.searches
        book = self.book
        with self._state:  # the other people met so far: the surrogate must not look like them
            embedding = book.embedding(identity)
            known = [i for i in book.identities() if i != identity and book.has_embedding(i)]
            others = np.array([book.embedding(i) for i in known], np.float32).reshape(-1, 128)
        lock = self.locker.lock(identity, embedding, person.views, others, verify_views=3 if retry else 2,
                                first_attempt=attempt * self.locker.config.candidates)
        with self._state:
            person.surrogate, person.distance = lock.surrogate, lock.distance
            person.candidates_tried += lock.attempts
            person.searches, person.looks_since_search = attempt + 1, 0
        search = f" (search {attempt + 1}, verified in {3 if retry else 2} views)" if attempt else ""
        if lock.locked:
            log.info("person %d: surrogate locked%s", identity, search)
        else:
            log.info("person %d: no surrogate%s; fallback%s", identity, search,
                     "" if attempt >= LIVE_RETRIES else f", searching again after {self.retry_looks} more looks "
                     f"if the face is {self.retry_min_face_px} px or wider")


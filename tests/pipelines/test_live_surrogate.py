"""The surrogate mode live: a person is resolved online and locked in the background; until then
their face is declined (the scheduler blurs it), afterwards it is rendered, and it stays one
surrogate."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import shared_file
from media import read_rgb

from deidstream.config import DetectorConfig, GeneratorConfig
from deidstream.engine.generator.face_render import make_renderer
from deidstream.pipelines.live_surrogate import LIVE_RETRIES, SurrogatePath
from deidstream.tracking.detector import MediaPipeDetector
from deidstream.tracking.people import People
from deidstream.tracking.tracker import FaceTracker


def test_a_face_is_declined_until_its_surrogate_is_locked_then_rendered():
    frames = read_rgb(shared_file("videos/talking_head_1.mp4"))
    config = GeneratorConfig(tau=0.7, key=b"live test")
    path = SurrogatePath(config, make_renderer(config))
    pauses: list[bool] = []  # whether the search yielded after each candidate it rendered
    would_pause = path.locker.pause_when
    path.locker.pause_when = lambda: pauses.append(would_pause()) or pauses[-1]
    tracker = FaceTracker()
    outcomes: list[bool] = []
    changed: list[float] = []
    try:
        with MediaPipeDetector(DetectorConfig(short_range=False, tile_size=0, full_range_every=1)) as detector:
            deadline = time.monotonic() + 90.0
            index = 0
            while time.monotonic() < deadline:
                image = frames[index % len(frames)].copy()
                faces = tracker.update(detector.detect(image), index, (image.shape[1], image.shape[0]))
                assert len(faces) == 1, f"frame {index}: one face expected"
                before = image.copy()
                prepared = path.prepare(image, faces)
                ready = path.ready(faces, 0)
                ok = path.render_face(image, faces, 0, time.monotonic() + 1.0, prepared)
                assert ok == ready, "a locked person's frontal face is rendered, nobody else's"
                outcomes.append(ok)
                if ok:
                    x0, y0, x1, y1 = faces.xyxy[0].astype(int)
                    changed.append(float(np.abs(image[y0:y1, x0:x1].astype(int) - before[y0:y1, x0:x1]).mean()))
                    if len(changed) >= 20:
                        break
                else:
                    assert np.array_equal(image, before), "a declined face must be left to the fallback untouched"
                    time.sleep(0.02)  # the worker needs the CPU more than we need frames
                index += 1
    finally:
        path.close()
    assert outcomes[0] is False, "no surrogate before the person is known"
    assert sum(outcomes) >= 20, f"the surrogate never took over ({sum(outcomes)} rendered of {len(outcomes)})"
    first = outcomes.index(True)
    assert all(outcomes[first:]), "once locked, the person's face keeps being rendered"
    # the box holds hair and background the render leaves; a donor of her own tone and age changes the face
    # itself by less in grey levels than a worse-matched one did (its distance is verified by the lock, not here)
    assert min(changed) > 5.0, "a rendered face region must differ from the original"
    # nothing is rendered while the only person is searched for: the search need not yield (a sooner surrogate)
    assert pauses and not any(pauses)
    assert would_pause(), "with a locked face in view, a search yields to its renders"


class OnePersonBook:
    """Every track is person 1 (the identity book's online answer, without E_id)."""

    def __init__(self) -> None:
        self.people = People()

    def identity_of(self, track_id: int) -> int:
        return 1


def one_person_path(clip: str, key: bytes, limit: int):
    """A clip's first frames, and a live surrogate path in which every track is person 1."""
    frames = read_rgb(shared_file(f"videos/{clip}"), limit=limit)
    config = GeneratorConfig(key=key)
    renderer = make_renderer(config)
    return frames, renderer, SurrogatePath(config, renderer, book=OnePersonBook())


def plain_surrogate(model):
    """A plain surrogate: mean shape, mid appearance."""
    from deidstream.engine.generator.face_render import Surrogate
    from deidstream.engine.generator.facemodel import Identity

    return Surrogate.of(model, Identity(np.zeros(model.n_shape, np.float32),
                                        np.full(model.n_appearance, 0.5, np.float32)))


def lock_person_one(path, model) -> None:
    """Person 1's record in the path's book: searched once and locked to a plain surrogate, as by the worker."""
    person = path.book.people.person(1, [])
    person.surrogate, person.searches = plain_surrogate(model), 1
    person.shapes = [model.mesh.vertices.astype(np.float32)]


def test_a_repaint_needs_landmarks_on_the_tracked_face_and_no_time_for_a_render():
    from deidstream.types import FaceDetections

    frames, renderer, path = one_person_path("talking_head_1.mp4", b"repaint test", limit=3)
    try:
        tracker = FaceTracker()
        with MediaPipeDetector() as detector:
            found = [tracker.update(detector.detect(f), i, (f.shape[1], f.shape[0])) for i, f in enumerate(frames)]
        first = found[0]
        prepared = path.prepare(frames[0], first)
        lock_person_one(path, renderer.model)
        image = frames[0].copy()
        assert path.render_face(image, first, 0, time.monotonic() + 1.0, prepared)  # a new render, remembered
        assert path.repainted == 0
        late = time.monotonic() - 1.0  # the deadline has passed: only a repaint can still be done
        faces = found[1]
        prepared = path.prepare(frames[1], faces)
        image = frames[1].copy()
        assert path.render_face(image, faces, 0, late, prepared) and path.repainted == 1
        x0, y0, x1, y1 = faces.xyxy[0].astype(int)
        assert np.abs(image[y0:y1, x0:x1].astype(int) - frames[1][y0:y1, x0:x1]).mean() > 8.0
        # landmarks that do not lie on the tracked box describe some other face: no repaint there
        faces = found[2]
        prepared = path.prepare(frames[2], faces)
        away = FaceDetections(faces.xyxy + np.array([400, 0, 400, 0], np.float32), faces.score,
                              track_id=faces.track_id)
        image = frames[2].copy()
        assert not path.render_face(image, away, 0, late, prepared)
        assert np.array_equal(image, frames[2]) and path.repainted == 1
    finally:
        path.close()


def test_locked_faces_take_turns_at_a_new_render_and_no_repaint_gets_too_old():
    from deidstream.engine.generator.repaint import Repainter
    from deidstream.pipelines.live_surrogate import render_turns

    def turns(track_ids, locked, frames=12, waiting=0, missed=()):
        planned: dict[int, int] = {}
        out = []
        for i in range(frames):
            now = render_turns(i, np.array(track_ids), np.array(locked), waiting, planned)
            for t, turn in zip(track_ids, now):
                if turn and i not in missed:
                    planned[t] = i
            out.append(now)
        return np.array(out)

    alone = turns([4, 7], [True, False])
    assert alone[:, 0].all() and not alone[:, 1].any(), "a lone locked face renders every frame, no unlocked one ever"
    beside_search = turns([4, 7], [True, False], waiting=1)
    assert beside_search[:, 0].sum() == 4 and not beside_search[:, 1].any(), "one in three while a search runs"
    for ids in ([1, 3], [2, 5], [9, 0]):  # same or different parity: still one at a time
        two = turns(ids, [True, True])
        assert two.sum(axis=1).max() == 1, "at most one new render per frame"
        assert (two.sum(axis=0) == 4).all(), "each face renders in 4 of 12 frames"
        for face in range(2):
            gaps = np.diff(np.flatnonzero(two[:, face]))
            assert gaps.max() - 1 < Repainter(max_age=3).max_age, "in between, the last render is never too old to move"
    three = turns([1, 2, 3], [True, True, True])
    assert (three.sum(axis=1) == 1).all() and (three.sum(axis=0) == 4).all()
    # a turn missed for lack of time: that face is due again in the next frame, not three later
    late = turns([1, 2], [True, True], frames=6, missed=(3,))
    assert late[3, 0] and late[4, 0] and not late[4, 1]


def test_faces_waiting_for_their_turn_are_followed_by_flow_and_repainted():
    frames, renderer, path = one_person_path("two_faces_selfie_portrait.mp4", b"follow test", limit=7)
    try:
        lock_person_one(path, renderer.model)  # both faces: person 1, locked
        tracker = FaceTracker()
        with MediaPipeDetector() as detector:
            for k, frame in enumerate(frames):
                faces = tracker.update(detector.detect(frame), k, (frame.shape[1], frame.shape[0]))
                assert len(faces) == 2
                prepared = path.prepare(frame, faces)
                image = frame.copy()
                for i in range(2):
                    assert path.render_face(image, faces, i, time.monotonic() + 1.0, prepared), (k, i)
                    x0, y0, x1, y1 = faces.xyxy[i].astype(int)
                    x0, y0 = max(x0, 0), max(y0, 0)
                    assert np.abs(image[y0:y1, x0:x1].astype(int) - frame[y0:y1, x0:x1]).mean() > 8.0, (k, i)
                    if prepared.points[i] is None:  # waiting for its turn: its anchors followed, no FaceMesh
                        assert not prepared.turns[i] and prepared.anchors[i] is not None, (k, i)
        assert path.follower.followed >= 6 and path.repainted >= 6  # of 14 faces; the rest are new renders
    finally:
        path.close()


class ScriptedLocker:
    """The locker's interface with outcomes given in advance: no surrogate at the first search, one at the next."""

    def __init__(self, config, surrogate) -> None:
        self.config = config
        self.surrogate = surrogate
        self.calls: list[tuple[int, int, int]] = []

    def lock(self, label, embedding, views, others, *, first_attempt=0, verify_views=2):
        from deidstream.engine.lock import Lock

        self.calls.append((first_attempt, verify_views, len(views)))
        found = self.surrogate if len(self.calls) > 1 else None
        return Lock(label, found, 0.9 if found else 0.7, 6, 0.8, 1.0)


def _feed(path, frames, until, limit_s=60.0):
    """Frames through ``prepare`` (the worker embeds and locks in the background) until ``until()``."""
    tracker = FaceTracker()
    deadline = time.monotonic() + limit_s
    with MediaPipeDetector(DetectorConfig(short_range=False, tile_size=0, full_range_every=1)) as detector:
        for index in range(10_000):
            if until() or time.monotonic() > deadline:
                return
            image = frames[index % len(frames)]
            path.prepare(image, tracker.update(detector.detect(image), index, (image.shape[1], image.shape[0])))
            while path._jobs.qsize():
                time.sleep(0.01)


@pytest.mark.parametrize("wide_enough", [True, False])
def test_a_person_whose_search_failed_is_searched_again_with_new_candidates_if_large(wide_enough):
    from deidstream.config import LockConfig

    frames = read_rgb(shared_file("videos/talking_head_1.mp4"), limit=60)
    config = GeneratorConfig(key=b"retry test")
    renderer = make_renderer(config)
    path = SurrogatePath(config, renderer)
    try:
        surrogate = plain_surrogate(renderer.model)
        path.locker = ScriptedLocker(LockConfig(candidates=24), surrogate)
        path.retry_looks = 2
        path.retry_min_face_px = 100 if wide_enough else 10_000
        calls = path.locker.calls
        _feed(path, frames, lambda: len(calls) >= 2 or (not wide_enough and calls and not path._may_retry(1)))
        assert calls[0] == (0, 2, 3), "the first search: candidates 0.., verified in two of three views"
        if wide_enough:
            assert calls[1] == (24, 3, 3), "the next: new candidates, verified in all three views"
            time.sleep(0.2)
            assert path.book.people.get(1).surrogate is surrogate
        else:
            assert len(calls) == 1 and path.book.people.get(1).surrogate is None, "a small face is not searched again"
            assert path.book.people.get(1).searches == 1 + LIVE_RETRIES, "its chances were spent without a search"
    finally:
        path.close()


def test_a_face_without_a_surrogate_gets_landmarks_only_when_e_id_looks_at_it():
    """Its fallback needs only the box; FaceMesh runs on the frames E_id is due (every frame for the
    first looks, then every 3rd), and those looks still lead to a search."""
    from deidstream.config import LockConfig

    frames = read_rgb(shared_file("videos/talking_head_1.mp4"), limit=60)
    config = GeneratorConfig(key=b"looks test")
    path = SurrogatePath(config, make_renderer(config))
    meshed: list[bool] = []
    due: list[bool] = []
    landmarks = path.landmarker.landmarks

    def spy(image, faces, t=None, skip=None, hold=None):
        meshed.append(not (skip[0] or hold[0]))
        due.append(path.embedder.due(int(faces.track_id[0]), path._frame_index))
        return landmarks(image, faces, t=t, skip=skip, hold=hold)

    try:
        path.landmarker.landmarks = spy
        path.locker = ScriptedLocker(LockConfig(candidates=24), None)  # every search fails: the person stays unlocked
        _feed(path, frames, lambda: len(meshed) >= 45)
        assert path.locker.calls, "the looks had their landmarks: the person was searched"
        assert path.book.people.get(1).surrogate is None
    finally:
        path.close()
    assert meshed == due, "FaceMesh exactly on the frames E_id looks at the face"
    assert all(meshed[:3]) and sum(meshed) <= 0.5 * len(meshed), meshed

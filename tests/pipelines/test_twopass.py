"""Pass 2's landmarks: pass 1 finds them where E_id may use a face; pass 2 adds FaceMesh's only
for faces it will render, so a locked person is rendered from their track's first frame."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from conftest import shared_file
from media import read_rgb

from deidstream.engine.deid import FrameFaces
from deidstream.engine.generator.face_render import Surrogate
from deidstream.engine.generator.facemodel import default_model
from deidstream.pipelines.pass_two import LandmarkStage
from deidstream.stream.threads import StageClock
from deidstream.tracking.detector import MediaPipeDetector
from deidstream.types import FaceDetections, Frame, Person


def _frames():
    images = read_rgb(shared_file("videos/two_faces_selfie_portrait.mp4"), limit=2)
    with MediaPipeDetector() as det:
        found = det.detect(images[0])
    assert len(found) == 2
    faces = FaceDetections(found.xyxy, found.score, track_id=np.array([1, 2]))
    frames = [Frame(i, im, pts=i, time_base=Fraction(1, 30)) for i, im in enumerate(images)]
    return frames, [FrameFaces(i, faces) for i in range(2)]


def test_pass_two_finds_landmarks_only_for_rendered_faces_pass_one_lacks():
    frames, known = _frames()
    model = default_model()
    locked = Person(10, surrogate=Surrogate.of(model, model.mean_identity()),
                    shapes=[np.zeros((468, 3), np.float32)])
    blurred = Person(11, shapes=[np.zeros((468, 3), np.float32)])
    from_pass_one = np.full((468, 3), 5.0, np.float32)
    stage = LandmarkStage(known, {1: (from_pass_one, None)}, {1: locked, 2: blurred}, StageClock())
    try:
        first, second = (stage(f)[0] for f in frames)
    finally:
        stage.close()
    a, b = first.faces.faces.landmark_list()  # frame 0: nothing from pass 1, FaceMesh for the locked face only
    box = known[0].faces.xyxy[0]
    assert a is not None and a.shape == (468, 3) and b is None
    assert box[0] - 20 < a[:, 0].mean() < box[2] + 20 and box[1] - 20 < a[:, 1].mean() < box[3] + 20
    kept, none = second.faces.faces.landmark_list()
    assert np.array_equal(kept, from_pass_one) and none is None
    assert first.frame is frames[0] and second.frame is frames[1]


def test_without_a_locked_person_pass_two_runs_no_facemesh():
    frames, known = _frames()
    stage = LandmarkStage(known, {}, {1: Person(10)}, StageClock())
    assert stage.landmarker is None
    out = stage(frames[0])[0]
    assert out.faces.faces.landmark_list() == [None, None]


def test_a_person_detected_in_only_a_few_frames_gets_the_fallback_not_a_surrogate(monkeypatch):
    """A detection that flickers in a few frames (portrait_s18: a blurred object behind the woman)
    must not get a surrogate face painted on it; someone seen longer is searched for as usual."""
    from types import SimpleNamespace

    from deidstream.config import GeneratorConfig, LockConfig
    from deidstream.engine.lock import Lock
    from deidstream.pipelines import twopass
    from deidstream.tracking.embedding import FaceObservation
    from deidstream.tracking.identity import IdentityBook

    rng = np.random.default_rng(3)
    book, frames = IdentityBook(), []
    image = np.zeros((240, 320, 3), np.uint8)
    points = np.column_stack([rng.uniform(100, 180, (468, 2)), np.zeros(468)]).astype(np.float32)
    seen_frames = {1: range(0, 20), 2: range(30, 30 + LockConfig().min_seen_frames - 1)}
    for tid, span in seen_frames.items():
        centre = rng.normal(size=128).astype(np.float32) * 0.09
        for f in span:
            book.add(FaceObservation(f, tid, np.array([100, 100, 180, 180]), centre, 1.0, 0.0))
            book.people.remember(tid, 1.0, image, points, points)
            frames.append(FrameFaces(f, FaceDetections(np.array([[100, 100, 180, 180]]), np.ones(1),
                                                       track_id=np.array([tid]))))
    searched = []
    monkeypatch.setattr(twopass, "make_locker", lambda *a: SimpleNamespace(config=LockConfig()))
    monkeypatch.setattr(twopass, "_search", lambda locker, label, *a: searched.append(label) or Lock(
        label, None, None, 0, 0.0, 0.0))
    people = twopass.resolve_people(book, twopass.first_frames(frames), GeneratorConfig(), None, None)
    assert searched == [0]  # the first person only
    assert people[2].searches == 0 and not people[2].locked

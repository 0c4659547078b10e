"""The steps of the default mode's second pass over a file, each a thread of its own, in frame order.

Landmarks (FaceMesh where pass 1 has none for a rendered face), hands in front of the rendered faces, and
the render itself run one after the other on each frame but on three threads, so each frame's hands are
looked for while the frame before is rendered (on stage_multi_person_cuts, landmarks and hands together take
3.9 s of the pass's 4.6). MediaPipe and OpenCV let go of the GIL.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from deidstream.engine.deid import Deidentifier, FrameFaces
from deidstream.stream.threads import StageClock
from deidstream.tracking.hands import HandOccluders
from deidstream.tracking.landmarks import FaceLandmarker
from deidstream.tracking.smoothing import LandmarkSmoother
from deidstream.types import FaceDetections, Frame, Person

# MediaPipe's hands cost 12-24 ms per face and frame (benchmarks/bench_hands.py); with no hand in front of a
# face lately they are looked for on every 3rd frame only
HAND_LOOK_EVERY = 3


@dataclass(frozen=True, slots=True)
class Known:
    """A decoded frame of pass 2 with what is known of its faces."""

    frame: Frame
    faces: FrameFaces


def _rendered(people: dict[int, Person]) -> set[int]:
    """The tracks whose person has a surrogate (and is not kept)."""
    return {t for t, p in people.items() if p.surrogate is not None and not p.keep}


class LandmarkStage:
    """Pass 1's faces of each decoded frame with their landmarks: pass 1's, and FaceMesh's (per track,
    smoothed) for the faces of people who have a surrogate where pass 1 found none."""

    def __init__(self, frames: Iterable[FrameFaces], points: dict[int, tuple[np.ndarray | None, ...]],
                 people: dict[int, Person], clock: StageClock) -> None:
        self.frames = {f.index: f for f in frames}
        self.points = points
        self.rendered = _rendered(people)
        self.clock = clock
        self.landmarker = FaceLandmarker(smoother=LandmarkSmoother(), second_looks=True) if self.rendered else None

    def __call__(self, item: object) -> list[object]:
        if not isinstance(item, Frame):
            return [item]
        known = self.frames.pop(item.index, None)
        if known is None:  # decoded now but not in pass 1: never write it unprocessed
            raise RuntimeError(f"frame {item.index} was not seen by the analysis pass")
        points = list(self.points.pop(item.index, (None,) * len(known.faces)))
        if self.landmarker is not None and known.faces.track_id is not None:
            t0 = time.perf_counter()
            missing = [p is None and int(t) in self.rendered for p, t in zip(points, known.faces.track_id)]
            found = self.landmarker.landmarks(item.image, known.faces, t=item.time, skip=[not m for m in missing])
            points = [f if m else p for p, f, m in zip(points, found, missing)]
            self.clock.add("landmarks", time.perf_counter() - t0)
        return [Known(item, dataclasses.replace(known, faces=known.faces.with_landmarks(points)))]

    def close(self) -> None:
        if self.landmarker is not None:
            self.landmarker.close()


class HandStage:
    """Each frame's hands in front of the faces that will be rendered (their landmarks let the hand finder
    tell a turned face from a hand); the other faces get the fallback, which covers hands and all."""

    def __init__(self, people: dict[int, Person], clock: StageClock) -> None:
        self.rendered = _rendered(people)
        self.clock = clock
        self.hands = HandOccluders() if self.rendered else None
        self._hand_seen: dict[int, int] = {}  # track → last frame a hand was in front of its face
        self._hand_looked: dict[int, int] = {}  # track → last frame hands were looked for

    def __call__(self, item: object) -> list[object]:
        if not isinstance(item, Known):
            return [item]
        return [dataclasses.replace(item, faces=dataclasses.replace(item.faces, in_front=self._in_front(
            item.frame, item.faces.faces)))]

    def _in_front(self, frame: Frame, faces: FaceDetections) -> tuple[tuple[np.ndarray, tuple[int, int]] | None, ...]:
        if self.hands is None or faces.track_id is None:
            return ()
        ids = [int(t) for t in faces.track_id]
        shown = [i for i, t in enumerate(ids) if t in self.rendered and faces.landmark(i) is not None]
        looked = [i for i in shown if self._hands_due(ids[i], frame.index)]
        out: list[tuple[np.ndarray, tuple[int, int]] | None] = [None] * len(faces)
        if looked:
            t0 = time.perf_counter()
            in_view = [ids[i] for i in shown]  # hand tracking goes on between the frames a face is looked at
            for i, occluder in zip(looked, self.hands.occluders(frame.image, faces[np.array(looked)], in_view)):
                tid = int(faces.track_id[i])
                self._hand_looked[tid] = frame.index
                if occluder.hands_found:
                    self._hand_seen[tid] = frame.index
                    out[i] = (occluder.mask, occluder.offset)
            self.clock.add("hands", time.perf_counter() - t0)
        return tuple(out)

    def _hands_due(self, track: int, index: int) -> bool:
        """Hands are looked for on every frame while one was in front of the face lately, else on every
        ``HAND_LOOK_EVERY``-th: a hand that comes up is painted over for at most that many frames first."""
        if index - self._hand_seen.get(track, -HAND_LOOK_EVERY - 1) <= HAND_LOOK_EVERY:
            return True
        return index - self._hand_looked.get(track, -HAND_LOOK_EVERY) >= HAND_LOOK_EVERY

    def close(self) -> None:
        if self.hands is not None:
            self.hands.close()


class RenderStage:
    """The decisions of :class:`Deidentifier` on each decoded frame."""

    def __init__(self, deidentifier: Deidentifier, clock: StageClock,
                 on_frame: Callable[[Frame, FrameFaces, np.ndarray], None]) -> None:
        self.deid = deidentifier
        self.clock = clock
        self.on_frame = on_frame

    def __call__(self, item: object) -> list[object]:
        if not isinstance(item, Known):
            return [item]
        t0 = time.perf_counter()
        regions = self.deid.apply(item.frame.image, item.faces)
        self.clock.add("render", time.perf_counter() - t0)
        self.on_frame(item.frame, item.faces, regions)
        return [item.frame]

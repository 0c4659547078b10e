"""Per-frame processing and the threaded pipeline, with a stand-in detector."""

from __future__ import annotations

import gc
from fractions import Fraction

import numpy as np
import pytest
from media import make_clip

from deidstream.api import anonymize
from deidstream.config import AnonymizerConfig
from deidstream.engine.anonymizers import make_anonymizer
from deidstream.pipelines.onepass import FaceProcessor
from deidstream.stream.threads import run_pipeline
from deidstream.tracking.cuts import CutDetector
from deidstream.tracking.tracker import FaceTracker
from deidstream.types import FaceDetections, Frame

FACE = [40.0, 30.0, 80.0, 70.0]


class ScriptedDetector:
    """Finds FACE on the listed frame numbers only."""

    def __init__(self, frames_with_face: set[int], fail_at: int | None = None) -> None:
        self.frames_with_face = frames_with_face
        self.fail_at = fail_at
        self.calls = 0

    def detect(self, image: np.ndarray) -> FaceDetections:
        i = self.calls
        self.calls += 1
        if i == self.fail_at:
            raise RuntimeError("detector exploded")
        if i in self.frames_with_face:
            return FaceDetections(np.array([FACE], np.float32), np.ones(1, np.float32))
        return FaceDetections.empty()

    def close(self) -> None:
        pass


def frames(n: int) -> list[Frame]:
    rng = np.random.default_rng(1)
    return [Frame(i, rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), pts=i, time_base=Fraction(1, 25))
            for i in range(n)]


def face_changed(before: Frame, after: Frame) -> bool:
    x0, y0, x1, y1 = map(int, FACE)
    return bool((before.image[y0:y1, x0:x1] != after.image[y0:y1, x0:x1]).mean() > 0.9)


def test_a_new_face_is_back_filled_into_the_held_frame():
    originals = frames(5)
    work = [Frame(f.index, f.image.copy(), f.pts, f.time_base) for f in originals]
    proc = FaceProcessor(ScriptedDetector({2}), FaceTracker(), make_anonymizer(AnonymizerConfig()), lookback=1)
    out = []
    for f in work:
        out += proc.process(f)
    out += proc.flush()
    assert [r.frame.index for r in out] == [0, 1, 2, 3, 4]
    assert [face_changed(originals[i], work[i]) for i in range(5)] == [False, True, True, True, True]
    assert len(out[1].regions) == 1  # the back-filled region is reported


def test_a_face_found_late_is_hidden_back_to_the_start_of_its_shot_and_no_further():
    """Shot A is frames 0-3, shot B from 4; the face is first found at 8 (lookback 6)."""
    rng = np.random.default_rng(2)
    shot_a = [rng.integers(0, 60, (120, 160, 3), dtype=np.uint8) for _ in range(4)]
    shot_b = [rng.integers(180, 256, (120, 160, 3), dtype=np.uint8) for _ in range(6)]
    originals = [Frame(i, im, pts=i, time_base=Fraction(1, 25)) for i, im in enumerate(shot_a + shot_b)]
    work = [Frame(f.index, f.image.copy(), f.pts, f.time_base) for f in originals]
    proc = FaceProcessor(ScriptedDetector({8, 9}), FaceTracker(), make_anonymizer(AnonymizerConfig()),
                         lookback=6, cuts=CutDetector())
    out = []
    for f in work:
        out += proc.process(f)
    out += proc.flush()
    assert [r.frame.index for r in out] == list(range(10))
    hidden = [face_changed(originals[i], work[i]) for i in range(10)]
    assert hidden == [False] * 4 + [True] * 6


def test_without_lookback_frames_come_out_at_once_and_nothing_is_back_filled():
    originals = frames(3)
    work = [Frame(f.index, f.image.copy(), f.pts, f.time_base) for f in originals]
    proc = FaceProcessor(ScriptedDetector({1}), FaceTracker(), make_anonymizer(AnonymizerConfig()))
    assert [len(proc.process(f)) for f in work] == [1, 1, 1]
    assert not face_changed(originals[0], work[0]) and face_changed(originals[1], work[1])


def test_pipeline_error_in_a_stage_is_raised_and_nothing_hangs():
    def boom(item: int) -> list[int]:
        if item == 50:
            raise ValueError("stage failed")
        return [item]

    seen: list[int] = []
    with pytest.raises(ValueError, match="stage failed"):
        run_pipeline(range(10_000), [boom], seen.append, queue_size=2)
    assert seen == list(range(len(seen))) and len(seen) < 60


def test_pipeline_keeps_order_and_flushes_held_items():
    class Holder:
        def __init__(self) -> None:
            self.held: list[int] = []

        def __call__(self, item: int) -> list[int]:
            self.held.append(item)
            return [self.held.pop(0)] if len(self.held) > 3 else []

        def flush(self) -> list[int]:
            out, self.held = self.held, []
            return out

    seen: list[int] = []
    run_pipeline(range(100), [lambda x: [x * 2], Holder()], seen.append, queue_size=4)
    assert seen == [x * 2 for x in range(100)]


def test_a_file_run_freezes_the_heap_while_it_runs_only(tmp_path):
    """Full garbage collections skip the objects alive at the start (modules, models) during the run,
    and the caller's collector is as it was afterwards."""
    class FreezeSeen(ScriptedDetector):
        def detect(self, image):
            self.frozen = getattr(self, "frozen", set()) | {gc.get_freeze_count() > 0}
            return super().detect(image)

    spy = FreezeSeen({1, 2})
    anonymize(make_clip(tmp_path / "in.mp4", frames=10), tmp_path / "out.mp4", mode="blur", detector=spy)
    assert spy.frozen == {True} and gc.get_freeze_count() == 0


def test_a_failing_detector_leaves_no_output(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=20)
    with pytest.raises(RuntimeError, match="detector exploded"):
        anonymize(src, tmp_path / "out.mp4", detector=ScriptedDetector(set(), fail_at=8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]

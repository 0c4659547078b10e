"""What a run did: per-frame face counts, per-track spans, timings. Written as JSON on request."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from deidstream.types import FaceDetections

# what a covered face got, as the report's ``face_boxes_per_frame`` and ``deidstream evaluate --report`` say it
RENDERED, FALLBACK, KEPT, HIDDEN = "rendered", "fallback", "kept", "hidden"  # HIDDEN: the modes that hide all
OUTCOMES = (RENDERED, FALLBACK, KEPT, HIDDEN)
WIDE_PX = 64  # faces at least this wide are counted apart: the ones a viewer can recognise


def _int_boxes(xyxy: np.ndarray) -> list[list[int]]:
    """Boxes as outward-rounded integer pixels (x0, y0, x1, y1) for JSON."""
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    return np.concatenate([np.floor(xyxy[:, :2]), np.ceil(xyxy[:, 2:])], axis=1).astype(int).tolist()


@dataclass(slots=True)
class TrackSpan:
    id: int
    first_frame: int
    last_frame: int
    frames_covered: int = 0
    frames_detected: int = 0
    frames_coasted: int = 0


@dataclass(slots=True)
class RunReport:
    """Counts a user can check: frames in and out, faces covered, tracks and their spans, speed."""

    input: str
    output: str
    mode: str
    frames: int = 0
    frames_written: int = 0
    decode_errors: int = 0
    seconds: float = 0.0
    faces_per_frame: list[int] = field(default_factory=list)
    detections_per_frame: list[int] = field(default_factory=list)
    tracks: dict[int, TrackSpan] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    detection_boxes: list[list[list[int]]] = field(default_factory=list)
    region_boxes: list[list[list[int]]] = field(default_factory=list)
    # the covered faces' boxes per frame, each with what it got (``OUTCOMES``): what lets ``deidstream evaluate
    # --report`` tell surrogates from blur
    face_boxes: list[list[list[int | str]]] = field(default_factory=list)
    # default mode only: who each person is to the engine (no embeddings, no key) and what faces got
    people: list[dict] = field(default_factory=list)
    face_outcomes: dict[str, object] = field(default_factory=dict)
    cuts: list[int] = field(default_factory=list)  # default mode: frames where a new shot starts (tracks end)

    def add_frame(self, index: int, detections: FaceDetections, covered: FaceDetections, regions: np.ndarray,
                  outcomes: Sequence[str] | None = None) -> None:
        """Record one frame: raw detections, covered track boxes with what each got (``outcomes``, in
        ``covered``'s order; None: all hidden), and the pixel regions hidden."""
        self.frames += 1
        self.detections_per_frame.append(len(detections))
        self.faces_per_frame.append(len(covered))
        self.detection_boxes.append(_int_boxes(detections.xyxy))
        self.region_boxes.append(_int_boxes(regions))
        got = list(outcomes) if outcomes is not None else [HIDDEN] * len(covered)
        if len(got) != len(covered):
            raise ValueError(f"expected one outcome per covered face ({len(covered)}), got {len(got)}")
        self.face_boxes.append([[*box, what] for box, what in zip(_int_boxes(covered.xyxy), got)])
        ids = covered.track_id if covered.track_id is not None else []
        coasting = covered.coasting if covered.coasting is not None else [False] * len(covered)
        for tid, coast in zip(ids, coasting):
            span = self.tracks.setdefault(int(tid), TrackSpan(int(tid), index, index))
            span.last_frame = index
            span.frames_covered += 1
            if coast:
                span.frames_coasted += 1
            else:
                span.frames_detected += 1

    def extend(self, part: RunReport) -> None:
        """Add a later segment's report of the same file (its frames after these; its track ids its own)."""
        self.frames += part.frames
        self.frames_written += part.frames_written
        self.decode_errors += part.decode_errors
        for name in ("faces_per_frame", "detections_per_frame", "detection_boxes", "region_boxes", "face_boxes"):
            getattr(self, name).extend(getattr(part, name))
        self.tracks.update(part.tracks)
        for stage, seconds in part.stage_seconds.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds
        for key, value in part.face_outcomes.items():
            if isinstance(value, dict):
                into = self.face_outcomes.setdefault(key, {})
                for reason, n in value.items():
                    into[reason] = into.get(reason, 0) + n  # type: ignore[union-attr]
            else:
                self.face_outcomes[key] = self.face_outcomes.get(key, 0) + value  # type: ignore[operator]

    @property
    def faces(self) -> int:
        """Face-frames covered (one face in one frame counts once)."""
        return sum(self.faces_per_frame)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def stage_ms_per_frame(self) -> dict[str, float]:
        n = max(self.frames, 1)
        return {k: 1000.0 * v / n for k, v in self.stage_seconds.items()}

    def summary(self) -> str:
        text = (f"{self.input} -> {self.output}: {self.frames} frames, {self.faces} faces covered, "
                f"{len(self.tracks)} tracks, {self.fps:.1f} fps ({self.mode})")
        if self.face_outcomes:
            o = self.face_outcomes
            text += (f"; {len(self.people)} people, {o.get('rendered', 0)} faces rendered, "
                     f"{o.get('fallback', 0)} fallback, {o.get('kept', 0)} kept")
        return text

    def to_dict(self) -> dict:
        return {
            "input": self.input,
            "output": self.output,
            "mode": self.mode,
            "frames": self.frames,
            "frames_written": self.frames_written,
            "decode_errors": self.decode_errors,
            "faces_covered": self.faces,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "stage_ms_per_frame": {k: round(v, 3) for k, v in self.stage_ms_per_frame().items()},
            "tracks": [asdict(t) for t in sorted(self.tracks.values(), key=lambda t: t.id)],
            "faces_per_frame": self.faces_per_frame,
            "detections_per_frame": self.detections_per_frame,
            "detection_boxes_per_frame": self.detection_boxes,
            "hidden_regions_per_frame": self.region_boxes,
            "face_boxes_per_frame": self.face_boxes,
            "people": self.people,
            "face_outcomes": self.face_outcomes,
            "cuts": self.cuts,
        }


def write_json_atomic(path: str | Path, data: object) -> None:
    """Write JSON beside ``path`` and rename it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
            fh.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass(frozen=True, slots=True)
class Progress:
    """Where one file's run stands: ``done`` of ``total`` steps in ``phase`` (a step is one frame of one
    pass, so a two-pass run has twice the frames; ``total`` None: the length is not known)."""

    name: str
    phase: str
    done: int
    total: int | None


ProgressCallback = Callable[[Progress], None]


class ProgressReporter:
    """Counts a run's steps and hands each change to the caller's callback (or to nobody)."""

    def __init__(self, callback: ProgressCallback | None, name: str, frames: int | None,
                 passes: int = 1) -> None:
        self.callback = callback
        self.name = name
        self.total = frames * passes if frames else None
        self.done = 0
        self.phase = ""

    def start(self, phase: str) -> None:
        self.phase = phase
        self._emit()

    def step(self, n: int = 1) -> None:
        self.done += n
        self._emit()

    def _emit(self) -> None:
        if self.callback is not None:
            self.callback(Progress(self.name, self.phase, self.done, self.total))

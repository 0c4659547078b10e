"""Live processing: every face of every frame within a time budget, the fallback when the budget is gone.

``LiveProcessor`` detects and tracks faces as the file pipeline does, then gives each tracked face the
expensive path (a ``FacePath``: the generator, or the mode's anonymiser) while the frame's deadline
allows it, and the fallback (a strong blur) otherwise, or when the face_path fails or declines. No frame
leaves ``cover`` with a tracked face untouched. ``LiveStats`` counts what happened.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from deidstream.config import AnonymizerConfig, LiveConfig
from deidstream.engine.anonymizers import FaceAnonymizer, make_anonymizer
from deidstream.engine.deid import behind
from deidstream.engine.generator.compositor import RenderedFace, covered_pixels, restore_covered
from deidstream.errors import ConfigError
from deidstream.pipelines.core import FrameCore, Tracked
from deidstream.stream.live_source import Captured
from deidstream.tracking.cuts import CutDetector
from deidstream.tracking.detector import FaceDetector
from deidstream.tracking.tracker import FaceTracker
from deidstream.types import FaceDetections

log = logging.getLogger(__name__)

LATENCY_BIN_MS = 1.0
LATENCY_BINS = 10_000  # 10 s; slower frames land in the last bin


class FacePath(Protocol):
    """The expensive per-face path, in two steps on two threads. ``prepare`` runs once per frame
    right after tracking, on the tracking thread (per-frame analysis such as landmarks, so that it
    overlaps the previous frame's rendering), and returns what ``render_face`` needs of it.
    ``render_face`` replaces face ``i`` of ``faces`` in ``image`` (RGB, in place) and returns True,
    or returns False (or raises) to leave that face to the fallback. It should give up by
    ``deadline`` (``time.monotonic()`` seconds); a face it finishes later still counts as rendered,
    and the scheduler learns from its timings to stop offering faces it cannot finish — unless
    ``budgets_itself``: then every ready face is offered and the path weighs the deadline itself
    (it may have a cheaper way than its usual one)."""

    name: str
    budgets_itself: bool

    def prepare(self, image: np.ndarray, faces: FaceDetections) -> object: ...

    def ready(self, faces: FaceDetections, i: int) -> bool:
        """Whether face ``i`` can be rendered at all yet (False: its surrogate is not locked); a face
        that is not ready gets the fallback without counting against the time budget."""
        ...

    def render_face(self, image: np.ndarray, faces: FaceDetections, i: int, deadline: float,
                    prepared: object) -> bool: ...

    def painted(self) -> Sequence[RenderedFace]:
        """The faces ``render_face`` blended into the frame it worked on last (a surrogate's pixels
        stay when another face's fallback region overlaps them); empty for paths that hide faces
        with an anonymiser."""
        ...

    def close(self) -> None:
        """Free what the path holds (models, worker threads and processes)."""
        ...


class AnonymizerPath:
    """A blur / pixelate / solid anonymiser as the per-face path (the modes that exist today)."""

    budgets_itself = False

    def __init__(self, anonymizer: FaceAnonymizer, name: str) -> None:
        self.anonymizer = anonymizer
        self.name = name

    def prepare(self, image: np.ndarray, faces: FaceDetections) -> None:
        return None

    def ready(self, faces: FaceDetections, i: int) -> bool:
        return True

    def render_face(self, image: np.ndarray, faces: FaceDetections, i: int, deadline: float,
                    prepared: object) -> bool:
        self.anonymizer.apply(image, faces[i])
        return True

    def painted(self) -> Sequence[RenderedFace]:
        return ()

    def close(self) -> None:
        return None


LIVE_MODES = ("blur", "pixelate", "solid")  # the surrogate mode resolves identities in two passes over a file


def make_face_path(config: AnonymizerConfig) -> FacePath:
    """The per-face path for ``config.mode``; a mode that cannot run live raises instead of running another."""
    if config.mode not in LIVE_MODES:
        raise ConfigError(f"mode {config.mode!r} is not available for live input yet; "
                          f"live modes: {', '.join(LIVE_MODES)}")
    return AnonymizerPath(make_anonymizer(config), config.mode)


class LatencyHistogram:
    """Millisecond histogram: percentiles over a run of any length in fixed memory.

    >>> h = LatencyHistogram()
    >>> for ms in (10, 20, 30, 40, 200): h.add(ms / 1000)
    >>> h.count, h.percentile(50), h.percentile(99)
    (5, 30.5, 200.5)
    """

    def __init__(self) -> None:
        self.bins = np.zeros(LATENCY_BINS, np.int64)
        self.count = 0
        self.total_s = 0.0
        self.max_s = 0.0

    def add(self, seconds: float) -> None:
        self.bins[min(LATENCY_BINS - 1, max(0, int(seconds * 1000 / LATENCY_BIN_MS)))] += 1
        self.count += 1
        self.total_s += seconds
        self.max_s = max(self.max_s, seconds)

    def percentile(self, q: float) -> float:
        """Milliseconds (bin centre) below which ``q`` percent of the samples fall; 0 when empty."""
        if not self.count:
            return 0.0
        rank = int(np.ceil(q / 100 * self.count))
        index = int(np.searchsorted(np.cumsum(self.bins), max(1, rank)))
        return (index + 0.5) * LATENCY_BIN_MS

    def summary(self) -> dict[str, float]:
        mean = 1000 * self.total_s / self.count if self.count else 0.0
        return {"count": self.count, "p50_ms": self.percentile(50), "p99_ms": self.percentile(99),
                "mean_ms": round(mean, 2), "max_ms": round(1000 * self.max_s, 2)}


@dataclass
class LiveStats:
    """Counters of a live run. ``dropped`` is per reason; ``sent`` and ``latency`` (capture to send) per sink."""

    frames_in: int = 0
    frames_processed: int = 0
    dropped: Counter = field(default_factory=Counter)
    sent: Counter = field(default_factory=Counter)
    faces_rendered: int = 0
    faces_fallback: int = 0
    faces_waiting: int = 0  # fallback because the face path was not ready for them (no surrogate yet)
    faces_late: int = 0
    faces_over_budget: int = 0  # not offered to the face path: its typical time no longer fitted
    faces_backfilled: int = 0  # faces found late, hidden in frames held before sending (LiveConfig.hold_frames)
    render_errors: int = 0
    reconnects: int = 0
    processing: LatencyHistogram = field(default_factory=LatencyHistogram)
    latency: dict[str, LatencyHistogram] = field(default_factory=dict)
    seconds: float = 0.0
    first_capture: float | None = None
    first_render: float | None = None  # when the face path first rendered a face (e.g. the first lock)
    last_capture: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def arrived(self, captured: float) -> int:
        """Count a frame from the source; returns the number read so far."""
        with self.lock:
            self.frames_in += 1
            if self.first_capture is None:
                self.first_capture = captured
            self.last_capture = captured
            return self.frames_in

    @property
    def input_fps(self) -> float:
        """The rate at which frames arrived, first to last."""
        if self.first_capture is None or self.frames_in < 2 or self.last_capture <= self.first_capture:
            return 0.0
        return (self.frames_in - 1) / (self.last_capture - self.first_capture)

    def drop(self, reason: str) -> None:
        with self.lock:
            self.dropped[reason] += 1

    def record_sent(self, sink: str, latency_s: float) -> None:
        with self.lock:
            self.sent[sink] += 1
            self.latency.setdefault(sink, LatencyHistogram()).add(latency_s)

    @property
    def frames_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def rendered_rate_when_ready(self) -> float:
        """Of the faces the face path was ready for (e.g. whose surrogate was locked), the share it rendered."""
        ready = self.faces_rendered + self.faces_fallback - self.faces_waiting
        return self.faces_rendered / ready if ready else 0.0

    @property
    def fallback_rate(self) -> float:
        faces = self.faces_rendered + self.faces_fallback
        return self.faces_fallback / faces if faces else 0.0

    def to_dict(self) -> dict[str, object]:
        with self.lock:
            return {
                "frames_in": self.frames_in, "frames_processed": self.frames_processed,
                "frames_dropped": self.frames_dropped, "dropped": dict(self.dropped), "sent": dict(self.sent),
                "faces_rendered": self.faces_rendered, "faces_fallback": self.faces_fallback,
                "faces_waiting": self.faces_waiting,
                "rendered_rate_when_ready": round(self.rendered_rate_when_ready, 4),
                "faces_late": self.faces_late, "faces_over_budget": self.faces_over_budget,
                "faces_backfilled": self.faces_backfilled,
                "render_errors": self.render_errors,
                "fallback_rate": round(self.fallback_rate, 4), "reconnects": self.reconnects,
                "seconds": round(self.seconds, 2),
                "seconds_to_first_render": None if self.first_render is None or self.first_capture is None
                else round(self.first_render - self.first_capture, 2),
                "input_fps": round(self.input_fps, 2),
                "processing_ms": self.processing.summary(),
                "latency_ms": {name: h.summary() for name, h in self.latency.items()},
            }

    def summary(self) -> str:
        parts = [f"{self.frames_in} frames in", f"{self.frames_processed} processed",
                 f"{self.frames_dropped} dropped" + (f" ({dict(self.dropped)})" if self.dropped else ""),
                 f"faces {self.faces_rendered} rendered / {self.faces_fallback} fallback"
                 + (f" ({self.faces_waiting} waiting for their surrogate)" if self.faces_waiting else "")]
        for name, hist in self.latency.items():
            parts.append(f"{name}: {self.sent[name]} sent, added latency p50 {hist.percentile(50):.0f} ms "
                         f"p99 {hist.percentile(99):.0f} ms")
        if self.faces_backfilled:
            parts.append(f"{self.faces_backfilled} faces back-filled into held frames")
        if self.reconnects:
            parts.append(f"{self.reconnects} reconnects")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class LiveTracked:
    """A captured frame between tracking and covering: the core's tracking of it (faces, faces first
    detected in it, whether it starts a shot) and the face path's analysis of its faces (``usable``
    False: the analysis failed, every face gets the fallback)."""

    item: Captured
    tracked: Tracked
    prepared: object
    usable: bool = True

    @property
    def faces(self) -> FaceDetections:
        return self.tracked.faces


class LiveProcessor:
    """Detector → tracker → per-face expensive path or fallback, for one live stream, within a time budget.

    Three stages, each on its own thread in :func:`~deidstream.pipelines.live_run.run_live`: ``detect``,
    ``track`` (with the face path's per-frame ``prepare``, e.g. landmarks) and ``cover``, so one frame's
    analysis overlaps the previous frame's rendering. A frame's deadline is ``budget_ms`` after its
    capture, and at most one frame interval after its covering starts (so covering keeps up with the
    source). A face is offered to the face path only while the face path's typical time per face (a
    running mean) still fits before the deadline.
    """

    def __init__(
        self,
        detector: FaceDetector,
        tracker: FaceTracker,
        face_path: FacePath,
        fallback: FaceAnonymizer,
        config: LiveConfig,
        stats: LiveStats,
        *,
        frame_interval_s: float,
    ) -> None:
        if frame_interval_s <= 0:
            raise ConfigError(f"frame_interval_s must be > 0, got {frame_interval_s}")
        # shots and new faces matter only to back-fill, when frames are held (a cut check: 2 ms a frame at 1080p)
        held = config.hold_frames > 0
        self.core = FrameCore(detector, tracker, backfill=held, cuts=CutDetector() if held else None)
        self.face_path = face_path
        self.fallback = fallback
        self.config = config
        self.stats = stats
        self.frame_interval_s = frame_interval_s
        self.face_cost_s = 0.0  # running mean of the face path's time per face
        self._errors_logged: set[str] = set()

    def detect(self, item: Captured) -> tuple[Captured, FaceDetections]:
        return item, self.core.detect(item.frame)[1]

    def track(self, detected: tuple[Captured, FaceDetections]) -> LiveTracked:
        """Second stage, in frame order: the tracked faces and the face path's per-frame analysis."""
        item, detections = detected
        tracked = self.core.track((item.frame, detections))
        prepared = None
        if len(tracked.faces):
            try:
                prepared = self.face_path.prepare(item.frame.image, tracked.faces)
            except Exception as exc:  # noqa: BLE001 - without its analysis every face of the frame falls back
                self._failed(exc)
                return LiveTracked(item, tracked, None, usable=False)
        return LiveTracked(item, tracked, prepared)

    def cover(self, tracked: LiveTracked) -> Captured:
        """Last stage: hide every tracked face of the frame (in place); returns the frame, ready to send."""
        item, faces = tracked.item, tracked.faces
        start = time.monotonic()
        deadline = min(item.captured + self.config.budget_ms / 1000, start + self.frame_interval_s)
        order = [i for i in self._by_priority(faces) if self.face_path.ready(faces, i)] if tracked.usable else []
        waiting = len(faces) - len(order) if tracked.usable else 0
        rendered = [i for i in order if self._render(item.frame.image, faces, i, deadline, tracked.prepared)]
        painted = list(self.face_path.painted()) if rendered else []
        fallback = sorted(set(range(len(faces))) - set(rendered))
        if fallback:
            rendered, painted, fallback = self._not_behind(faces, rendered, painted, fallback)
            hidden = faces[np.array(fallback)]
            surrogates = covered_pixels(item.frame.image, painted, self.fallback.regions(hidden)) if painted else []
            self.fallback.apply(item.frame.image, hidden)
            restore_covered(item.frame.image, surrogates)
        with self.stats.lock:
            self.stats.frames_processed += 1
            self.stats.faces_waiting += waiting
            if rendered and self.stats.first_render is None:
                self.stats.first_render = time.monotonic()
            self.stats.faces_rendered += len(rendered)
            self.stats.faces_fallback += len(fallback)
        self.stats.processing.add(time.monotonic() - item.captured)
        return item

    def _not_behind(self, faces: FaceDetections, rendered: list[int], painted: list[RenderedFace],
                    fallback: list[int]) -> tuple[list[int], list[RenderedFace], list[int]]:
        """The rendered faces mostly behind a nearer face given the fallback (:func:`behind`) join the fallback:
        their surrogates are not put back over its blur. ``painted`` holds the rendered faces' blends, in order."""
        seen = [i for i in fallback if faces.coasting is None or not faces.coasting[i]]
        if not rendered or not seen or len(painted) != len(rendered):
            return rendered, painted, fallback
        hide = behind(faces.xyxy[np.array(rendered)], faces.xyxy[np.array(seen)], self.fallback)
        if not hide.any():
            return rendered, painted, fallback
        kept = [(i, face) for i, face, h in zip(rendered, painted, hide) if not h]
        hidden = [i for i, h in zip(rendered, hide) if h]
        return [i for i, _ in kept], [face for _, face in kept], sorted(fallback + hidden)

    def process(self, item: Captured) -> Captured:
        """All three stages in one call, for callers without threads."""
        return self.cover(self.track(self.detect(item)))

    @staticmethod
    def _by_priority(faces: FaceDetections) -> list[int]:
        """Largest faces first: they are the most identifiable and the most visible when they fall back."""
        return [int(i) for i in np.argsort(-(faces.width * faces.height), kind="stable")]

    def _render(self, image: np.ndarray, faces: FaceDetections, i: int, deadline: float, prepared: object) -> bool:
        t0 = time.monotonic()
        if not self.face_path.budgets_itself and t0 + self.face_cost_s > deadline:
            self.face_cost_s *= 0.9  # forget a slow spell slowly, so the face_path is offered faces again
            with self.stats.lock:
                self.stats.faces_over_budget += 1
            return False
        try:
            ok = bool(self.face_path.render_face(image, faces, i, deadline, prepared))
        except Exception as exc:  # noqa: BLE001 - a failing face_path must not stop the stream; the face falls back
            ok = False
            self._failed(exc)
        t1 = time.monotonic()
        self.face_cost_s = t1 - t0 if self.face_cost_s == 0 else 0.8 * self.face_cost_s + 0.2 * (t1 - t0)
        if ok and t1 > deadline:
            with self.stats.lock:
                self.stats.faces_late += 1
        return ok

    def _failed(self, exc: Exception) -> None:
        """Count a face path failure; log each kind once."""
        with self.stats.lock:
            self.stats.render_errors += 1
        key = type(exc).__name__
        if key not in self._errors_logged:
            self._errors_logged.add(key)
            log.warning("%s face_path failed (%s: %s); those faces get the fallback", self.face_path.name, key, exc)

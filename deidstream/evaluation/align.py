"""Pair the frames of two videos (ours or another tool's) and say where they differ.

Each original frame is paired with the output frame shown nearest its time (within half a
frame; times count from each file's first frame); an output of another size is resized to the
original's for comparison. Mismatches are reported, never fatal: evaluate what aligns, say
what does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from deidstream.stream.source import FileSource
from deidstream.types import Frame


@dataclass(slots=True)
class StreamFacts:
    frames: int = 0
    duration_s: float = 0.0
    width: int = 0
    height: int = 0
    audio: list[str] = field(default_factory=list)
    audio_duration_s: float | None = None


def _audio_duration(path: Path) -> float | None:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        spans = [(p.pts, p.pts + (p.duration or 0), p.time_base) for p in c.demux(c.streams.audio[0])
                 if p.pts is not None]
    if not spans:
        return 0.0
    return float(max(Fraction(e) * tb for _, e, tb in spans) - min(Fraction(s) * tb for s, _, tb in spans))


@dataclass(slots=True)
class Comparison:
    """Facts of both files and the list of mismatches between them."""

    original: StreamFacts
    output: StreamFacts
    unpaired_original_frames: int = 0
    mismatches: list[str] = field(default_factory=list)

    def finish(self, original: Path, output: Path) -> None:
        o, a = self.original, self.output
        o.audio_duration_s, a.audio_duration_s = _audio_duration(original), _audio_duration(output)
        if o.frames != a.frames:
            self.mismatches.append(f"frame count {o.frames} -> {a.frames}")
        if abs(o.duration_s - a.duration_s) > 0.01:
            self.mismatches.append(f"duration {o.duration_s:.3f} s -> {a.duration_s:.3f} s")
        if (o.width, o.height) != (a.width, a.height):
            self.mismatches.append(f"resolution {o.width}x{o.height} -> {a.width}x{a.height}")
        if o.audio != a.audio:
            self.mismatches.append(f"audio streams {o.audio or 'none'} -> {a.audio or 'none'}")
        elif o.audio_duration_s is not None and a.audio_duration_s is not None \
                and abs(o.audio_duration_s - a.audio_duration_s) > 0.05:
            self.mismatches.append(f"audio duration {o.audio_duration_s:.3f} s -> {a.audio_duration_s:.3f} s")
        if self.unpaired_original_frames:
            self.mismatches.append(
                f"{self.unpaired_original_frames} original frames have no output frame at their time")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class FramePair:
    index: int
    time: float
    original: np.ndarray
    output: np.ndarray


def _frames(path: Path, facts: StreamFacts) -> Iterator[tuple[float, float, np.ndarray]]:
    """(time, duration, rgb) of every frame, with the source's timing repairs."""
    with FileSource(path) as src:
        facts.audio = list(src.info.audio_codecs)
        start = None
        for item in src.items():
            if not isinstance(item, Frame):
                continue
            t = float(item.pts * item.time_base)
            start = t if start is None else start
            facts.frames += 1
            facts.height, facts.width = item.image.shape[:2]
            end = t + float(item.duration * item.time_base)
            facts.duration_s = max(facts.duration_s, end - start)
            yield t - start, float(item.duration * item.time_base), item.image


def aligned_pairs(original: Path, output: Path, comparison: Comparison) -> Iterator[FramePair]:
    """Every original frame with the output frame shown at the same time (nearest within half a frame)."""
    outs = _frames(output, comparison.output)
    pending: list[tuple[float, float, np.ndarray]] = []
    exhausted = False
    for index, (t, dur, img) in enumerate(_frames(original, comparison.original)):
        tol = max(dur / 2, 1e-3)
        while not exhausted and (not pending or pending[-1][0] < t + tol):
            nxt = next(outs, None)
            if nxt is None:
                exhausted = True
            else:
                pending.append(nxt)
        while len(pending) > 1 and abs(pending[1][0] - t) <= abs(pending[0][0] - t):
            pending.pop(0)
        if not pending or abs(pending[0][0] - t) > tol:
            comparison.unpaired_original_frames += 1
            continue
        out = pending[0][2]
        if out.shape != img.shape:
            out = cv2.resize(out, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_AREA)
        yield FramePair(index, t, img, out)
    for _ in outs:  # count the rest of the output
        pass

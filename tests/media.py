"""Helpers that make small real video files with PyAV and read them back for assertions."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def pattern(i: int, w: int, h: int) -> np.ndarray:
    """A moving gradient with texture: different in every frame, no faces."""
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(w - 1, 1) + 3 * i) % 256
    g = (y * 255 // max(h - 1, 1) + 5 * i) % 256
    b = ((x // 8 + y // 8) % 2) * 120 + 60
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def make_clip(
    path: Path,
    *,
    frames: int = 24,
    size: tuple[int, int] = (160, 120),
    rate: int = 24,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio: str | None = "aac",
    rotation: int = 0,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    images: list[np.ndarray] | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode a clip; ``pts`` (in ``time_base``) makes it variable frame rate."""
    w, h = size
    tb = time_base or Fraction(1, rate)
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=rate, options=options or {})
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        vs.codec_context.time_base = tb
        if rotation:
            vs.set_display_rotation(rotation)
        aus = None
        if audio:
            aus = out.add_stream(audio, rate=48000 if audio != "pcm_s16le" else 16000)
            aus.layout = "mono" if audio == "pcm_s16le" else "stereo"
        for i in range(frames):
            img = images[i % len(images)] if images is not None else pattern(i, w, h)
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = pts[i] if pts is not None else i
            vf.time_base = tb
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
        if aus is not None:
            _write_tone(out, aus, seconds=frames / rate)
    return path


def _write_tone(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float) -> None:
    rate = stream.codec_context.sample_rate
    channels = stream.codec_context.layout.nb_channels
    n = int(rate * seconds)
    t = np.arange(n) / rate
    tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    fmt = stream.codec_context.format.name
    chunk = 1024
    for start in range(0, n, chunk):
        part = tone[start:start + chunk]
        if fmt.startswith("s16"):
            data = (np.tile(part, (channels, 1)) * 32767).astype(np.int16)
            data = data.T.reshape(1, -1) if not fmt.endswith("p") else data
        else:
            data = np.tile(part, (channels, 1))
            data = data.T.reshape(1, -1) if not fmt.endswith("p") else data
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=stream.layout.name)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


@dataclass
class ClipFacts:
    frames: int
    times: list[Fraction]
    width: int
    height: int
    video_duration: float
    audio_duration: float | None
    audio_codec: str | None
    rotation: int
    codec: str


def facts(path: Path) -> ClipFacts:
    """Frame count, exact presentation times, size, durations and rotation, from decoding the file."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        times, last_end, rotation = [], Fraction(0), 0
        for f in c.decode(vs):
            t = Fraction(f.pts) * f.time_base
            times.append(t)
            last_end = max(last_end, t + Fraction(f.duration or 0) * f.time_base)
            rotation = int(round(f.rotation or 0)) % 360
        audio_duration, audio_codec = None, None
        if c.streams.audio:
            audio_codec = c.streams.audio[0].codec_context.name
            audio_duration = _audio_span(path)
        return ClipFacts(len(times), times, vs.codec_context.width, vs.codec_context.height,
                         float(last_end - (times[0] if times else 0)), audio_duration, audio_codec, rotation,
                         vs.codec_context.name)


def assert_same_video(original: ClipFacts, output: ClipFacts) -> None:
    """Same frame count, exact presentation times, size and duration (containers round the last
    sample to their time base, hence 2 ms)."""
    assert output.frames == original.frames
    assert output.times == original.times
    assert (output.width, output.height) == (original.width, original.height)
    assert abs(output.video_duration - original.video_duration) <= 2e-3
    assert output.codec == "h264"


def _audio_span(path: Path) -> float:
    """Seconds from the first audio packet's start to the last one's end."""
    with av.open(str(path)) as c:
        spans = [(Fraction(p.pts) * p.time_base, Fraction(p.pts + p.duration) * p.time_base)
                 for p in c.demux(c.streams.audio[0]) if p.pts is not None]
    return float(max(e for _, e in spans) - min(s for s, _ in spans)) if spans else 0.0


def read_rgb(path: Path, limit: int | None = None) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        out = []
        for f in c.decode(video=0):
            out.append(f.to_ndarray(format="rgb24"))
            if limit is not None and len(out) >= limit:
                break
        return out

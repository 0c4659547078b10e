"""File sources: PyAV demux and decode, with timing kept on every frame.

Corrupt or truncated data never stops a run early on its own: what decodes is processed,
what does not is logged with its frame index. A file where nothing decodes is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import av.error

from deidstream.errors import InputNotFoundError, InvalidInputError
from deidstream.types import Frame

if TYPE_CHECKING:
    from deidstream.stream.segments import Segment

log = logging.getLogger(__name__)

OPEN_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What a sink and a progress bar need to know about the input before the first frame."""

    path: Path
    container: str
    codec: str
    width: int
    height: int
    time_base: Fraction
    average_rate: Fraction | None
    frame_count: int
    duration_s: float | None
    audio_codecs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AudioPacket:
    """An undecoded audio packet passed through to the sink untouched."""

    packet: av.Packet
    stream_index: int


def _duration_s(stream: av.video.stream.VideoStream, container: av.container.InputContainer) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _estimate_frames(stream: av.video.stream.VideoStream, container: av.container.InputContainer) -> int:
    if stream.frames:
        return int(stream.frames)
    rate = stream.average_rate or stream.guessed_rate
    duration = _duration_s(stream, container)
    return int(round(duration * float(rate))) if rate and duration else 0


class FileSource:
    """Decodes the first video stream of a file and yields ``Frame`` and ``AudioPacket`` items in order.

    Use as a context manager; ``info`` is available once it is open. With a ``segment``
    (:mod:`deidstream.stream.segments`) only its frames are decoded, numbered as in the whole file,
    and no audio is read (the join takes it from the input).
    """

    def __init__(self, path: str | Path, segment: Segment | None = None) -> None:
        self.path = Path(path)
        self.segment = segment
        self._container: av.container.InputContainer | None = None
        self.frames_decoded = 0
        self.decode_errors = 0

    def __enter__(self) -> FileSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        if not self.path.exists():
            raise InputNotFoundError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise InvalidInputError(f"{self.path}: is a directory, expected a video file")
        try:
            container = av.open(str(self.path), "r", timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S))
        except av.error.EOFError as exc:
            raise InvalidInputError(f"{self.path}: ends before any video data (empty or truncated file)") from exc
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{self.path}: not a readable video file ({exc})") from exc
        if not container.streams.video:
            container.close()
            raise InvalidInputError(f"{self.path}: has no video stream")
        self._container = container
        self.video_stream.thread_type = "AUTO"

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    @property
    def container(self) -> av.container.InputContainer:
        if self._container is None:
            raise RuntimeError("source is not open")
        return self._container

    @property
    def video_stream(self) -> av.video.stream.VideoStream:
        return self.container.streams.video[0]

    @property
    def audio_streams(self) -> list[av.audio.stream.AudioStream]:
        """The audio streams passed through (none for a segment: the join takes them from the input)."""
        return list(self.container.streams.audio) if self.segment is None else []

    @property
    def frames_expected(self) -> int:
        """Frames this source will give, as far as known before decoding (a progress bar's total)."""
        return self.segment.frames if self.segment is not None else self.info.frame_count

    @property
    def time_base(self) -> Fraction:
        return self.video_stream.time_base or Fraction(1, 90000)

    @property
    def info(self) -> VideoInfo:
        vs = self.video_stream
        return VideoInfo(
            path=self.path,
            container=self.container.format.name,
            codec=vs.codec_context.name,
            width=vs.codec_context.width,
            height=vs.codec_context.height,
            time_base=self.time_base,
            average_rate=vs.average_rate or vs.guessed_rate,
            frame_count=_estimate_frames(vs, self.container),
            duration_s=_duration_s(vs, self.container),
            audio_codecs=tuple(s.codec_context.name for s in self.audio_streams),
        )

    def items(self) -> Iterator[Frame | AudioPacket]:
        """Frames and audio packets in demux order; frames carry their input pts and duration.

        A frame is held back until the next one arrives, so a missing duration can be taken
        from the real gap to the next frame instead of the nominal rate.
        """
        vs = self.video_stream
        audio = self.audio_streams  # none for a segment
        audio_index = {s.index: i for i, s in enumerate(audio)}
        rate = vs.average_rate or vs.guessed_rate
        nominal = max(1, int(round(1 / (rate * self.time_base)))) if rate else 1  # one frame, in time_base
        held: Frame | None = None
        if self.segment is not None:
            self.container.seek(self.segment.start_pts, stream=vs, backward=True, any_frame=False)
        try:
            for packet in self.container.demux(vs, *audio):
                if packet.stream.index in audio_index:
                    if packet.dts is not None:
                        yield AudioPacket(packet, audio_index[packet.stream.index])
                    continue
                for frame in self._decode(packet):
                    if not self._in_segment(frame, held):
                        continue
                    current = self._to_frame(frame, held, nominal)
                    if held is not None:
                        yield held
                    held = current
                if self._past_segment(held):
                    held = None  # the next segment's first frame: it set the last one's duration
                    self.frames_decoded -= 1
                    break
        except av.error.FFmpegError as exc:
            self.decode_errors += 1
            log.warning("%s: stopped reading after frame %d: %s", self.path, self.frames_decoded, exc)
        if held is not None:
            yield held
        if self.frames_decoded == 0:
            raise InvalidInputError(f"{self.path}: contains no decodable video frames")

    def _in_segment(self, frame: av.VideoFrame, held: Frame | None) -> bool:
        """Frames before the segment (decoded after seeking to the keyframe before it) are skipped; the
        first one after it is let through once, to time the segment's last frame, then ends it."""
        if self.segment is None or frame.pts is None:
            return True
        if frame.pts < self.segment.start_pts:
            return False
        return not self._past_segment(held)

    def _past_segment(self, held: Frame | None) -> bool:
        end = self.segment.end_pts if self.segment is not None else None
        return end is not None and held is not None and held.pts >= end

    def _to_frame(self, frame: av.VideoFrame, previous: Frame | None, nominal: int) -> Frame:
        """Wrap a decoded frame; repair missing or non-increasing pts and missing durations."""
        pts = frame.pts
        if previous is not None:
            if pts is None or pts <= previous.pts:
                fixed = previous.pts + (previous.duration or nominal)
                if pts is not None:
                    log.warning("%s: frame %d has pts %s not after %s; using %s",
                                self.path, self.frames_decoded, pts, previous.pts, fixed)
                pts = fixed
            if not previous.duration:
                previous.duration = pts - previous.pts
        elif pts is None:
            pts = 0
        duration = int(frame.duration or 0) or (previous.duration if previous is not None else 0)
        out = Frame(
            index=self.frames_decoded + (self.segment.first_frame if self.segment is not None else 0),
            image=frame.to_ndarray(format="rgb24"),
            pts=int(pts),
            time_base=self.time_base,
            duration=duration,
            rotation=int(round((frame.rotation or 0) / 90)) * 90 % 360,
        )
        self.frames_decoded += 1
        return out

    def _decode(self, packet: av.Packet) -> list[av.VideoFrame]:
        try:
            return packet.decode()
        except av.error.FFmpegError as exc:
            self.decode_errors += 1
            log.warning("%s: corrupt data near frame %d skipped: %s", self.path, self.frames_decoded, exc)
            return []

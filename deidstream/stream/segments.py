"""A long file in segments: split at keyframes, each decoded on its own, the encoded parts joined back
without re-encoding.

A segment starts on a keyframe of the input, so it decodes without the frames before it, and its encoded
part starts on one of the output's (each part is its own encode), so the parts' packets are joined as they
are. Frames keep the input's timestamps in every part, and the audio is taken from the input at the join:
the output has the input's frames, timing and audio, as a single run's has.
"""

from __future__ import annotations

import heapq
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error

from deidstream.config import EncoderConfig
from deidstream.errors import InvalidInputError
from deidstream.stream.sink import FileSink
from deidstream.stream.source import AudioPacket, FileSource

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Segment:
    """Frames ``first_frame`` .. ``first_frame + frames - 1`` of a file (presentation order), from the
    keyframe at ``start_pts`` to before ``end_pts`` (None: the end), in the video stream's time base."""

    index: int
    first_frame: int
    frames: int
    start_pts: int
    end_pts: int | None

    def holds(self, pts: int) -> bool:
        return pts >= self.start_pts and (self.end_pts is None or pts < self.end_pts)


def plan_segments(path: str | Path, segment_s: float) -> list[Segment]:
    """Segments of about ``segment_s`` seconds each, cut at the keyframes nearest the even splits; one
    segment when the file is shorter than 1.5 of them or has no keyframe to cut at. The video's packets
    are read, not decoded (0.02 s for 10 MB here); a file whose header says it is short is not read."""
    if segment_s <= 0:
        raise ValueError(f"segment_s must be > 0, got {segment_s}")
    path = Path(path)
    with FileSource(path) as source:
        info = source.info
        if info.duration_s is not None and info.duration_s < 1.5 * segment_s:
            return [Segment(0, 0, info.frame_count, 0, None)]  # the whole file: no need to read its packets
        stream = source.video_stream
        time_base = source.time_base
        packets = [(p.pts, bool(p.is_keyframe)) for p in source.container.demux(stream)
                   if p.pts is not None and p.size > 0]
    packets.sort()
    if not packets:
        raise InvalidInputError(f"{path}: has no video packets to split")
    duration = float((packets[-1][0] - packets[0][0]) * time_base)
    count = int(duration / segment_s + 0.5) if duration >= 1.5 * segment_s else 1
    keys = [i for i, (_, key) in enumerate(packets) if key and i > 0]
    starts = [0]
    for k in range(1, count):
        want = k * len(packets) / count
        nearest = min(keys, key=lambda i: abs(i - want), default=None)
        if nearest is not None and nearest > starts[-1]:
            starts.append(nearest)
    ends = starts[1:] + [len(packets)]
    return [Segment(k, a, b - a, packets[a][0], packets[b][0] if b < len(packets) else None)
            for k, (a, b) in enumerate(zip(starts, ends))]


def parts_dir(target: str | Path) -> Path:
    """Where a segmented file's encoded parts wait for the join: a hidden folder beside the output."""
    target = Path(target)
    return target.parent / f".{target.name}.segments"


def part_path(target: str | Path, segment: Segment) -> Path:
    return parts_dir(target) / f"{segment.index:05d}{Path(target).suffix}"


def remove_parts(target: str | Path) -> None:
    """Remove a segmented file's parts (after the join, or what a failed or cancelled job left)."""
    shutil.rmtree(parts_dir(target), ignore_errors=True)


def _video_packets(parts: list[Path]) -> Iterator[tuple[Fraction, int, av.Packet]]:
    """Every part's video packets in order, each with its time (for interleaving with the audio)."""
    for part in parts:
        with av.open(str(part)) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.dts is None:
                    continue  # the demuxer's empty flush packet
                yield packet.dts * stream.time_base, 0, packet


def _audio_packets(source: FileSource) -> Iterator[tuple[Fraction, int, AudioPacket]]:
    index = {s.index: i for i, s in enumerate(source.audio_streams)}
    if not index:
        return
    for packet in source.container.demux(*source.audio_streams):
        if packet.dts is not None:
            yield packet.dts * packet.stream.time_base, 1, AudioPacket(packet, index[packet.stream.index])


def join_parts(parts: list[Path], input_path: str | Path, output_path: str | Path, config: EncoderConfig) -> int:
    """Write ``output_path`` (atomically) from the encoded ``parts``, in order, and the audio of
    ``input_path`` (copied, or AAC where the container refuses the codec, as a single run does); returns
    the number of video packets (frames) written."""
    with FileSource(input_path) as source:
        with av.open(str(parts[0])) as first:
            template = first.streams.video[0]
            with FileSink(output_path, source.info, source.audio_streams, config, video_template=template) as sink:
                merged = heapq.merge(_video_packets(parts), _audio_packets(source), key=lambda item: item[:2])
                for _, kind, item in merged:
                    if kind == 0:
                        sink.write_packet(item)  # type: ignore[arg-type]
                    else:
                        sink.write(item)  # type: ignore[arg-type]
                return sink.frames_written

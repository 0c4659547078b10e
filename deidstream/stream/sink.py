"""File sink: H.264 through PyAV, input timestamps kept, audio copied, written atomically.

The output is encoded into a hidden temporary file beside the target and renamed over it
only when everything succeeded, so an error or Ctrl-C never leaves a partial file behind.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
from pathlib import Path

import av
import av.error

from deidstream.config import EncoderConfig
from deidstream.errors import InvalidOutputError, OutputExistsError
from deidstream.stream.source import AudioPacket, VideoInfo
from deidstream.stream.yuv import yuv420_frame
from deidstream.types import Frame

log = logging.getLogger(__name__)

FASTSTART_EXTENSIONS = {"mp4", "m4v", "mov"}
DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def check_output_path(input_path: Path, output_path: Path, *, overwrite: bool) -> None:
    """Refuse outputs that would lose data: the input itself, an existing file, a missing folder."""
    if output_path.exists() and os.path.samefile(output_path, input_path):
        raise InvalidOutputError(f"{output_path}: output is the input file; refusing to overwrite the input")
    if output_path.is_dir():
        raise InvalidOutputError(f"{output_path}: is a directory, expected an output file name")
    if output_path.exists() and not overwrite:
        raise OutputExistsError(f"{output_path}: already exists (pass --overwrite to replace it)")
    if not output_path.parent.is_dir():
        raise InvalidOutputError(f"{output_path}: output directory {output_path.parent} does not exist")
    if not output_path.suffix:
        raise InvalidOutputError(f"{output_path}: needs a file extension naming the container, e.g. .mp4")


def _part_prefix(path: Path) -> str:
    return f".{path.stem}."


def _part_suffix(path: Path) -> str:
    return f".part{path.suffix}"


def leftover_parts(path: str | Path) -> list[Path]:
    """The temporary files a ``FileSink`` for ``path`` leaves when its process is killed before it can remove
    them (``.clip.x1y2z3w4.part.mp4`` beside ``clip.mp4``); another output's (``clip.b.mp4``) never match."""
    path = Path(path)
    pattern = re.compile(re.escape(_part_prefix(path)) + r"[A-Za-z0-9_]{8}" + re.escape(_part_suffix(path)) + "$")
    try:
        return [p for p in path.parent.iterdir() if pattern.match(p.name)]
    except FileNotFoundError:
        return []


class FileSink:
    """Encodes frames and muxes audio into ``path``; ``close(ok=True)`` publishes the file.

    With a ``video_template`` (an encoded part's stream, :mod:`deidstream.stream.segments`) it encodes
    nothing: ``write_packet`` muxes that stream's packets as they are (the template brings the rotation)."""

    def __init__(
        self,
        path: str | Path,
        info: VideoInfo,
        audio_streams: list[av.audio.stream.AudioStream],
        config: EncoderConfig,
        *,
        video_template: av.video.stream.VideoStream | None = None,
    ) -> None:
        self.path = Path(path)
        self.info = info
        self.config = config
        self._template = video_template
        self._audio_in = audio_streams
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=_part_prefix(self.path), suffix=_part_suffix(self.path))
        os.close(fd)
        self._tmp = Path(tmp)
        self._container: av.container.OutputContainer | None = None
        self._video: av.video.stream.VideoStream | None = None
        self._audio_out: list[av.audio.stream.AudioStream] = []
        self._audio_copy: list[bool] = []
        self._pending_audio: list[AudioPacket] = []
        self._durations: dict[int, int] = {}
        self.frames_written = 0

    def __enter__(self) -> FileSink:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(ok=exc_type is None)

    # -- setup -----------------------------------------------------------------------------

    def _open(self, rotation: int) -> None:
        """Create the streams; copy audio where the container accepts the codec, else AAC."""
        copy = [True] * len(self._audio_in)
        while True:
            container = self._make_container(rotation, copy)
            try:
                container.start_encoding()
            except (av.error.FFmpegError, ValueError) as exc:
                container.close()
                if not any(copy):
                    raise InvalidOutputError(f"{self.path}: cannot write this container: {exc}") from exc
                bad = [s.codec_context.name for s, c in zip(self._audio_in, copy) if c]
                log.info("%s: audio %s cannot be copied into %s; re-encoding as AAC", self.path, bad, self.path.suffix)
                copy = [False] * len(self._audio_in)
                continue
            break
        self._container = container
        self._audio_copy = copy

    def _make_container(self, rotation: int, copy: list[bool]) -> av.container.OutputContainer:
        ext = self.path.suffix.lstrip(".").lower()
        options = {}
        if ext in FASTSTART_EXTENSIONS:
            # the edit list (where the first frame starts) in the video's own time base, not in milliseconds: a
            # file that starts late keeps its timestamps exactly (and so does a segment's part)
            options = {"movflags": "+faststart", "movie_timescale": str(self._timescale())}
        try:
            container = av.open(str(self._tmp), "w", options=options)
        except (av.error.FFmpegError, ValueError) as exc:
            raise InvalidOutputError(f"{self.path}: unknown output container {self.path.suffix!r}") from exc
        if "h264" not in container.supported_codecs:
            container.close()
            raise InvalidOutputError(
                f"{self.path}: the {self.path.suffix} container cannot hold H.264; use .mp4, .mkv or .mov"
            )
        self._video = self._add_video(container, rotation)
        self._audio_out = []
        for i, stream in enumerate(self._audio_in):
            if copy[i]:
                try:
                    self._audio_out.append(container.add_stream_from_template(stream, opaque=True))
                    continue
                except ValueError:  # the muxer refuses this codec outright
                    log.info("%s: audio %s cannot be copied into %s; re-encoding as AAC",
                             self.path, stream.codec_context.name, self.path.suffix)
                    copy[i] = False
            out = container.add_stream("aac", rate=stream.codec_context.sample_rate or 48000)
            channels = stream.codec_context.layout.nb_channels if stream.codec_context.layout else 2
            out.layout = DEFAULT_LAYOUTS.get(channels, "stereo")  # files often leave the channel order unset
            out.format = "fltp"  # the AAC encoder's only sample format; PyAV resamples to it
            self._audio_out.append(out)
        return container

    def _timescale(self) -> int:
        """A clock that counts every stream's ticks (their time bases' common multiple), or the video's alone
        where that would not fit the container's 32 bits."""
        dens = [self.info.time_base.denominator]
        for stream in self._audio_in:  # copied in its own time base, or re-encoded at its sample rate
            dens += [stream.time_base.denominator if stream.time_base else 1, stream.codec_context.sample_rate or 1]
        common = math.lcm(*dens)
        return common if common < 2**31 else self.info.time_base.denominator

    def _add_video(self, container: av.container.OutputContainer, rotation: int) -> av.video.stream.VideoStream:
        if self._template is not None:
            copied = container.add_stream_from_template(self._template, opaque=True)
            copied.time_base = self._template.time_base
            return copied
        cfg = self.config
        info = self.info
        # No B-frames: sample durations then follow the frames' own, so the last frame's
        # duration (and the file's) survives muxing exactly, variable frame rate included.
        options = {"preset": cfg.preset, "bf": "0"}
        if cfg.lossless:
            stream = container.add_stream("libx264rgb", options={**options, "qp": "0"})
            stream.pix_fmt = "rgb24"
        else:
            stream = container.add_stream("libx264", options={**options, "crf": str(cfg.crf)})
            odd = info.width % 2 or info.height % 2
            stream.pix_fmt = "yuv444p" if odd else "yuv420p"
            if odd:
                log.warning("%s: odd frame size %dx%d; writing 4:4:4 H.264 to keep it exactly",
                            self.path, info.width, info.height)
        stream.width = info.width
        stream.height = info.height
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        if info.average_rate:
            stream.codec_context.framerate = info.average_rate
        stream.codec_context.thread_count = cfg.threads
        if rotation:
            stream.set_display_rotation(rotation)
        return stream

    # -- writing ---------------------------------------------------------------------------

    def write(self, item: Frame | AudioPacket) -> None:
        if isinstance(item, AudioPacket):
            if self._container is None:
                self._pending_audio.append(item)
            else:
                self._write_audio(item)
            return
        self._ensure_open(item.rotation)
        self._write_frame(item)

    def _ensure_open(self, rotation: int) -> None:
        """Open on the first video, then mux the audio that came before it."""
        if self._container is not None:
            return
        self._open(rotation)
        for pending in self._pending_audio:
            self._write_audio(pending)
        self._pending_audio.clear()

    def write_packet(self, packet: av.Packet) -> None:
        """An encoded video packet of the template's stream, muxed as it is (timestamps and all)."""
        if self._template is None:
            raise RuntimeError("write_packet needs a sink made with a video_template")
        self._ensure_open(0)
        assert self._container is not None
        packet.stream = self._video
        self._container.mux(packet)
        self.frames_written += 1

    def _write_frame(self, frame: Frame) -> None:
        assert self._container is not None and self._video is not None
        if self._video.pix_fmt == "yuv420p":
            vf = yuv420_frame(frame.image)
        else:  # lossless RGB or an odd size's 4:4:4: the encoder converts, if at all
            vf = av.VideoFrame.from_ndarray(frame.image, format="rgb24")
        vf.pts = frame.pts
        vf.time_base = frame.time_base
        vf.duration = frame.duration
        self._durations[frame.pts] = frame.duration
        self._mux_video(self._video.encode(vf))
        self.frames_written += 1

    def _mux_video(self, packets: list[av.Packet]) -> None:
        """x264 stamps every packet with the nominal frame interval; give each its frame's real
        duration so variable frame rates and the last frame's length survive muxing."""
        assert self._container is not None
        for packet in packets:
            duration = self._durations.pop(packet.pts, 0)
            if duration:
                packet.duration = duration
        self._container.mux(packets)

    def _write_audio(self, item: AudioPacket) -> None:
        assert self._container is not None
        out = self._audio_out[item.stream_index]
        if self._audio_copy[item.stream_index]:
            item.packet.stream = out
            self._container.mux(item.packet)
            return
        for aframe in item.packet.decode():
            aframe.pts = None
            self._container.mux(out.encode(aframe))

    def close(self, *, ok: bool) -> None:
        """Flush and publish (``ok``) or discard the temporary file."""
        try:
            if self._container is not None:
                if ok:
                    self._flush()
                self._container.close()
                self._container = None
            if ok and self.frames_written:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self._tmp, 0o666 & ~umask)  # mkstemp made it private; publish like any new file
                os.replace(self._tmp, self.path)
        finally:
            if self._tmp.exists():
                self._tmp.unlink()

    def _flush(self) -> None:
        assert self._container is not None and self._video is not None
        if self._template is None:
            self._mux_video(self._video.encode(None))
        for out, copied in zip(self._audio_out, self._audio_copy):
            if not copied:
                self._container.mux(out.encode(None))

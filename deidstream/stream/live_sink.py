"""Live sinks: RTSP push and segmented recording from one H.264 encoder, a virtual camera, a preview window.

Every sink receives frames whose faces were all processed (the live runner sends nothing else).
``EncodedSink`` encodes each frame once (libx264, zerolatency, no B-frames, a keyframe every
``gop_s``) and hands copies of the packets to its targets: an ``RtspPush`` to a media server
(:mod:`deidstream.stream.rtsp_push`) and/or a
``SegmentRecorder``. A recording segment is encoded into a hidden temporary file and renamed into
place when it is complete, so a crash loses at most the segment being written.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import av.error
import numpy as np

from deidstream.config import LiveConfig
from deidstream.errors import InvalidOutputError, OutputExistsError, SinkUnavailable
from deidstream.stream.live_source import LIVE_TIME_BASE, Captured
from deidstream.stream.yuv import yuv420_frame
from deidstream.types import Frame

log = logging.getLogger(__name__)
SINGLE_THREAD_MAX_PIXELS = 1920 * 1080


class LiveSink(Protocol):
    """A destination for processed live frames; ``send`` may block for pacing, ``close`` finalises."""

    name: str

    def send(self, item: Captured) -> None: ...

    def close(self) -> None: ...


class PacketTarget(Protocol):
    """A muxer fed with encoded H.264 packets (``LIVE_TIME_BASE`` timestamps)."""

    def prepare(self, size: tuple[int, int], rate: Fraction) -> None:
        """Connect or create what can be before the first packet (start-up cost off the first frame)."""
        ...

    def write(self, packet: av.Packet, size: tuple[int, int], rate: Fraction) -> None: ...

    def close(self) -> None: ...


def _copy(packet: av.Packet) -> av.Packet:
    """A muxer takes ownership of the packet it writes; each target gets its own."""
    out = av.Packet(bytes(packet))
    out.pts, out.dts, out.duration = packet.pts, packet.dts, packet.duration
    out.time_base = packet.time_base
    out.is_keyframe = packet.is_keyframe
    return out


def upright(frame: Frame) -> np.ndarray:
    """The picture as a viewer sees it (rotation applied), for sinks that show raw pixels."""
    k = (frame.rotation // 90) % 4
    return frame.image if k == 0 else np.ascontiguousarray(np.rot90(frame.image, k))


class EncodedSink:
    """One libx264 encoder whose packets go to every target (RTSP push, recording)."""

    def __init__(
        self, targets: list[PacketTarget], config: LiveConfig, rate: Fraction, *, name: str = "stream"
    ) -> None:
        if not targets:
            raise ValueError("EncodedSink needs at least one target")
        self.name = name
        self.targets = targets
        self.config = config
        self.rate = rate
        self._codec: av.CodecContext | None = None
        self._size: tuple[int, int] | None = None
        self.frames_sent = 0

    def prepare(self, width: int, height: int) -> None:
        """Open the encoder and connect the targets before the first frame, when the size is known."""
        if self._codec is None:
            self._open(width, height)
            assert self._size is not None
            for target in self.targets:
                target.prepare(self._size, self.rate)

    def _open(self, width: int, height: int) -> None:
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height = width - width % 2, height - height % 2
        codec.pix_fmt = "yuv420p"
        codec.time_base = LIVE_TIME_BASE
        codec.framerate = self.rate
        gop = max(1, round(self.config.gop_s * float(self.rate)))
        codec.options = {"preset": self.config.preset, "tune": "zerolatency", "bf": "0", "crf": str(self.config.crf),
                         "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        # x264's sliced threads cost a third more CPU than one thread for the same wall time up to
        # 1080p (benchmarks/bench_encode.py), CPU the faces need; larger frames need the threads.
        codec.thread_count = 1 if codec.width * codec.height <= SINGLE_THREAD_MAX_PIXELS else 0
        codec.open()
        self._codec = codec
        self._size = (codec.width, codec.height)

    def send(self, item: Captured) -> None:
        frame = item.frame
        if self._codec is None:
            self._open(frame.width, frame.height)
        assert self._codec is not None and self._size is not None
        w, h = self._size
        image = frame.image if (frame.width, frame.height) == (w, h) else _fit(frame.image, w, h)
        vf = yuv420_frame(image)
        vf.pts, vf.time_base = frame.pts, frame.time_base
        self._deliver(self._codec.encode(vf))
        self.frames_sent += 1

    def _deliver(self, packets: list[av.Packet]) -> None:
        assert self._size is not None
        for packet in packets:
            for i, target in enumerate(self.targets):
                target.write(packet if i == len(self.targets) - 1 else _copy(packet), self._size, self.rate)

    def close(self) -> None:
        errors: list[BaseException] = []
        try:
            if self._codec is not None:
                self._deliver(self._codec.encode(None))
        except (av.error.FFmpegError, OSError, SinkUnavailable) as exc:
            errors.append(exc)
        for target in self.targets:
            try:
                target.close()
            except (av.error.FFmpegError, OSError, SinkUnavailable) as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Crop (odd sizes lose their last row/column for 4:2:0) or resize a frame to the encoder's size."""
    import cv2

    if image.shape[1] >= width and image.shape[0] >= height and image.shape[1] - width <= 1 \
            and image.shape[0] - height <= 1:
        return np.ascontiguousarray(image[:height, :width])
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def segment_paths(path: Path, segment_s: float | None) -> Callable[[int], Path]:
    """``out.mp4`` → ``out.mp4`` (one file) or ``out_0000.mp4``, ``out_0001.mp4``, … (segments)."""
    if segment_s is None:
        return lambda n: path
    return lambda n: path.with_name(f"{path.stem}_{n:04d}{path.suffix}")


def check_record_path(path: Path, segment_s: float | None, *, overwrite: bool) -> None:
    """Refuse a recording that would replace files, or that cannot be written."""
    if not path.suffix:
        raise InvalidOutputError(f"{path}: needs a file extension naming the container, e.g. .mp4")
    if not path.parent.is_dir():
        raise InvalidOutputError(f"{path}: output directory {path.parent} does not exist")
    pattern = f"{path.stem}_[0-9][0-9][0-9][0-9]*{path.suffix}"
    existing = [path] if segment_s is None else sorted(path.parent.glob(pattern))
    existing = [p for p in existing if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing[0]}: already exists (pass --overwrite to replace it)")


class SegmentRecorder:
    """Writes the stream to ``path``, or to numbered segments of about ``segment_s`` seconds.

    A new segment starts at the first keyframe after the segment length is reached; its timestamps
    start at 0. Each file is published by an atomic rename once complete (``close`` publishes the last).
    """

    def __init__(self, path: str | Path, *, segment_s: float | None = None) -> None:
        self.path = Path(path)
        self.segment_s = segment_s
        self._name = segment_paths(self.path, segment_s)
        self._index = 0
        self._container: av.container.OutputContainer | None = None
        self._stream: Any = None
        self._tmp: Path | None = None
        self._start_pts = 0
        self._packets = 0
        self.published: list[Path] = []

    def prepare(self, size: tuple[int, int], rate: Fraction) -> None:
        """Nothing to do: a segment's file is created with its first packet."""

    def _begin(self, size: tuple[int, int], rate: Fraction, start_pts: int) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.",
                                   suffix=f".part{self.path.suffix}")
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            container = av.open(tmp, "w", format=None, options={"movflags": "+faststart"}
                                if self.path.suffix.lower() in (".mp4", ".mov", ".m4v") else {})
            stream = container.add_mux_stream("h264", rate=rate, width=size[0], height=size[1])
            stream.time_base = LIVE_TIME_BASE
        except (av.error.FFmpegError, ValueError) as exc:
            self._tmp.unlink(missing_ok=True)
            raise InvalidOutputError(f"{self.path}: cannot record into this container: {exc}") from exc
        self._container, self._stream = container, stream
        self._start_pts, self._packets = start_pts, 0

    def write(self, packet: av.Packet, size: tuple[int, int], rate: Fraction) -> None:
        pts = packet.pts or 0
        if self._container is not None and self.segment_s is not None and packet.is_keyframe \
                and (pts - self._start_pts) * LIVE_TIME_BASE >= self.segment_s:
            self._finish()
        if self._container is None:
            self._begin(size, rate, pts)
        assert self._container is not None
        packet.pts = pts - self._start_pts
        packet.dts = (packet.dts if packet.dts is not None else pts) - self._start_pts
        packet.stream = self._stream
        self._container.mux(packet)
        self._packets += 1

    def _finish(self) -> None:
        """Close the current file and rename it into place."""
        container, tmp = self._container, self._tmp
        self._container, self._tmp = None, None
        if container is None or tmp is None:
            return
        try:
            container.close()
            if self._packets:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)
                target = self._name(self._index)
                os.replace(tmp, target)
                self.published.append(target)
                self._index += 1
                log.info("recorded %s", target)
        finally:
            tmp.unlink(missing_ok=True)

    def close(self) -> None:
        self._finish()


class VirtualCameraSink:
    """Shows frames on a virtual camera (pyvirtualcam: v4l2loopback on Linux, OBS on Windows/macOS).

    ``camera_factory(width, height, fps)`` returns an object with ``send(rgb)``,
    ``sleep_until_next_frame()`` and ``close()`` (a ``pyvirtualcam.Camera`` by default); the camera is
    opened on the first frame, at that frame's size. After each frame it sleeps until the next frame is
    due, so the camera runs at ``fps`` even when frames arrive in bursts.
    """

    name = "virtual-camera"

    def __init__(self, fps: float, *, device: str | None = None,
                 camera_factory: Callable[[int, int, float], Any] | None = None) -> None:
        self.fps = fps
        self.device = device
        self.camera_factory = camera_factory or self._pyvirtualcam
        self._camera: Any = None
        self._size: tuple[int, int] | None = None
        self.frames_sent = 0

    def _pyvirtualcam(self, width: int, height: int, fps: float) -> Any:
        try:
            import pyvirtualcam
        except ImportError as exc:
            raise SinkUnavailable("--virtual-camera needs pyvirtualcam: pip install 'deidstream[live]'") from exc
        try:
            return pyvirtualcam.Camera(width=width, height=height, fps=fps, fmt=pyvirtualcam.PixelFormat.RGB,
                                       device=self.device, print_fps=False)
        except (RuntimeError, OSError, ValueError) as exc:
            raise SinkUnavailable(
                f"virtual camera: {exc} (Linux needs the v4l2loopback module: "
                "sudo modprobe v4l2loopback exclusive_caps=1; Windows/macOS need OBS's virtual camera)") from exc

    def send(self, item: Captured) -> None:
        image = upright(item.frame)
        h, w = image.shape[:2]
        if self._camera is None:
            self._camera = self.camera_factory(w, h, self.fps)
            self._size = (w, h)
        if (w, h) != self._size:
            import cv2

            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._camera.send(image)
        self.frames_sent += 1
        self._camera.sleep_until_next_frame()

    def close(self) -> None:
        if self._camera is not None:
            camera, self._camera = self._camera, None
            camera.close()


class PreviewSink:
    """An OpenCV window showing the processed frames; closing it or pressing q calls ``on_quit``."""

    name = "preview"

    def __init__(self, title: str = "deidstream", *, on_quit: Callable[[], None] | None = None) -> None:
        if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise SinkUnavailable("--preview needs a display (neither DISPLAY nor WAYLAND_DISPLAY is set)")
        self.title = title
        self.on_quit = on_quit
        self._open = False

    def send(self, item: Captured) -> None:
        import cv2

        if not self._open:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
            self._open = True
        cv2.imshow(self.title, cv2.cvtColor(upright(item.frame), cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1) & 0xFF
        closed = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        if (key == ord("q") or closed) and self.on_quit is not None:
            self.on_quit()

    def close(self) -> None:
        if self._open:
            import cv2

            cv2.destroyWindow(self.title)
            self._open = False

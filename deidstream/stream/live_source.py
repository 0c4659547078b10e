"""Live sources: RTSP cameras through PyAV and webcams through OpenCV's V4L2 backend.

Both yield ``Captured`` frames for as long as they run, reconnecting with exponential backoff when the
camera drops or stalls (one log line per loss and per reconnect). A source that cannot be opened at
start raises ``SourceUnavailable`` at once, with a one-line reason. Timestamps are re-based onto one
clock (``LIVE_TIME_BASE``) that only increases, across reconnects too: within a connection a frame
keeps the camera's spacing; a reconnect continues after the real time that passed.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import av.error
import numpy as np

from deidstream.config import LiveSourceConfig
from deidstream.errors import ConfigError, SourceStalled, SourceUnavailable
from deidstream.types import Frame

log = logging.getLogger(__name__)

LIVE_TIME_BASE = Fraction(1, 90000)
DEFAULT_FPS = Fraction(30)
_WEBCAM_PATH = re.compile(r"^/dev/video(\d+)$")


@dataclass(frozen=True, slots=True)
class Captured:
    """A live frame and when its picture arrived (``time.monotonic()``); ``session`` counts connections."""

    frame: Frame
    captured: float
    session: int


class LiveSource(Protocol):
    """What the live runner reads from."""

    name: str

    @property
    def fps(self) -> Fraction: ...

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) of the pictures once open, when the source knows it before the first frame."""
        ...

    def open(self) -> None: ...

    def frames(self, stop: threading.Event) -> Iterator[Captured]: ...

    def close(self) -> None: ...


def redact(url: str) -> str:
    """A URL fit for logs: any password is replaced.

    >>> redact("rtsp://admin:secret@10.0.0.5:554/stream1")
    'rtsp://admin:***@10.0.0.5:554/stream1'
    """
    return re.sub(r"^(\w+://[^:/@]+):[^@/]*@", r"\1:***@", url)


def is_live_url(text: str) -> bool:
    return text.lower().startswith(("rtsp://", "rtsps://"))


def webcam_index(text: str) -> int | None:
    """The device number of ``/dev/videoN``, else None."""
    match = _WEBCAM_PATH.match(text)
    return int(match.group(1)) if match else None


class Backoff:
    """Exponential waits between reconnect attempts, and the deadline for giving up."""

    def __init__(self, config: LiveSourceConfig) -> None:
        self.config = config
        self.attempts = 0
        self.lost_at = time.monotonic()

    def next_wait(self) -> float:
        cfg = self.config
        wait = min(cfg.backoff_initial_s * cfg.backoff_factor ** self.attempts, cfg.backoff_max_s)
        self.attempts += 1
        return wait

    def expired(self) -> bool:
        limit = self.config.give_up_after_s
        return limit is not None and time.monotonic() - self.lost_at > limit


class _Clock:
    """Maps each connection's timestamps onto one increasing live timeline (``LIVE_TIME_BASE``)."""

    def __init__(self, fps: Fraction) -> None:
        self.nominal = max(1, round(1 / (fps * LIVE_TIME_BASE)))
        self.last_pts: int | None = None
        self.last_time = 0.0
        self._origin: tuple[int, int] | None = None  # (first source pts in ticks, its live pts)

    def new_session(self) -> None:
        self._origin = None

    def stamp(self, source_ticks: int | None, captured: float) -> int:
        if self._origin is None or source_ticks is None:
            if self.last_pts is None:
                pts = 0
            else:
                gap = round((captured - self.last_time) / LIVE_TIME_BASE)
                pts = self.last_pts + max(self.nominal, gap)
            if source_ticks is not None:
                self._origin = (source_ticks, pts)
        else:
            pts = self._origin[1] + source_ticks - self._origin[0]
            if self.last_pts is not None and pts <= self.last_pts:
                pts = self.last_pts + self.nominal
                self._origin = (source_ticks, pts)
        self.last_pts, self.last_time = pts, captured
        return pts


class _Reconnecting:
    """Shared loop: read a connection until it fails, then reconnect with backoff; subclasses connect and read."""

    name: str

    def __init__(self, config: LiveSourceConfig, fps: Fraction = DEFAULT_FPS) -> None:
        self.config = config
        self.frames_read = 0
        self.reconnects = 0
        self._session = 0
        self._clock: _Clock | None = None
        self._fps = fps  # until a connection says otherwise
        self._size: tuple[int, int] | None = None

    @property
    def fps(self) -> Fraction:
        return self._fps

    @property
    def size(self) -> tuple[int, int] | None:
        return self._size

    def _connect(self) -> None:
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError

    def _read(self, stop: threading.Event) -> Iterator[tuple[np.ndarray, int | None, float]]:
        """(RGB image, pts in LIVE_TIME_BASE ticks or None, arrival time) until the connection ends."""
        raise NotImplementedError

    def open(self) -> None:
        self._connect()
        self._session = 1
        self._clock = _Clock(self.fps)

    def close(self) -> None:
        self._disconnect()

    def frames(self, stop: threading.Event) -> Iterator[Captured]:
        if self._clock is None:
            self.open()
        assert self._clock is not None
        while not stop.is_set():
            try:
                for image, ticks, captured in self._read(stop):
                    pts = self._clock.stamp(ticks, captured)
                    frame = Frame(self.frames_read, image, pts, LIVE_TIME_BASE, self._clock.nominal)
                    self.frames_read += 1
                    yield Captured(frame, captured, self._session)
                    if stop.is_set():
                        return
                reason = "stream ended"
            except (SourceStalled, SourceUnavailable, av.error.FFmpegError, OSError) as exc:
                reason = str(exc)
            if stop.is_set():
                return
            self._disconnect()
            log.warning("%s: lost (%s); reconnecting", self.name, reason)
            if not self._reconnect(stop):
                return
            self._clock.new_session()

    def _reconnect(self, stop: threading.Event) -> bool:
        backoff = Backoff(self.config)
        while not stop.is_set():
            if backoff.expired():
                raise SourceUnavailable(
                    f"{self.name}: gone for more than {self.config.give_up_after_s:g} s; giving up")
            wait = backoff.next_wait()
            if stop.wait(wait):
                return False
            try:
                self._connect()
            except SourceUnavailable as exc:
                log.warning("%s: reconnect attempt %d failed (%s); next in %.1f s", self.name, backoff.attempts,
                            exc, min(wait * self.config.backoff_factor, self.config.backoff_max_s))
                continue
            self._session += 1
            self.reconnects += 1
            log.warning("%s: reconnected after %d attempt(s), %.1f s without picture", self.name,
                        backoff.attempts, time.monotonic() - backoff.lost_at)
            return True
        return False


class RtspSource(_Reconnecting):
    """An ``rtsp://`` or ``rtsps://`` camera, decoded by PyAV (TCP by default), with open and read timeouts."""

    def __init__(self, url: str, config: LiveSourceConfig | None = None) -> None:
        super().__init__(config or LiveSourceConfig())
        self.url = url
        self.name = redact(url)
        if not url.lower().startswith("rtsps://"):
            # a CA file on an unencrypted URL would verify nothing while the user believes it does
            if self.config.ca_file is not None:
                raise ConfigError(f"{self.name}: a CA file verifies an rtsps:// camera; this URL is not encrypted")
            if self.config.cert_file is not None:
                raise ConfigError(f"{self.name}: a client certificate is shown over rtsps://; this URL is not "
                                  "encrypted")
        self._container: av.container.InputContainer | None = None

    def _connect(self) -> None:
        cfg = self.config
        # No fflags=nobuffer (lost two thirds of the frames in our tests) and no flags=low_delay (the decoder
        # then returns pictures with only their first slices, as RTP delivers a frame slice by slice).
        # No probing: the SDP names the codec and size, and a second of probed frames would reach us in one
        # burst, a second late (the decoder still reads sizes and parameters from the stream itself).
        options = {"rtsp_transport": cfg.rtsp_transport, "analyzeduration": "0", "probesize": "32"}
        if cfg.ca_file is not None:  # ffmpeg's TLS layer checks the chain and the host name
            options.update(tls_verify="1", ca_file=cfg.ca_file)
        if cfg.cert_file is not None and cfg.key_file is not None:  # mutual TLS: who we are, to the camera
            options.update(cert_file=cfg.cert_file, key_file=cfg.key_file)
        started = time.monotonic()
        try:
            container = av.open(self.url, "r", options=options, timeout=(cfg.open_timeout_s, cfg.read_timeout_s))
        except (av.error.FFmpegError, OSError) as exc:
            # An interrupted open reports "invalid data" or an exit request; the clock tells the truth.
            if isinstance(exc, av.error.ExitError) or time.monotonic() - started >= 0.95 * cfg.open_timeout_s:
                raise SourceUnavailable(f"{self.name}: no answer within {cfg.open_timeout_s:g} s") from exc
            checks = []
            if cfg.ca_file is not None:
                checks.append(f"is its TLS certificate signed by a CA in {cfg.ca_file}, for this host name?")
            if cfg.cert_file is not None:
                checks.append(f"does it accept the client certificate {cfg.cert_file}?")
            if checks:
                raise SourceUnavailable(f"{self.name}: cannot open: {_reason(exc)} ({' '.join(checks)})") from exc
            raise SourceUnavailable(f"{self.name}: cannot open: {_reason(exc)}") from exc
        if not container.streams.video:
            container.close()
            raise SourceUnavailable(f"{self.name}: the stream has no video")
        stream = container.streams.video[0]
        # One decoding thread: frame threads hold frames back (latency), and slice threads garbled
        # pictures whose slices arrive as separate RTP packets in our tests.
        stream.codec_context.thread_count = 1
        rate = stream.average_rate or stream.guessed_rate
        if rate and 0 < rate <= 240:
            self._fps = Fraction(rate)
        if stream.codec_context.width and stream.codec_context.height:
            self._size = (stream.codec_context.width, stream.codec_context.height)
        self._container = container

    def _disconnect(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except (av.error.FFmpegError, OSError) as exc:  # already broken: nothing left to release cleanly
                log.debug("%s: close: %s", self.name, exc)
            self._container = None

    def _read(self, stop: threading.Event) -> Iterator[tuple[np.ndarray, int | None, float]]:
        if self._container is None:
            self._connect()
        assert self._container is not None
        stream = self._container.streams.video[0]
        tb = stream.time_base or LIVE_TIME_BASE
        arrived: dict[int | None, float] = {}  # packet pts -> arrival, so frames decoded later keep theirs
        keyed = False  # pictures before the first keyframe of a connection lack their references: garbage
        try:
            for packet in self._container.demux(stream):
                if stop.is_set():
                    return
                now = time.monotonic()
                arrived[packet.pts] = now
                for frame in packet.decode():
                    captured = arrived.pop(frame.pts, now)
                    if not keyed and not frame.key_frame:
                        continue
                    keyed = True
                    ticks = None if frame.pts is None else round(frame.pts * tb / LIVE_TIME_BASE)
                    yield frame.to_ndarray(format="rgb24"), ticks, captured
                if len(arrived) > 64:  # packets that produced no frame
                    arrived.clear()
        except av.error.ExitError as exc:
            raise SourceStalled(f"{self.name}: no data for {self.config.read_timeout_s:g} s") from exc


def _reason(exc: BaseException) -> str:
    strerror = getattr(exc, "strerror", None)
    return str(strerror or exc)


class WebcamSource(_Reconnecting):
    """A V4L2 camera (``/dev/videoN``) read through OpenCV, in RGB, at the requested size and rate."""

    def __init__(self, device: int | str, config: LiveSourceConfig | None = None) -> None:
        super().__init__(config or LiveSourceConfig(),
                         Fraction(config.fps).limit_denominator(1001) if config and config.fps else DEFAULT_FPS)
        if isinstance(device, str):
            index = webcam_index(device)
            if index is None:
                raise SourceUnavailable(f"{device}: not a video device path (expected /dev/videoN)")
            device = index
        self.index = device
        self.path = Path(f"/dev/video{device}")
        self.name = str(self.path)
        self._capture = None
        self._t0 = time.monotonic()

    def _connect(self) -> None:
        import cv2

        if not self.path.exists():
            raise SourceUnavailable(f"{self.path}: no such video device (is the camera connected?)")
        capture = cv2.VideoCapture(self.index, cv2.CAP_V4L2)
        if not capture.isOpened():
            capture.release()
            raise SourceUnavailable(f"{self.path}: cannot open the camera (in use, or no permission?)")
        cfg = self.config
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, cfg.width), (cv2.CAP_PROP_FRAME_HEIGHT, cfg.height),
                            (cv2.CAP_PROP_FPS, cfg.fps)):
            if value:
                capture.set(prop, float(value))
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest picture, not a queue of old ones
        if hasattr(cv2, "CAP_PROP_READ_TIMEOUT_MSEC"):
            capture.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, cfg.read_timeout_s * 1000)
        got = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        rate = capture.get(cv2.CAP_PROP_FPS)
        if rate and 0 < rate <= 240:
            self._fps = Fraction(rate).limit_denominator(1001)
        if (cfg.width and got[0] != cfg.width) or (cfg.height and got[1] != cfg.height):
            log.warning("%s: asked for %sx%s, the camera gives %dx%d", self.name, cfg.width, cfg.height, *got)
        self._size = got if min(got) > 0 else None
        self._capture = capture

    def _disconnect(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def _read(self, stop: threading.Event) -> Iterator[tuple[np.ndarray, int | None, float]]:
        import cv2

        if self._capture is None:
            self._connect()
        while not stop.is_set():
            ok, bgr = self._capture.read()
            captured = time.monotonic()
            if not ok or bgr is None:
                raise SourceStalled(f"{self.name}: the camera returned no picture")
            ticks = round((captured - self._t0) / LIVE_TIME_BASE)
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), ticks, captured


def open_live_source(spec: str | int, config: LiveSourceConfig | None = None) -> LiveSource:
    """``rtsp://…``/``rtsps://…`` → ``RtspSource``; a device number or ``/dev/videoN`` → ``WebcamSource``."""
    if isinstance(spec, int):
        return WebcamSource(spec, config)
    if is_live_url(spec):
        return RtspSource(spec, config)
    if webcam_index(spec) is not None:
        return WebcamSource(spec, config)
    raise SourceUnavailable(f"{spec}: not a live source (expected rtsp://, rtsps:// or /dev/videoN)")

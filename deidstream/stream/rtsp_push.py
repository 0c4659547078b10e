"""Publishing to a media server (RTSP ANNOUNCE/RECORD), e.g. ``rtsp://server:8554/out``.

A relay runs for days; a media server restarts. When the session breaks mid-stream the push
reconnects in the background with exponential backoff (0.5 s, doubling to 30 s), a log line per
loss and per reconnect, and resumes at the encoder's next keyframe; what is encoded in between
is not sent to it (the recording and other outputs go on). Connecting happens off the encoder's
thread: a server that does not answer must not stall the recording. Only the first connection is
made inline, so an unreachable server at start-up is a clear error.
"""

from __future__ import annotations

import logging
import threading
import time
from fractions import Fraction
from typing import Any

import av
import av.error

from deidstream.errors import SinkUnavailable
from deidstream.stream.live_source import LIVE_TIME_BASE, redact

log = logging.getLogger(__name__)
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0


class RtspPush:
    """A ``PacketTarget`` publishing H.264 packets over RTSP."""

    def __init__(self, url: str, *, transport: str = "tcp", timeout_s: float = 10.0) -> None:
        self.url = url
        self.name = redact(url)
        self.transport = transport
        self.timeout_s = timeout_s
        self._container: av.container.OutputContainer | None = None
        self._stream: Any = None
        self._connected_once = False
        self._await_keyframe = False
        self._attempt: threading.Thread | None = None
        self._fresh: tuple[av.container.OutputContainer, Any] | None = None
        self._backoff = BACKOFF_START_S
        self._next_try = 0.0
        self.reconnects = 0
        self.packets_skipped = 0

    def prepare(self, size: tuple[int, int], rate: Fraction) -> None:
        if self._container is None and not self._connected_once:
            self._container, self._stream = self._connect(size, rate, start=False)

    def _connect(self, size: tuple[int, int], rate: Fraction, *, start: bool) -> tuple[Any, Any]:
        """A new session; ``start`` also sends the header now (ANNOUNCE/SETUP/RECORD) instead of
        with the first packet."""
        try:
            container = av.open(self.url, "w", format="rtsp", options={"rtsp_transport": self.transport},
                                timeout=(self.timeout_s, self.timeout_s))
            stream = container.add_mux_stream("h264", rate=rate, width=size[0], height=size[1])
            stream.time_base = LIVE_TIME_BASE
            if start:
                container.start_encoding()
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise SinkUnavailable(f"{self.name}: cannot publish: {getattr(exc, 'strerror', None) or exc}") from exc
        return container, stream

    def write(self, packet: av.Packet, size: tuple[int, int], rate: Fraction) -> None:
        if self._container is None:
            if not self._connected_once:  # the first connection: failing is the caller's error
                self._container, self._stream = self._connect(size, rate, start=False)
            elif not self._take_reconnected(size, rate):
                self.packets_skipped += 1
                return
        if self._await_keyframe:
            if not packet.is_keyframe:
                self.packets_skipped += 1
                return
            self._await_keyframe = False
        assert self._container is not None
        packet.stream = self._stream
        try:
            self._container.mux(packet)
        except (av.error.FFmpegError, OSError) as exc:
            if not self._connected_once:
                self._drop()
                raise SinkUnavailable(f"{self.name}: the media server went away: "
                                      f"{getattr(exc, 'strerror', None) or exc}") from exc
            log.warning("%s: the media server went away (%s); reconnecting", self.name,
                        getattr(exc, "strerror", None) or exc)
            self._drop()
            self._backoff = BACKOFF_START_S
            self._next_try = time.monotonic() + self._backoff
            return
        self._connected_once = True

    def _take_reconnected(self, size: tuple[int, int], rate: Fraction) -> bool:
        """Whether a background attempt has connected (then it is in use); starts one when due."""
        if self._fresh is not None:
            self._container, self._stream = self._fresh
            self._fresh = None
            self._await_keyframe = True  # a new session starts with a picture it can decode
            self.reconnects += 1
            log.warning("%s: reconnected to the media server", self.name)
            return True
        if (self._attempt is None or not self._attempt.is_alive()) and time.monotonic() >= self._next_try:
            self._attempt = threading.Thread(target=self._try_connect, args=(size, rate),
                                             name="deidstream-push-reconnect", daemon=True)
            self._attempt.start()
        return False

    def _try_connect(self, size: tuple[int, int], rate: Fraction) -> None:
        try:
            self._fresh = self._connect(size, rate, start=True)
        except SinkUnavailable as exc:
            self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
            self._next_try = time.monotonic() + self._backoff
            log.warning("%s: reconnect failed (%s); next try in %.1f s", self.name, exc.__cause__ or exc,
                        self._backoff)

    def _drop(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except (av.error.FFmpegError, OSError) as exc:
                log.debug("%s: closing the broken session: %s", self.name, exc)

    def close(self) -> None:
        if self._attempt is not None:
            self._attempt.join(timeout=self.timeout_s + 1)
        if self._fresh is not None:
            self._container, self._fresh = self._fresh[0], None
        if self._container is not None:
            container, self._container = self._container, None
            try:
                container.close()
            except (av.error.FFmpegError, OSError) as exc:
                log.warning("%s: closing the session: %s", self.name, exc)

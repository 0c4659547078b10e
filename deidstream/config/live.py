"""Configuration of a live run: the source (RTSP, webcam), scheduling, the live encoder."""

from __future__ import annotations

import os
from dataclasses import dataclass

from deidstream.config.pipeline import FALLBACK_MODES, PRESETS, PRIVACY_PRESETS, DetectorConfig, GeneratorConfig
from deidstream.errors import ConfigError, require

# A live relay's default. Its searches run beside the frames, from a person's first few views, with 12
# candidates: at 0.9 one of the two people of the two-face benchmark was never locked, and the failed
# searches cost the other's renders (two interleaved pairs of relays: 1.5-2.6% of frames dropped, p99
# 188-193 ms, 72-84% rendered once locked, against 0.5-0.6%, 143-164 ms and 90-92% for the previous
# search, random draws at 0.75).
LIVE_PRIVACY = "low"

RTSP_TRANSPORTS = ("tcp", "udp")
MAX_HOLD_FRAMES = 300  # 10 s at 30 fps: every held frame is a full picture in memory
_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``10m`` or ``1h``.

    >>> parse_duration("10m"), parse_duration("1.5h"), parse_duration("45")
    (600.0, 5400.0, 45.0)
    """
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in ("s", "m", "h") else ""
    try:
        seconds = float(value[: len(value) - len(unit)]) * _DURATION_UNITS[unit]
    except ValueError:
        raise ConfigError(f"expected a duration like 90s, 10m or 1h, got {text!r}") from None
    require(seconds > 0, f"expected a positive duration, got {text!r}")
    return seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveSourceConfig:
    """A live source: RTSP transport, timeouts, reconnection, and what to ask a webcam for.

    After a connection is lost or stalls (no picture for ``read_timeout_s``), the source reconnects,
    waiting ``backoff_initial_s``, then ``backoff_factor`` times longer after each failed attempt, up to
    ``backoff_max_s``; it gives up after ``give_up_after_s`` without a picture (None: never). A source that
    cannot be opened at all at start is an error at once. ``width``/``height``/``fps`` (webcam only, None:
    the camera's default) are requested from the driver, which may pick the nearest mode it has.
    ``ca_file``: PEM certificates an ``rtsps://`` camera's certificate must chain to (None: not
    verified, as in ffmpeg; whoever sits between the camera and us then sees the faces).
    ``cert_file``/``key_file``: the client certificate and its key (PEM) shown to an ``rtsps://``
    camera that lets in only known clients (mutual TLS); both or neither.
    """

    rtsp_transport: str = "tcp"
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_factor: float = 2.0
    backoff_max_s: float = 30.0
    give_up_after_s: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None

    def __post_init__(self) -> None:
        require(self.rtsp_transport in RTSP_TRANSPORTS,
               f"unknown RTSP transport {self.rtsp_transport!r}; expected one of {', '.join(RTSP_TRANSPORTS)}")
        require(self.open_timeout_s > 0, f"open_timeout_s must be > 0, got {self.open_timeout_s}")
        require(self.read_timeout_s > 0, f"read_timeout_s must be > 0, got {self.read_timeout_s}")
        require(self.backoff_initial_s > 0, f"backoff_initial_s must be > 0, got {self.backoff_initial_s}")
        require(self.backoff_factor >= 1, f"backoff_factor must be >= 1, got {self.backoff_factor}")
        require(self.backoff_max_s >= self.backoff_initial_s,
               f"backoff_max_s must be >= backoff_initial_s, got {self.backoff_max_s}")
        require(self.give_up_after_s is None or self.give_up_after_s > 0,
               f"give_up_after_s must be > 0 or None, got {self.give_up_after_s}")
        for name in ("width", "height"):
            value = getattr(self, name)
            require(value is None or 16 <= value <= 8192, f"{name} must be in [16, 8192], got {value}")
        require(self.fps is None or 0 < self.fps <= 240, f"fps must be in (0, 240], got {self.fps}")
        require(self.ca_file is None or os.path.isfile(self.ca_file), f"{self.ca_file}: no such CA file")
        require((self.cert_file is None) == (self.key_file is None),
                "a client certificate needs its key, and a key its certificate (cert_file and key_file)")
        for name, path in (("client certificate", self.cert_file), ("client key", self.key_file)):
            require(path is None or os.path.isfile(path), f"{path}: no such {name} file")


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveConfig:
    """Live scheduling: bounded queues, a time budget per frame, the fallback, and the live encoder.

    A frame's faces must be processed by ``budget_ms`` after its capture (and each frame's rendering
    may take at most one frame interval, so processing keeps up with the source). A face whose
    expensive path (the generator) would end later, fails or refuses gets ``fallback_mode`` instead.
    Every queue holds at most ``queue_size`` frames; when one is full its oldest frame is dropped,
    and a frame older than ``max_latency_ms`` when processing starts is dropped: a frame is sent
    only after all its faces were processed, never before. ``gop_s`` is the keyframe interval of
    the live H.264 stream (viewers joining wait at most that long; recording segments start on one).
    ``hold_frames`` covered frames are held back before sending, so that a face the detector finds
    late is also hidden in them, back to the start of its shot, as in files (0: every frame is sent
    at once; each held frame adds a frame interval of latency).
    """

    budget_ms: float = 100.0
    max_latency_ms: float = 500.0
    queue_size: int = 2
    fallback_mode: str = "blur"
    gop_s: float = 1.0
    preset: str = "ultrafast"
    crf: int = 23
    hold_frames: int = 0

    def __post_init__(self) -> None:
        require(0 <= self.hold_frames <= MAX_HOLD_FRAMES,
                f"hold_frames must be in [0, {MAX_HOLD_FRAMES}], got {self.hold_frames}")
        require(self.budget_ms > 0, f"budget_ms must be > 0, got {self.budget_ms}")
        require(self.max_latency_ms >= self.budget_ms,
               f"max_latency_ms must be >= budget_ms ({self.budget_ms}), got {self.max_latency_ms}")
        require(1 <= self.queue_size <= 64, f"queue_size must be in [1, 64], got {self.queue_size}")
        require(self.fallback_mode in FALLBACK_MODES,
               f"unknown fallback mode {self.fallback_mode!r}; expected one of {', '.join(FALLBACK_MODES)}")
        require(0 < self.gop_s <= 60, f"gop_s must be in (0, 60], got {self.gop_s}")
        require(self.preset in PRESETS, f"unknown preset {self.preset!r}; expected one of {', '.join(PRESETS)}")
        require(0 <= self.crf <= 51, f"crf must be in [0, 51], got {self.crf}")



def live_detector_config(*, threshold: float = DetectorConfig().threshold, tile_size: int | None = None,
                         full_range_every: int | None = None) -> DetectorConfig:
    """Detection for a live source: a live relay sends every frame at once (unless frames are held for
    back-fill), so by default the full-range model runs alone, on every frame, untiled: a constant
    cost per frame, and the same recall as both models on our labelled faces."""
    return DetectorConfig(threshold=threshold, short_range=False, tile_size=0 if tile_size is None else tile_size,
                          full_range_every=1 if full_range_every is None else full_range_every)


def live_generator_config(*, tau: float | None = None, key: bytes | None = None) -> GeneratorConfig:
    """The surrogate mode on a live source: ``LIVE_PRIVACY`` unless ``tau`` is given."""
    return GeneratorConfig(tau=PRIVACY_PRESETS[LIVE_PRIVACY] if tau is None else tau, key=key)

"""Typed configuration for every stage, checked on construction.

Defaults live here and nowhere else, so a threshold has one value in the whole program.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from deidstream.errors import ConfigError, require

# "surrogate" renders a generated identity per person; the others hide faces and are also the
# fail-closed fallback of "surrogate".
MODES = ("surrogate", "blur", "pixelate", "solid")
DEFAULT_MODE = "surrogate"  # the command line's: a verified surrogate per person, the fallback elsewhere
FALLBACK_MODES = ("blur", "pixelate", "solid")
SHAPES = ("ellipse", "box")
PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo",
)



@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorConfig:
    """Face detection: MediaPipe's two bundled BlazeFace models, fused.

    ``threshold`` is the minimum detection score. ``tile_size`` (pixels, 0 = off) splits frames
    larger than it into overlapping tiles for the full-range model, so small distant faces
    are seen at a usable scale; ``tile_overlap`` is the fraction tiles share.
    ``full_range_every`` runs the (4x costlier) full-range passes on every N-th frame only;
    the tracker keeps covering what they found in between, so N=2 costs at most one frame
    of delay for a small face that has just appeared and that the short-range model misses.
    """

    threshold: float = 0.5
    short_range: bool = True
    full_range: bool = True
    full_range_every: int = 2
    tile_size: int = 720
    tile_overlap: float = 0.25
    nms_iou: float = 0.3

    def __post_init__(self) -> None:
        require(0.0 < self.threshold < 1.0, f"detector threshold must be in (0, 1), got {self.threshold}")
        require(self.short_range or self.full_range, "at least one MediaPipe model must be enabled")
        require(self.full_range_every >= 1, f"full_range_every must be >= 1, got {self.full_range_every}")
        require(self.tile_size == 0 or self.tile_size >= 128, f"tile_size must be 0 or >= 128, got {self.tile_size}")
        require(0.0 <= self.tile_overlap < 0.9, f"tile_overlap must be in [0, 0.9), got {self.tile_overlap}")
        require(0.0 < self.nms_iou < 1.0, f"nms_iou must be in (0, 1), got {self.nms_iou}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackerConfig:
    """Kalman tracking with Hungarian assignment.

    A track is confirmed after ``min_hits`` matched frames. Any track, confirmed or not, keeps
    covering its predicted position for up to ``max_coast`` (confirmed) or
    ``max_coast_tentative`` frames without a detection; each coasting frame widens the box by
    ``coast_growth`` so a face moving off the prediction stays covered. Files also hide a new
    track's box in up to ``backfill`` frames before its first detection (within its shot,
    widened the same way), where the face was most likely already present: a face the
    detectors find late is not written bare until they do. Live streams have sent those
    frames already.
    """

    min_hits: int = 3
    max_coast: int = 12
    backfill: int = 12
    max_coast_tentative: int = 3
    min_iou: float = 0.05
    max_centre_distance: float = 1.0
    centre_weight: float = 0.5
    coast_growth: float = 0.05
    max_coast_scale: float = 1.6

    def __post_init__(self) -> None:
        require(self.min_hits >= 1, f"min_hits must be >= 1, got {self.min_hits}")
        require(self.max_coast >= 1, f"max_coast must be >= 1 (a missed face stays covered), got {self.max_coast}")
        require(
            1 <= self.max_coast_tentative <= self.max_coast,
            f"max_coast_tentative must be in [1, max_coast], got {self.max_coast_tentative}",
        )
        require(0.0 <= self.min_iou < 1.0, f"min_iou must be in [0, 1), got {self.min_iou}")
        require(self.max_centre_distance > 0, f"max_centre_distance must be > 0, got {self.max_centre_distance}")
        require(self.centre_weight >= 0, f"centre_weight must be >= 0, got {self.centre_weight}")
        require(self.backfill >= 0, f"backfill must be >= 0, got {self.backfill}")
        require(self.coast_growth >= 0, f"coast_growth must be >= 0, got {self.coast_growth}")
        require(self.max_coast_scale >= 1.0, f"max_coast_scale must be >= 1, got {self.max_coast_scale}")


@dataclass(frozen=True, slots=True, kw_only=True)
class AnonymizerConfig:
    """How a face region is hidden.

    ``margin`` widens the detector's box (which stops at the brows) on each side, as a
    fraction of its size, and ``forehead`` adds more above it for the forehead and hairline.
    ``strength`` is the number of cells across a face that survive blur or pixelation:
    fewer means more private. No blurred face is re-identified at its own place even at 8,
    but dlib puts small blurred faces within 0.6 of *other* people's faces: at 8, 9% of
    stage_multi_person_cuts' and 24% of crowd_1080p's sampled frames; at 4, 3% and 0% (a scratch
    run of the same script); at 3, none (benchmarks/bench_privacy.py, the leak rate).
    """

    mode: str = "blur"
    shape: str = "ellipse"
    margin: float = 0.2
    forehead: float = 0.25
    strength: int = 3
    color: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self) -> None:
        require(self.mode in FALLBACK_MODES,
               f"unknown mode {self.mode!r}; expected one of {', '.join(FALLBACK_MODES)}")
        require(self.shape in SHAPES, f"unknown shape {self.shape!r}; expected one of {', '.join(SHAPES)}")
        require(0.0 <= self.margin <= 2.0, f"margin must be in [0, 2], got {self.margin}")
        require(0.0 <= self.forehead <= 2.0, f"forehead must be in [0, 2], got {self.forehead}")
        require(2 <= self.strength <= 64, f"strength must be in [2, 64], got {self.strength}")
        require(all(0 <= c <= 255 for c in self.color), f"color must be 0-255 per channel, got {self.color}")


@dataclass(frozen=True, slots=True, kw_only=True)
class EncoderConfig:
    """H.264 output. ``lossless`` writes RGB H.264 at qp 0 (exact pixels; large files)."""

    crf: int = 18
    preset: str = "superfast"
    lossless: bool = False
    threads: int = 0

    def __post_init__(self) -> None:
        require(0 <= self.crf <= 51, f"crf must be in [0, 51], got {self.crf}")
        require(self.preset in PRESETS, f"unknown preset {self.preset!r}; expected one of {', '.join(PRESETS)}")
        require(self.threads >= 0, f"threads must be >= 0, got {self.threads}")


# E_id distance a surrogate must keep from its subject in the two views it is verified in. The
# search reaches 0.9 for 6 of 7 people of the shared clips (benchmarks/bench_lock.py); a person it
# cannot reach gets the fallback. "low" renders more people, each less far from themselves.
PRIVACY_PRESETS = {"low": 0.75, "standard": 0.9, "high": 1.0}
# A live relay's default. Its searches run beside the frames, from a person's first few views, with 12
# candidates: at 0.9 one of the two people of the two-face benchmark was never locked, and the failed
# searches cost the other's renders (two interleaved pairs of relays: 1.5-2.6% of frames dropped, p99
# 188-193 ms, 72-84% rendered once locked, against 0.5-0.6%, 143-164 ms and 90-92% for the previous
# search, random draws at 0.75).
LIVE_PRIVACY = "low"


@dataclass(frozen=True, slots=True, kw_only=True)
class GeneratorConfig:
    """The default mode: every person gets a verified surrogate identity rendered by G_3d.

    ``tau`` is the least E_id distance a surrogate must keep from its subject (the paper's
    privacy parameter; ``PRIVACY_PRESETS`` name a few). A face is rendered only when its person
    has a locked surrogate and its landmarks are plausible, at least ``min_face_px`` wide and
    turned at most ``max_yaw_deg``; any other face gets the fallback (``AnonymizerConfig``).
    Per person up to ``candidates`` surrogates are tried and the farthest of at least
    ``explore`` that passes is kept (more: farther surrogates, a slower start).
    ``shading_sigma`` (fraction of the face size) is how much of the frame's light is carried
    over. ``key`` makes surrogates reproducible (same key, same people → same surrogates); without
    one a random key is drawn per run. The key is never printed.
    """

    tau: float = PRIVACY_PRESETS["standard"]
    candidates: int = 30
    explore: int = 24
    min_face_px: int = 32
    max_yaw_deg: float = 70.0
    shading_sigma: float = 0.12
    raster_px: int = 112
    key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        require(0.0 < self.tau < 2.0, f"tau must be in (0, 2), got {self.tau}")
        require(self.candidates >= 1, f"candidates must be >= 1, got {self.candidates}")
        require(self.explore >= 1, f"explore must be >= 1, got {self.explore}")
        require(self.min_face_px >= 8, f"min_face_px must be >= 8, got {self.min_face_px}")
        require(0.0 < self.max_yaw_deg <= 90.0, f"max_yaw_deg must be in (0, 90], got {self.max_yaw_deg}")
        require(0.0 < self.shading_sigma < 1.0, f"shading_sigma must be in (0, 1), got {self.shading_sigma}")
        require(self.raster_px >= 32, f"raster_px must be >= 32, got {self.raster_px}")
        require(self.key is None or len(self.key) > 0, "the identity key must not be empty")


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineConfig:
    """Everything one run needs; ``queue_size`` bounds each queue between threads.

    ``mode`` is "surrogate" when ``generator`` is set, else the anonymiser's mode."""

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    anonymizer: AnonymizerConfig = field(default_factory=AnonymizerConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    # None: no generator, every face gets the anonymiser (the blur/pixelate/solid modes); the
    # command line sets it for its default mode, surrogate.
    generator: GeneratorConfig | None = None
    queue_size: int = 8

    def __post_init__(self) -> None:
        require(self.queue_size >= 1, f"queue_size must be >= 1, got {self.queue_size}")

    @property
    def mode(self) -> str:
        return "surrogate" if self.generator is not None else self.anonymizer.mode

    @property
    def lookback(self) -> int:
        """Frames a file run goes back to hide a new face: its back-fill, and at least the
        frames the full-range model skipped (it may be the first to see a small face)."""
        return max(self.tracker.backfill, self.detector.full_range_every - 1)


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


"""Configuration of a file run: detection, tracking, the anonymisers, the generator, the encoder."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field

from deidstream.errors import require

# "surrogate" renders a generated identity per person; the others hide faces and are also the
# fail-closed fallback of "surrogate".
MODES = ("surrogate", "blur", "pixelate", "solid")
DEFAULT_MODE = "surrogate"  # the command line's: a verified surrogate per person, the fallback elsewhere
FALLBACK_MODES = ("blur", "pixelate", "solid")
SHAPES = ("ellipse", "box")
SPACES = ("natural", "pca")  # identity spaces a surrogate is drawn from
# who picks a natural surrogate: M_c proposes donors in order, the first verified is kept ("mapper"); or the
# keyed search judges ``explore`` donors and keeps the best fit ("search")
CHOOSERS = ("mapper", "search")
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


# E_id distance a surrogate must keep from its subject in the views it is verified in. dlib puts two
# different real people of the shared one-person clips 0.82 apart on average (10th percentile 0.63), and
# a natural surrogate that keeps its subject's hair, outline, pose and light reaches about that far: the
# best of a person's matched donors lies 0.74-0.94 from them (mean 0.84). Verified at 0.7 in the worst
# of two views, the output stays as far as a stranger in the other frames (benchmarks/bench_natural.py);
# 0.9 would leave most people blurred. "low" renders more people, each less far from themselves.
PRIVACY_PRESETS = {"low": 0.62, "standard": 0.7, "high": 0.8}
DEFAULT_TAU = PRIVACY_PRESETS["standard"]
LOCK_CANDIDATES = 30  # surrogates tried per person at most
# ... of which this many are judged, each in two views (natural surrogates: judging 12 instead left the
# sample's and the stage's people with surrogates of less certain apparent sex, benchmarks/bench_natural.py)
LOCK_EXPLORE = 24


EID_BACKENDS = ("onnxruntime", "torch")


@dataclass(frozen=True, slots=True)
class EidConfig:
    """Where E_id runs. ``backend``: "onnxruntime" (the default: 6.5 against 10.2 ms for one face, 5.4
    against 6.0 ms per face in batches of 32, one thread, runs interleaved; ``benchmarks/bench_eid.py``
    times both) on the ONNX file ``deidstream export`` writes (built once into the user's cache when
    absent), or "torch"; ``providers``:
    onnxruntime's execution providers, in order (cpu, cuda, tensorrt, or onnxruntime's full names)."""

    backend: str = "onnxruntime"
    providers: tuple[str, ...] = ("cpu",)

    def __post_init__(self) -> None:
        require(self.backend in EID_BACKENDS,
                f"unknown E_id backend {self.backend!r}; expected one of {', '.join(EID_BACKENDS)}")
        require(len(self.providers) > 0, "name at least one execution provider")


@dataclass(frozen=True, slots=True, kw_only=True)
class GeneratorConfig:
    """The default mode: every person gets a verified surrogate identity rendered by G_3d.

    ``tau`` is the least E_id distance a surrogate must keep from its subject (the paper's
    privacy parameter; ``PRIVACY_PRESETS`` name a few). A face is rendered only when its person
    has a locked surrogate and its landmarks are plausible, at least ``min_face_px`` wide and
    turned at most ``max_yaw_deg``; any other face gets the fallback (``AnonymizerConfig``).
    Per person up to ``candidates`` surrogates are tried and, of at least ``explore`` of them, the
    one that passes and keeps their attributes best is kept (more: a better fit, a slower start).
    ``shading_sigma`` (fraction of the face size) is how much of the frame's light is carried
    over. ``key`` makes surrogates reproducible (same key, same person → same surrogate in any
    file or run, picked by their face, not their order); without one a random key is drawn per
    run. The key is never printed.
    """

    tau: float = DEFAULT_TAU
    candidates: int = LOCK_CANDIDATES
    explore: int = LOCK_EXPLORE
    min_face_px: int = 32
    max_yaw_deg: float = 70.0
    shading_sigma: float = 0.12
    raster_px: int = 112
    key: bytes | None = field(default=None, repr=False)
    # "natural": surrogates assembled from synthetic donors' real textures; "pca": the statistical space
    space: str = "natural"
    shape_change: float = 0.7  # how far a natural surrogate's face shape moves from the subject's to its donor's
    chooser: str = "mapper"
    eid: EidConfig = field(default_factory=EidConfig)  # the E_id that chooses and verifies surrogates

    def __post_init__(self) -> None:
        require(0.0 < self.tau < 2.0, f"tau must be in (0, 2), got {self.tau}")
        require(self.candidates >= 1, f"candidates must be >= 1, got {self.candidates}")
        require(self.explore >= 1, f"explore must be >= 1, got {self.explore}")
        require(self.min_face_px >= 8, f"min_face_px must be >= 8, got {self.min_face_px}")
        require(0.0 < self.max_yaw_deg <= 90.0, f"max_yaw_deg must be in (0, 90], got {self.max_yaw_deg}")
        require(0.0 < self.shading_sigma < 1.0, f"shading_sigma must be in (0, 1), got {self.shading_sigma}")
        require(self.raster_px >= 32, f"raster_px must be >= 32, got {self.raster_px}")
        require(self.key is None or len(self.key) > 0, "the identity key must not be empty")
        require(self.space in SPACES, f"unknown identity space {self.space!r}; expected one of {', '.join(SPACES)}")
        require(self.chooser in CHOOSERS, f"unknown chooser {self.chooser!r}; expected one of {', '.join(CHOOSERS)}")
        require(0.0 <= self.shape_change <= 1.0, f"shape_change must be in [0, 1], got {self.shape_change}")

    def run_key(self) -> bytes:
        """The key of one run: the user's, or a random one (surrogates then differ from run to run)."""
        return self.key or secrets.token_bytes(32)


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


def with_mode(config: PipelineConfig | None, mode: str | None) -> PipelineConfig:
    """``config`` (or the defaults) in ``mode``: "surrogate" renders a surrogate per person (the
    anonymiser is its fallback); the other modes hide every face that way and run no generator;
    None keeps ``config``'s own mode."""
    config = config or PipelineConfig()
    if mode == "surrogate":
        return dataclasses.replace(config, generator=config.generator or GeneratorConfig())
    if mode is None:
        return config
    require(mode in FALLBACK_MODES, f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    return dataclasses.replace(config, generator=None, anonymizer=dataclasses.replace(config.anonymizer, mode=mode))

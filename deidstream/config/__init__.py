"""Typed configuration for every stage, checked on construction: the one home of every default.

A threshold has one value in the whole program; file and live presets are derived here.
"""

from deidstream.config.identity import (
    AGE_BAND_YEARS,
    LIVE_CANDIDATES,
    LIVE_LOCK_PAUSE_S,
    LIVE_MAX_CANDIDATES,
    CutConfig,
    EmbedderConfig,
    IdentityConfig,
    LockConfig,
    OneEuroConfig,
    age_band,
    file_embedder_config,
    file_lock_config,
    live_lock_config,
)
from deidstream.config.live import (
    LIVE_PRIVACY,
    MAX_HOLD_FRAMES,
    RTSP_TRANSPORTS,
    LiveConfig,
    LiveSourceConfig,
    live_detector_config,
    live_generator_config,
    parse_duration,
)
from deidstream.config.pipeline import (
    CHOOSERS,
    DEFAULT_MODE,
    DEFAULT_TAU,
    EID_BACKENDS,
    FALLBACK_MODES,
    LOCK_CANDIDATES,
    LOCK_EXPLORE,
    MODES,
    PRESETS,
    PRIVACY_PRESETS,
    SHAPES,
    AnonymizerConfig,
    DetectorConfig,
    EidConfig,
    EncoderConfig,
    GeneratorConfig,
    PipelineConfig,
    TrackerConfig,
    with_mode,
)

__all__ = [
    "AGE_BAND_YEARS", "age_band",
    "CHOOSERS", "DEFAULT_MODE", "DEFAULT_TAU", "EID_BACKENDS", "FALLBACK_MODES", "LIVE_CANDIDATES", "LIVE_LOCK_PAUSE_S",
    "LIVE_MAX_CANDIDATES",
    "LIVE_PRIVACY", "LOCK_CANDIDATES", "LOCK_EXPLORE", "MAX_HOLD_FRAMES", "MODES", "PRESETS", "PRIVACY_PRESETS",
    "RTSP_TRANSPORTS", "SHAPES", "AnonymizerConfig", "CutConfig", "DetectorConfig", "EidConfig", "EmbedderConfig",
    "EncoderConfig", "GeneratorConfig", "IdentityConfig", "LiveConfig", "LiveSourceConfig", "LockConfig",
    "OneEuroConfig", "PipelineConfig", "TrackerConfig", "file_embedder_config", "file_lock_config",
    "live_detector_config", "live_generator_config", "live_lock_config", "parse_duration", "with_mode",
]

"""deidstream: replace every face in a video or live stream, never writing one unaltered."""

from __future__ import annotations

__version__ = "0.1.0"

from deidstream.api import anonymize, anonymize_directory, relay  # noqa: E402
from deidstream.config import (  # noqa: E402
    AnonymizerConfig,
    DetectorConfig,
    EncoderConfig,
    GeneratorConfig,
    LiveConfig,
    LiveSourceConfig,
    PipelineConfig,
    TrackerConfig,
)
from deidstream.errors import DeidstreamError  # noqa: E402
from deidstream.report import RunReport  # noqa: E402
from deidstream.types import FaceDetections, Frame  # noqa: E402

__all__ = [
    "AnonymizerConfig",
    "DeidstreamError",
    "DetectorConfig",
    "EncoderConfig",
    "FaceDetections",
    "Frame",
    "GeneratorConfig",
    "LiveConfig",
    "LiveSourceConfig",
    "PipelineConfig",
    "RunReport",
    "TrackerConfig",
    "anonymize",
    "anonymize_directory",
    "relay",
]

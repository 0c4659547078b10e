"""Error types.

Each error also inherits the builtin it specialises, so callers can catch either
(``except FileNotFoundError`` works as well as ``except DeidstreamError``).
"""

from __future__ import annotations


class DeidstreamError(Exception):
    """Base class of every error deidstream raises on purpose."""


class InputNotFoundError(DeidstreamError, FileNotFoundError):
    """The input path does not exist."""


class InvalidInputError(DeidstreamError, ValueError):
    """The input exists but is not a usable video (no video stream, no frames, unreadable)."""


class OutputExistsError(DeidstreamError, FileExistsError):
    """The output exists and overwriting was not asked for."""


class InvalidOutputError(DeidstreamError, ValueError):
    """The output path cannot be written (same as the input, missing directory, bad container)."""


def require(ok: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``ok``: how config values check themselves."""
    if not ok:
        raise ConfigError(message)


class ConfigError(DeidstreamError, ValueError):
    """A configuration value is out of range or unknown."""


class SourceUnavailable(DeidstreamError, ConnectionError):
    """A live source cannot be opened (no such device, unreachable or refusing URL) or stayed gone too long."""


class SourceStalled(DeidstreamError, TimeoutError):
    """A live source is connected but sent no picture within the read timeout."""


class SinkUnavailable(DeidstreamError, ConnectionError):
    """A live output cannot be opened or written (media server refusing, no virtual camera, no display)."""

"""A cameras file: the live sources one job relays, each with its own outputs (``deidstream relay --cameras``).

TOML, one ``[[camera]]`` table per camera, and an optional ``[defaults]`` table every camera starts from::

    [defaults]
    mode = "blur"            # blur, pixelate, solid or surrogate
    segment = "10m"          # recordings in segments of this length

    [[camera]]
    name = "lobby"
    source = "rtsp://10.0.0.5/stream"
    push = "rtsp://media.local:8554/lobby"   # and/or
    record = "/recordings/lobby.mp4"

Other keys: ``transport`` (tcp or udp) and ``give_up_after`` (a duration; default: keep reconnecting).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from deidstream.config.live import RTSP_TRANSPORTS, parse_duration
from deidstream.errors import ConfigError

CAMERA_MODES = ("blur", "pixelate", "solid", "surrogate")
KEYS = {"name", "source", "push", "record", "segment", "mode", "transport", "give_up_after"}


@dataclass(frozen=True, slots=True)
class CameraSpec:
    """One camera of a cameras file: its source and outputs (at least one of ``push`` and ``record``)."""

    name: str
    source: str
    push: str | None = None
    record: str | None = None
    segment_s: float | None = None
    mode: str = "blur"
    transport: str = "tcp"
    give_up_after_s: float | None = None


def _camera(path: Path, number: int, entry: dict, defaults: dict) -> CameraSpec:
    fields = {**defaults, **entry}
    where = f"{path}: camera {fields.get('name', number)!r}"
    unknown = sorted(set(fields) - KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; expected {', '.join(sorted(KEYS))}")
    for key in ("name", "source"):
        if not isinstance(fields.get(key), str) or not fields[key]:
            raise ConfigError(f"{where}: needs a {key} (text)")
    if not (fields.get("push") or fields.get("record")):
        raise ConfigError(f"{where}: needs an output: push (an rtsp:// URL) and/or record (a file)")
    mode = fields.get("mode", "blur")
    if mode not in CAMERA_MODES:
        raise ConfigError(f"{where}: unknown mode {mode!r}; expected one of {', '.join(CAMERA_MODES)}")
    transport = fields.get("transport", "tcp")
    if transport not in RTSP_TRANSPORTS:
        raise ConfigError(f"{where}: unknown transport {transport!r}; expected one of {', '.join(RTSP_TRANSPORTS)}")
    try:
        segment = parse_duration(str(fields["segment"])) if "segment" in fields else None
        give_up = parse_duration(str(fields["give_up_after"])) if "give_up_after" in fields else None
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    record = fields.get("record")
    if record is not None:  # relative to the cameras file, as a user reading it would expect
        record = str(path.parent / record) if not Path(record).is_absolute() else record
    return CameraSpec(fields["name"], fields["source"], fields.get("push"), record, segment, mode, transport, give_up)


def load_cameras(path: str | Path) -> list[CameraSpec]:
    """The cameras of ``path``, checked: every error names the file and the camera."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the cameras file: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a TOML cameras file: {exc}") from None
    unknown = sorted(set(data) - {"camera", "defaults"})
    if unknown:
        raise ConfigError(f"{path}: unknown table {unknown[0]!r}; expected [defaults] and [[camera]] tables")
    entries, defaults = data.get("camera", []), data.get("defaults", {})
    if not isinstance(entries, list) or not entries or not isinstance(defaults, dict):
        raise ConfigError(f"{path}: lists no camera (a [[camera]] table per camera)")
    cameras = [_camera(path, i + 1, entry, defaults) for i, entry in enumerate(entries)]
    for field, what in (("name", "name"), ("record", "recording"), ("push", "push URL")):
        values = [getattr(c, field) for c in cameras if getattr(c, field) is not None]
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ConfigError(f"{path}: two cameras have the {what} {repeated[0]!r}")
    return cameras

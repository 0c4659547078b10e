"""What every benchmark script shares: a command line fit to publish, and the JSON it writes."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"


def public_argv() -> list[str]:
    """The command line without machine paths (a path keeps only its last part)."""
    return [Path(a).name if "/" in a else a for a in sys.argv[1:]]


def machine() -> dict:
    """Which CPU a run had: the same 2-core kind of machine has come with processors of different speed,
    so numbers from two runs compare only where these agree."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "cpu family", "model", "cpu MHz") and key.strip() not in info:
                info[key.strip()] = value.strip()
    except OSError:
        pass
    name = info.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in info and "model" in info:
        name += f" (family {info['cpu family']}, model {info['model']})"
    return {"cpus": os.cpu_count(), "cpu": name, "cpu_mhz": float(info.get("cpu MHz", 0)) or None}


def write_json(path: Path, data: object, *, indent: int = 1) -> None:
    """Write the results and say where (relative to the repository when inside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=indent) + "\n")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}")


def shared_clip(name: str | Path) -> Path:
    """A path, or a shared clip's name (``stage_multi_person_cuts.mp4``, or ``stage`` for short);
    a name that matches nothing comes back as given, for the caller's "missing" message."""
    if Path(name).exists():
        return Path(name)
    named = sorted(VIDEOS.glob(f"{Path(name).stem}*.mp4"))
    return named[0] if len(named) == 1 else Path(name)

"""What every benchmark script shares: a command line fit to publish, and the JSON it writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"


def public_argv() -> list[str]:
    """The command line without machine paths (a path keeps only its last part)."""
    return [Path(a).name if "/" in a else a for a in sys.argv[1:]]


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

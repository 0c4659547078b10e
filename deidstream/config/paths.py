"""Where the product keeps what it builds from installed files (parsed or exported models): one place."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$DEIDSTREAM_CACHE``, else ``$XDG_CACHE_HOME/deidstream``, else ``~/.cache/deidstream``."""
    if os.environ.get("DEIDSTREAM_CACHE"):
        return Path(os.environ["DEIDSTREAM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deidstream"

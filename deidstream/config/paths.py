"""Where the product keeps what it builds from installed files (parsed or exported models): one place."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """``$DEIDSTREAM_CACHE``, else ``$XDG_CACHE_HOME/deidstream``, else ``~/.cache/deidstream``."""
    if os.environ.get("DEIDSTREAM_CACHE"):
        return Path(os.environ["DEIDSTREAM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deidstream"


def cached_arrays(saved: Path, build: Callable[[], dict[str, np.ndarray]], what: str,
                  valid: Callable[[dict[str, np.ndarray]], bool] = lambda _: True) -> dict[str, np.ndarray]:
    """Arrays derived from an installed file, kept in the cache as ``saved`` (an .npz whose name changes with what
    they derive from): read from there when it holds ``valid`` ones, else ``build`` and written atomically. A
    read-only home builds them at every start."""
    try:
        with np.load(saved) as arrays:
            found = {name: arrays[name] for name in arrays.files}
        if valid(found):
            return found
    except (OSError, ValueError):
        pass
    found = build()
    try:
        saved.parent.mkdir(parents=True, exist_ok=True)
        tmp = saved.with_name(f".{saved.stem}.{os.getpid()}.npz")
        np.savez(tmp, **found)
        os.replace(tmp, saved)
    except OSError as exc:
        log.info("cannot keep %s in %s: %s", what, saved.parent, exc)
    return found

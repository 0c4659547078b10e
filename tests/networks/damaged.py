"""Files that are not the model a loader of dlib's .dat files expects: each must be refused, naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

KINDS = ("garbage", "truncated", "extended", "missing")


def damaged(kind: str, model: Path, tmp: Path) -> Path:
    """A file in ``tmp`` made from ``model``: bytes of no dlib file, its first megabyte, the whole file with two
    bytes more, or no file at all."""
    path = tmp / f"{kind}.dat"
    if kind == "garbage":
        path.write_bytes(bytes(range(256)) * 64)
    elif kind == "truncated":
        path.write_bytes(model.read_bytes()[:1_000_000])
    elif kind == "extended":
        shutil.copy(model, path)
        with open(path, "ab") as f:
            f.write(b"\x01\x02")
    elif kind != "missing":
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return path

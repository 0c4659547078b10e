"""A rank-1 identification attack on the output: would a face search find the subject?

The gallery holds the input's people (one template per identity: the mean of their original faces'
descriptors) among thousands of other real people (distractors: LFW, UTKFace and the identity sets of
the shared data). Each output face's descriptor is matched to its nearest gallery entry; a hit is an
output face whose nearest entry is its own person. The distractors are described once and kept under
the user's cache folder (descriptors only: never written into an output or a report).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deidstream.tracking.attributes import STILL_SIDES, describe_stills

log = logging.getLogger(__name__)
# the real-face sets of the shared data folder, when --gallery names it; any other folder is searched whole
SHARED_SETS = ("donors/lfw_2000", "donors/utkface_1500", "identities")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".pgm", ".bmp")
CACHE_VERSION = 1  # bump when the way stills are described changes


def cache_dir() -> Path:
    """``$DEIDSTREAM_CACHE_DIR``, else ``$XDG_CACHE_HOME/deidstream``, else ``~/.cache/deidstream``."""
    if os.environ.get("DEIDSTREAM_CACHE_DIR"):
        return Path(os.environ["DEIDSTREAM_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deidstream"


def default_gallery() -> Path | None:
    """``../shared/data`` from the current folder, where it exists."""
    path = Path.cwd().parent / "shared" / "data"
    return path if path.is_dir() else None


def gallery_images(root: Path) -> dict[str, list[Path]]:
    """Image files per set: the shared data's real-face sets, or every image under ``root``."""
    sets = {name: root / name for name in SHARED_SETS if (root / name).is_dir()} or {root.name: root}
    return {name: sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            for name, folder in sets.items()}


@dataclass(frozen=True, slots=True)
class Gallery:
    """(m, 128) descriptors of other real people, and how many came from each set."""

    root: str
    descriptors: np.ndarray
    sets: dict[str, int]
    images: int

    def facts(self) -> dict:
        return {"gallery": self.root, "distractor_faces": int(len(self.descriptors)), "images": self.images,
                "sets": self.sets}


def _key(root: Path, images: dict[str, list[Path]], recognizer_name: str) -> str:
    h = hashlib.sha256(f"{CACHE_VERSION} {recognizer_name} {STILL_SIDES}".encode())
    for name, paths in images.items():
        for p in paths:
            st = p.stat()
            h.update(f"{name}/{p.relative_to(root)} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def load_gallery(root: Path, recognizer: object | None = None) -> Gallery:
    """The distractors under ``root``, described by dlib (HOG) once and cached by file list."""
    from deidstream.evaluation.judge import DlibRecognizer

    root = Path(root).resolve()
    images = gallery_images(root)
    rec = recognizer or DlibRecognizer("hog", 1)
    path = cache_dir() / f"gallery-{_key(root, images, rec.detector_name)}.npz"  # type: ignore[attr-defined]
    if path.is_file():
        with np.load(path) as z:
            descriptors, counts = z["descriptors"], z["counts"]
    else:
        log.warning("describing %d gallery images under %s once (cached in %s)",
                    sum(map(len, images.values())), root, path.parent)
        parts = [describe_stills(rec, paths)[0] for paths in images.values()]
        descriptors = np.concatenate(parts or [np.zeros((0, 128), np.float32)]).astype(np.float32)
        counts = np.array([len(p) for p in parts], int)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part.npz")
        np.savez(tmp, descriptors=descriptors, counts=counts)
        tmp.replace(path)
    return Gallery(str(root), descriptors, {n: int(c) for n, c in zip(images, counts)},
                   sum(map(len, images.values())))


def rank1_hits(outputs: np.ndarray, labels: np.ndarray, originals: np.ndarray, distractors: np.ndarray) -> np.ndarray:
    """(n,) True where output face i's nearest gallery entry is the template of its own identity.

    ``labels`` (n,) identity of each face; ``originals`` (n, 128) the original faces' descriptors, averaged
    per identity into the templates; ``distractors`` (m, 128) everyone else."""
    if not len(outputs):
        return np.zeros(0, bool)
    people = np.unique(labels)
    templates = np.stack([originals[labels == p].mean(axis=0) for p in people])
    gallery = np.concatenate([templates, np.asarray(distractors, np.float32).reshape(-1, 128)])
    nearest = np.empty(len(outputs), int)
    for start in range(0, len(outputs), 256):  # (256, m) distances at a time
        chunk = outputs[start:start + 256]
        d2 = (chunk ** 2).sum(1)[:, None] - 2 * chunk @ gallery.T + (gallery ** 2).sum(1)[None, :]
        nearest[start:start + 256] = d2.argmin(axis=1)
    own = np.searchsorted(people, labels)
    return nearest == own

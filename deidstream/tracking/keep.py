"""``--keep PHOTO``: people who match a reference photo stay unaltered (e.g. a presenter).

Matching is stricter than dlib's same-person threshold (0.6): keeping the wrong person
unaltered is a privacy failure, while missing the right one only anonymises them too. On the
shared clips a person's identity embedding (a mean over a track) lies under 0.4 from a photo of
them and another person's over 0.6 (tests/test_identity.py), so 0.45 keeps a margin on both sides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from deidstream.errors import ConfigError, InputNotFoundError, InvalidInputError
from deidstream.tracking.eid import DESCRIPTOR_SIZE, EidRecognizer

KEEP_THRESHOLD = 0.45


@dataclass(frozen=True, slots=True, repr=False)
class KeepList:
    """Reference descriptors (k, 128), one per photo, and the distance under which a face matches."""

    descriptors: np.ndarray
    names: tuple[str, ...]
    threshold: float = KEEP_THRESHOLD

    def __post_init__(self) -> None:
        d = np.asarray(self.descriptors, np.float32).reshape(-1, DESCRIPTOR_SIZE) if np.size(self.descriptors) \
            else np.zeros((0, DESCRIPTOR_SIZE), np.float32)
        if len(d) != len(self.names):
            raise ValueError(f"expected one name per descriptor, got {len(self.names)} names for {len(d)}")
        if not 0.0 < self.threshold <= 0.6:
            raise ConfigError(f"expected a keep threshold in (0, 0.6] (stricter than same-person), got "
                              f"{self.threshold}")
        object.__setattr__(self, "descriptors", d)

    @classmethod
    def from_photos(
        cls, paths: Iterable[str | Path], recognizer: EidRecognizer | None = None, *,
        threshold: float = KEEP_THRESHOLD,
    ) -> KeepList:
        """One reference per photo: the largest face in it, found and described as a tracked face
        is (the product's E_id; any recogniser with ``detect`` and ``describe``). Raises, naming
        the file, when a photo is missing, unreadable or has no face (a keep list that silently
        lost a photo would anonymise the presenter; one that guessed could keep a stranger)."""
        rec = recognizer or EidRecognizer()
        descriptors, names = [], []
        try:
            for path in map(Path, paths):
                descriptors.append(_describe_photo(rec, path))
                names.append(path.name)
        finally:
            if recognizer is None:
                rec.close()
        return cls(np.array(descriptors, np.float32), tuple(names), threshold)

    def __len__(self) -> int:
        return len(self.names)

    def distance(self, embedding: np.ndarray) -> float:
        """E_id distance from ``embedding`` to the nearest reference (inf for an empty list)."""
        if not len(self):
            return float("inf")
        e = np.asarray(embedding, np.float32)
        if e.shape != (DESCRIPTOR_SIZE,):
            raise ValueError(f"expected an embedding of shape ({DESCRIPTOR_SIZE},), got {e.shape}")
        return float(np.linalg.norm(self.descriptors - e, axis=1).min())

    def matches(self, embedding: np.ndarray) -> bool:
        """Whether the person with this identity embedding is to be kept unaltered."""
        return self.distance(embedding) < self.threshold

    def __repr__(self) -> str:  # never print descriptors
        return f"KeepList(names={self.names}, threshold={self.threshold})"


def _describe_photo(rec: object, path: Path) -> np.ndarray:
    """The descriptor of the largest face in the photo at ``path``."""
    if not path.is_file():
        raise InputNotFoundError(f"{path}: keep photo not found")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InvalidInputError(f"{path}: keep photo cannot be read as an image")
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    faces = rec.detect(image)  # type: ignore[attr-defined]
    if not faces:
        raise InvalidInputError(f"{path}: no face found in the keep photo (use a frontal photo where "
                                f"the face is at least 80 px wide)")
    largest = max(faces, key=lambda f: float(np.prod(f.box[2:] - f.box[:2])))
    return rec.describe(image, [largest])[0]  # type: ignore[attr-defined]

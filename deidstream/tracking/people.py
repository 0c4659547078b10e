"""Per track, the best views of a face and its identity shapes; per person, one record built from their
tracks (the identity book says whose tracks are whose).

A view is a crop around the face (``VIEW_MARGIN`` times its size on each side) with its landmarks, kept
for verifying a surrogate in; a track keeps its ``VIEWS_PER_TRACK`` best, by E_id's quality.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deidstream.types import FaceView, Person

VIEWS_PER_TRACK = 3
VIEW_MARGIN = 0.6  # crop kept around a face for verifying surrogates, times its size


def face_view(image: np.ndarray, points: np.ndarray, margin: float = VIEW_MARGIN) -> FaceView:
    """The face of ``points`` cut from ``image`` with ``margin`` around it, its landmarks moved with it."""
    lo, hi = points[:, :2].min(0), points[:, :2].max(0)
    pad = (hi - lo) * margin
    x0, y0 = np.maximum(np.floor(lo - pad), 0).astype(int)
    x1, y1 = np.ceil(hi + pad).astype(int)
    return FaceView(image[y0:y1, x0:x1].copy(), points - np.array([x0, y0, 0], np.float32))


@dataclass(slots=True)
class _TrackLooks:
    views: list[tuple[float, FaceView]] = field(default_factory=list)  # (quality, view), best first
    shapes: list[np.ndarray] = field(default_factory=list)


class People:
    """The views and shapes of every track, and one :class:`Person` per identity that lasts the run."""

    def __init__(self) -> None:
        self._tracks: dict[int, _TrackLooks] = {}
        self._people: dict[int, Person] = {}

    def remember(self, track_id: int, quality: float, image: np.ndarray, points: np.ndarray,
                 shape: np.ndarray) -> None:
        """A usable look at a track's face: its shape always, its view when among the track's best."""
        looks = self._tracks.setdefault(track_id, _TrackLooks())
        looks.shapes.append(shape)
        if len(looks.views) >= VIEWS_PER_TRACK and quality <= looks.views[-1][0]:
            return
        looks.views.append((quality, face_view(image, points)))
        looks.views.sort(key=lambda v: -v[0])
        del looks.views[VIEWS_PER_TRACK:]

    def absorb(self, other: People) -> None:
        """Another book's tracks' looks (its track ids apart from these)."""
        self._tracks.update(other._tracks)

    def views_of(self, track_id: int) -> int:
        looks = self._tracks.get(track_id)
        return 0 if looks is None else len(looks.views)

    def get(self, identity: int) -> Person | None:
        """The record of ``identity`` as it is (None before its first use): cheap, for every frame."""
        return self._people.get(identity)

    def person(self, identity: int, tracks: list[int]) -> Person:
        """The record of ``identity`` (made on first use), its tracks, views (best first over all of
        them) and shapes brought up to date."""
        person = self._people.setdefault(identity, Person(identity))
        looks = [self._tracks[t] for t in tracks if t in self._tracks]
        person.tracks = list(tracks)
        person.views = [v for _, v in sorted((v for lk in looks for v in lk.views), key=lambda v: -v[0])]
        person.set_shapes([s for lk in looks for s in lk.shapes])
        return person

    def forget_people(self) -> None:
        """Drop the per-identity records (the book renumbered its identities); the tracks' looks stay."""
        self._people.clear()

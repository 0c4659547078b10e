"""IdentityBook: tracks merged into identities (one surrogate per person) by E_id distance.

A track's embedding is the quality-weighted mean of its usable descriptors. Two tracks seen in
the same frame are two people and never share an identity, whatever their distance.

- Offline (files, between pass 1 and pass 2): :meth:`IdentityBook.resolve` merges all tracks
  by average-linkage agglomeration under that cannot-link rule, closest pair first.
- Online (live): :meth:`IdentityBook.add` gives a track an identity once it has
  ``min_observations`` usable observations and an identity lies within ``threshold`` with no
  track overlapping it in time (the nearest such), or, failing that, a new identity once it has
  ``new_identity_after`` observations (``min_observations`` when no such identity is even within
  ``new_identity_margin``); it never changes it afterwards. Until then the engine
  keeps the face on the fallback (fail closed).

Identity embeddings are biometric data: they stay in memory and are written only by
:meth:`IdentityBook.save`, which a user asks for explicitly (``--save-book``).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deidstream.config import IdentityConfig
from deidstream.errors import InvalidInputError
from deidstream.tracking.embedding import DESCRIPTOR_SIZE, FaceObservation
from deidstream.tracking.people import People
from deidstream.types import FaceDetections, Person

log = logging.getLogger(__name__)

BOOK_FORMAT = 1


class _Runs:
    """Frames a track was present in, as sorted inclusive [start, end] runs (few per track)."""

    __slots__ = ("starts", "ends")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def add(self, frame: int) -> None:
        if self.ends and self.starts[-1] <= frame <= self.ends[-1] + 1:  # the usual case: in order
            self.ends[-1] = max(self.ends[-1], frame)
            return
        i = bisect.bisect_right(self.starts, frame)  # runs before i start at or before frame
        if i and self.ends[i - 1] >= frame:
            return
        self.starts.insert(i, frame)
        self.ends.insert(i, frame)
        if i and self.ends[i - 1] + 1 >= frame:  # touches the previous run
            self.starts.pop(i)
            self.ends[i - 1] = max(self.ends[i - 1], self.ends.pop(i))
            i -= 1
        if i + 1 < len(self.starts) and self.starts[i + 1] <= self.ends[i] + 1:  # touches the next one
            self.starts.pop(i + 1)
            self.ends[i] = max(self.ends[i], self.ends.pop(i + 1))

    def overlaps(self, other: _Runs) -> bool:
        i = j = 0
        while i < len(self.starts) and j < len(other.starts):
            if self.starts[i] <= other.ends[j] and other.starts[j] <= self.ends[i]:
                return True
            if self.ends[i] < other.ends[j]:
                i += 1
            else:
                j += 1
        return False

    def frames(self) -> int:
        return sum(e - s + 1 for s, e in zip(self.starts, self.ends))

    def __contains__(self, frame: int) -> bool:
        i = bisect.bisect_right(self.starts, frame) - 1
        return i >= 0 and self.ends[i] >= frame

    @property
    def first(self) -> int | None:
        return self.starts[0] if self.starts else None


@dataclass(slots=True)
class _Track:
    runs: _Runs = field(default_factory=_Runs)
    weight: float = 0.0  # sum of qualities of usable observations
    total: np.ndarray = field(default_factory=lambda: np.zeros(DESCRIPTOR_SIZE, np.float64))
    usable: int = 0
    identity: int | None = None

    @property
    def mean(self) -> np.ndarray:
        return self.total / self.weight


@dataclass(slots=True)
class _Identity:
    tracks: set[int] = field(default_factory=set)
    weight: float = 0.0  # of a loaded (seed) identity, before this book's tracks
    total: np.ndarray = field(default_factory=lambda: np.zeros(DESCRIPTOR_SIZE, np.float64))
    seed: bool = False


@dataclass(frozen=True, slots=True)
class BookStats:
    """Counts for reports; no embeddings."""

    observations: int
    usable: int
    rejected: dict[str, int]
    tracks: int
    tracks_embedded: int
    identities: int
    online_conflicts: int


class IdentityBook:
    """Track ids → identity ids for one run (ids count from 1 per book; books share nothing)."""

    def __init__(self, config: IdentityConfig | None = None) -> None:
        self.config = config or IdentityConfig()
        self._tracks: dict[int, _Track] = {}
        self._identities: dict[int, _Identity] = {}
        self._ids = itertools.count(1)
        self._observations = 0
        self._rejected: Counter[str] = Counter()
        self._conflicts: set[tuple[int, int]] = set()
        self.people = People()  # each track's best views and shapes, each identity's record

    # -- feeding ---------------------------------------------------------------------------

    def track_seen(self, track_id: int, frame_index: int) -> None:
        """Record that a track's face was in this frame (matched to a detection, not coasting:
        a coasting box is a guess, and counting it would keep a person's old track alive over a
        cut and stop it from merging with the new one)."""
        track = self._tracks.setdefault(int(track_id), _Track())
        track.runs.add(int(frame_index))
        if track.identity is not None:
            self._check_conflict(int(track_id), track.identity, int(frame_index))

    def see(self, faces: FaceDetections, frame_index: int) -> None:
        """``track_seen`` for every face of the tracker's output that is not coasting."""
        if faces.track_id is None:
            raise ValueError("expected faces with track ids (the tracker's output), got none")
        coasting = faces.coasting if faces.coasting is not None else np.zeros(len(faces), bool)
        for tid, coast in zip(faces.track_id, coasting):
            if not coast:
                self.track_seen(int(tid), frame_index)

    def add(self, obs: FaceObservation) -> int | None:
        """Take one observation; returns the track's (online) identity, None until it has one."""
        self._observations += 1
        track = self._tracks.setdefault(obs.track_id, _Track())
        if not obs.usable:
            self._rejected[obs.reason] += 1
            return track.identity
        assert obs.descriptor is not None  # usable observations carry one
        self.track_seen(obs.track_id, obs.frame_index)  # a usable descriptor means a face was there
        track.weight += obs.quality
        track.total += obs.quality * obs.descriptor.astype(np.float64)
        track.usable += 1
        if track.identity is None and track.usable >= self.config.min_observations:
            self._assign_online(obs.track_id, track)
        return track.identity

    def _assign_online(self, track_id: int, track: _Track) -> None:
        best, nearest = None, np.inf
        for iid in self._identities:
            if self._overlaps_identity(track, iid):
                continue
            d = float(np.linalg.norm(track.mean - self.embedding(iid)))
            if d < nearest:
                best, nearest = iid, d
        if nearest >= self.config.threshold:
            best = None
            if track.usable < self.config.new_identity_after and nearest < self.config.new_identity_margin:
                return  # someone is near: wait for a steadier mean before founding a new identity
            best = next(self._ids)
            self._identities[best] = _Identity()
        self._identities[best].tracks.add(track_id)
        track.identity = best

    def _overlaps_identity(self, track: _Track, identity_id: int) -> bool:
        return any(track.runs.overlaps(self._tracks[t].runs) for t in self._identities[identity_id].tracks)

    def _check_conflict(self, track_id: int, identity_id: int, frame: int) -> None:
        for other in self._identities[identity_id].tracks:
            pair = (min(track_id, other), max(track_id, other))
            if other != track_id and pair not in self._conflicts and frame in self._tracks[other].runs:
                self._conflicts.add(pair)
                log.warning("identity %d: tracks %d and %d are both present in frame %d (kept: online "
                            "identities never change)", identity_id, pair[0], pair[1], frame)

    def absorb(self, other: IdentityBook) -> None:
        """Take ``other``'s tracks, looks and counts (a segment's book, its track ids apart from this
        book's): :meth:`resolve` then groups them all, so a person seen in two segments is one."""
        shared = self._tracks.keys() & other._tracks.keys()
        if shared:
            raise ValueError(f"the books share track ids {sorted(shared)[:5]}: a segment's ids must be its own")
        self._tracks.update(other._tracks)
        self._observations += other._observations
        self._rejected.update(other._rejected)
        self.people.absorb(other.people)

    # -- queries ---------------------------------------------------------------------------

    def identity_of(self, track_id: int) -> int | None:
        """The track's identity: online until :meth:`resolve`, the resolved one after."""
        track = self._tracks.get(int(track_id))
        return None if track is None else track.identity

    def identities(self) -> list[int]:
        return sorted(self._identities)

    def tracks_of(self, identity_id: int) -> list[int]:
        return sorted(self._identities[identity_id].tracks)

    def person(self, identity_id: int) -> Person:
        """The one record of this person (tracks, best views, shapes, surrogate search), kept for the run."""
        return self.people.person(identity_id, self.tracks_of(identity_id))

    def embedding(self, identity_id: int) -> np.ndarray:
        """(128,) float32 quality-weighted mean of every usable descriptor of the identity's tracks.

        Not re-normalised: it stays in dlib's descriptor space, where distances compare with
        dlib's thresholds (a mean is slightly shorter than one descriptor, by < 5 % here).
        Raises ``ValueError`` for an identity without any usable descriptor.
        """
        ident = self._identities[identity_id]
        weight = ident.weight + sum(self._tracks[t].weight for t in ident.tracks)
        if weight <= 0:
            raise ValueError(f"identity {identity_id} has no usable descriptor")
        total = ident.total + sum((self._tracks[t].total for t in ident.tracks), np.zeros(DESCRIPTOR_SIZE))
        return (total / weight).astype(np.float32)

    def frames_seen(self, identity_id: int) -> int:
        """Frames in which a face of this identity was detected (not coasting) or usably described."""
        return sum(self._tracks[t].runs.frames() for t in self._identities[identity_id].tracks)

    def has_embedding(self, identity_id: int) -> bool:
        ident = self._identities[identity_id]
        return ident.weight > 0 or any(self._tracks[t].weight > 0 for t in ident.tracks)

    def stats(self) -> BookStats:
        usable = sum(t.usable for t in self._tracks.values())
        return BookStats(self._observations, usable, dict(self._rejected), len(self._tracks),
                         sum(t.usable >= self.config.min_observations for t in self._tracks.values()),
                         len(self._identities), len(self._conflicts))

    # -- offline ---------------------------------------------------------------------------

    def resolve(self) -> dict[int, int]:
        """Re-group every track seen so far; returns track id → identity id and makes it the
        book's state (so call it between passes, never while rendering: it may renumber).

        Average linkage, closest pair of groups first, while the distance is under
        ``threshold``; two groups with tracks present in the same frame are never merged.
        Loaded identities keep their ids and never merge with each other; other identities are
        numbered after them in order of first appearance. Tracks with fewer than
        ``min_observations`` usable observations get an identity of their own.
        """
        seeds = sorted(i for i, ident in self._identities.items() if ident.seed)
        tids = sorted(self._tracks)
        embedded = [t for t in tids if self._tracks[t].usable >= self.config.min_observations]
        groups = _agglomerate(
            np.array([self._seed_mean(i) for i in seeds] + [self._tracks[t].mean for t in embedded]).reshape(-1, 128),
            self._cannot_link(seeds, embedded),
            self.config.threshold,
        )
        members: list[tuple[int | None, list[int]]] = []
        for group in groups:
            seed = [seeds[k] for k in group if k < len(seeds)]
            members.append((seed[0] if seed else None, [embedded[k - len(seeds)] for k in group if k >= len(seeds)]))
        members += [(None, [t]) for t in tids if self._tracks[t].usable < self.config.min_observations]

        def first(tracks: list[int]) -> float:
            frames = [self._tracks[t].runs.first for t in tracks]
            return min((f for f in frames if f is not None), default=float("inf"))

        old = self._identities
        self._identities = {s: _Identity(weight=old[s].weight, total=old[s].total, seed=True) for s in seeds}
        self._ids = itertools.count(max(seeds, default=0) + 1)
        for seed, tracks in sorted(members, key=lambda m: (m[0] is None, first(m[1]))):
            if seed is None and not tracks:
                continue
            iid = seed if seed is not None else next(self._ids)
            self._identities.setdefault(iid, _Identity()).tracks.update(tracks)
            for t in tracks:
                self._tracks[t].identity = iid
        self._conflicts.clear()
        self.people.forget_people()
        return {t: self._tracks[t].identity for t in tids}  # type: ignore[misc]

    def _seed_mean(self, identity_id: int) -> np.ndarray:
        ident = self._identities[identity_id]
        return ident.total / ident.weight

    def _cannot_link(self, seeds: list[int], embedded: list[int]) -> np.ndarray:
        n_s = len(seeds)
        n = n_s + len(embedded)
        cannot = np.zeros((n, n), bool)
        cannot[:n_s, :n_s] = True  # loaded identities are distinct people
        for a, b in itertools.combinations(range(len(embedded)), 2):
            if self._tracks[embedded[a]].runs.overlaps(self._tracks[embedded[b]].runs):
                cannot[n_s + a, n_s + b] = cannot[n_s + b, n_s + a] = True
        return cannot

    # -- persistence (biometric data: only on request) --------------------------------------

    def save(self, path: str | Path) -> None:
        """Write every identity's embedding and weight to ``path`` (.npz), atomically.

        WARNING: the file holds face embeddings of the people in the video, i.e. biometric
        data that can re-identify them. Write it only when the user asked (``--save-book``),
        keep it as protected as the original footage, and delete it when no longer needed.
        """
        ids = [i for i in self.identities() if self.has_embedding(i)]
        weights = [self._identities[i].weight + sum(self._tracks[t].weight for t in self._identities[i].tracks)
                   for i in ids]
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, format=np.array(BOOK_FORMAT), ids=np.array(ids, np.int64),
                         embeddings=np.array([self.embedding(i) for i in ids], np.float32).reshape(-1, 128),
                         weights=np.array(weights, np.float64))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        log.info("wrote %d identity embeddings (biometric data) to %s", len(ids), path)

    @classmethod
    def load(cls, path: str | Path, config: IdentityConfig | None = None) -> IdentityBook:
        """A book that starts with the identities of a saved one: tracks of a new video join
        them (same person, same identity id, hence the same surrogate for the same key)."""
        try:
            with np.load(Path(path), allow_pickle=False) as z:
                if int(z["format"]) != BOOK_FORMAT:
                    raise InvalidInputError(f"{path}: expected identity book format {BOOK_FORMAT}, got {z['format']}")
                ids, embeddings, weights = z["ids"], z["embeddings"], z["weights"]
        except (OSError, KeyError, ValueError) as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise InvalidInputError(f"{path}: not an identity book ({exc})") from exc
        if embeddings.shape != (len(ids), DESCRIPTOR_SIZE) or weights.shape != ids.shape or (weights <= 0).any():
            raise InvalidInputError(f"{path}: expected {len(ids)} embeddings of {DESCRIPTOR_SIZE} with positive "
                                    f"weights, got {embeddings.shape} and {weights.shape}")
        book = cls(config)
        for iid, emb, w in zip(ids.tolist(), embeddings, weights.tolist()):
            book._identities[iid] = _Identity(weight=w, total=emb.astype(np.float64) * w, seed=True)
        book._ids = itertools.count(max(ids.tolist(), default=0) + 1)
        return book


def _agglomerate(points: np.ndarray, cannot: np.ndarray, threshold: float) -> list[list[int]]:
    """Average-linkage clusters of ``points`` (rows), merging the closest allowed pair first
    while it is closer than ``threshold``; ``cannot[i, j]`` forbids i and j in one cluster.

    >>> pts = np.array([[0.0], [0.1], [0.25], [5.0]])
    >>> _agglomerate(pts, np.zeros((4, 4), bool), 0.3)
    [[0, 1, 2], [3]]
    >>> no = np.zeros((4, 4), bool); no[0, 2] = no[2, 0] = True
    >>> _agglomerate(pts, no, 0.3)
    [[0, 1], [2], [3]]
    """
    n = len(points)
    if n == 0:
        return []
    dist = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=2)
    cannot = cannot.copy()
    size = np.ones(n)
    alive = np.ones(n, bool)
    clusters: dict[int, list[int]] = {i: [i] for i in range(n)}
    while True:
        masked = np.where(cannot | ~alive[:, None] | ~alive[None, :] | np.eye(n, dtype=bool), np.inf, dist)
        i, j = np.unravel_index(int(np.argmin(masked)), masked.shape)
        if masked[i, j] >= threshold:
            break
        i, j = min(i, j), max(i, j)
        dist[i, :] = dist[:, i] = (size[i] * dist[i, :] + size[j] * dist[j, :]) / (size[i] + size[j])
        cannot[i, :] |= cannot[j, :]
        cannot[:, i] = cannot[i, :]
        size[i] += size[j]
        alive[j] = False
        clusters[i] += clusters.pop(j)
    return [sorted(c) for _, c in sorted(clusters.items())]

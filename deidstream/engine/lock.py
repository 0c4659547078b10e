"""The surrogate lock: one verified surrogate identity per person, chosen once.

Candidates are drawn deterministically from (secret key, identity label): a mix of a few
synthetic donors that match the subject's apparent sex and skin tone, pushed off them by a
random step in the appearance space, with a random shape. A candidate is accepted only if

- rendered into the subject's own best frames (their pose, light, eyes, hair), its E_id
  distance to the subject is at least ``tau`` (the paper's privacy parameter);
- that same output is at least ``donor_distance`` from every donor face the appearance space
  was built from (a surrogate is nobody real, not a donor's twin) and ``min_distance`` from
  every other person's output in the same run (two people never look alike) and from every
  other person's own face (a surrogate is never mistaken for someone else in the video). The
  check is made on the output rather than on a render on a blank canvas: a hairless render
  on grey looks to dlib like a generic face (0.45-0.6 from some donor photo whatever the
  latent), which says nothing about what a viewer of the output sees.

Of the candidates that pass, the farthest from the subject among at least ``explore`` is kept.
If none passes, the person is not locked and the engine falls back to blur (fail closed).
Neither the key nor any embedding is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from deidstream.config import LockConfig
from deidstream.engine.generator.face_render import FaceRenderer, Surrogate
from deidstream.engine.generator.facemodel import FaceModel, Identity, skin_ita
from deidstream.engine.generator.inversion import Inverter
from deidstream.errors import ConfigError
from deidstream.types import FaceView

log = logging.getLogger(__name__)
# A person whose search failed gets a second one, with new candidates each verified in all three of their
# best views, only where their face is this wide in all three: a small face's descriptor moves 0.4-0.6
# between its frames, and a second search verified in two views left the stage performer (85 px)
# re-identified in 2 of 34 faces; large faces' candidates that pass three views stay over 0.6 in other
# frames (benchmarks/bench_verify.py).
SECOND_SEARCH_MIN_FACE_PX = 100
# ... and only when the first came within this of τ: one far short of it (τ 1.5) would only spend seconds
SECOND_SEARCH_WITHIN = 0.2


def wide_enough(views: list[FaceView], px: float = SECOND_SEARCH_MIN_FACE_PX) -> bool:
    """Whether a person has three views and their face is at least ``px`` wide in each."""
    return len(views) >= 3 and min(float(np.ptp(v.points[:, 0])) for v in views[:3]) >= px


@dataclass(frozen=True, slots=True)
class Lock:
    """The outcome for one person: ``surrogate`` None means not locked (fallback)."""

    label: int
    surrogate: Surrogate | None
    # E_id distance of the accepted (or best) candidate to the subject; None: no candidate passed the
    # donor and other-people bounds, so none was judged against τ
    distance: float | None
    attempts: int
    nearest_donor: float
    nearest_other: float

    @property
    def locked(self) -> bool:
        return self.surrogate is not None


def identity_seed(key: bytes, label: int, attempt: int = 0) -> int:
    digest = hmac.new(key, f"deidstream-identity:{label}:{attempt}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:16], "little")


class SurrogateLocker:
    """Chooses and verifies surrogates; remembers the accepted ones' descriptors for the
    "two people never look alike" check."""

    def __init__(self, model: FaceModel, renderer: FaceRenderer, recognizer: object, key: bytes,
                 config: LockConfig | None = None) -> None:
        if not key:
            raise ConfigError("the identity key must not be empty")
        self.model = model
        self.renderer = renderer
        self.recognizer = recognizer
        self.config = config or LockConfig()
        self._key = key
        self._inverter = Inverter(model)
        self._accepted: list[np.ndarray] = []
        # whether to take ``pause_s`` now (None: always); live, only while faces are being rendered
        self.pause_when: Callable[[], bool] | None = None

    def __repr__(self) -> str:  # never show the key
        return f"SurrogateLocker(tau={self.config.tau}, locked={len(self._accepted)})"

    def attributes(self, embedding: np.ndarray) -> tuple[float, float]:
        """P(female) and age of a subject from its E_id embedding."""
        x = np.append(embedding, 1.0).astype(np.float64)
        w = self.model.attribute_weights.astype(np.float64)
        return float(expit(x @ w[0])), float(x @ w[1])

    def skin_ita(self, exemplars: list[FaceView]) -> float:
        albedo, trust = self._inverter.albedo(exemplars)
        return skin_ita(albedo, self.model.tex_mask & (trust > 0.5) & ~self._inverter.atlas.openings)

    def warm(self) -> None:
        """The PCA space's search reads nothing per donor before its first lock: nothing to build ahead."""

    def lock(self, label: int, embedding: np.ndarray, exemplars: list[FaceView],
             others: np.ndarray | None = None, *, first_attempt: int = 0, verify_views: int = 2) -> Lock:
        """The surrogate of person ``label`` (a stable number within the run), verified on
        ``exemplars`` (their best frames, most frontal first): the first ``verify_views`` of them.
        ``others``: (k, 128) embeddings of the other real people of the video; the surrogate must
        not look like them either. ``first_attempt`` numbers the candidates (a new search for the
        same person draws other ones).

        A first round of ``per_round`` candidates is drawn around the matched donors; each later
        round of ``climb_round`` steps off the farthest so far (of those that pass the donor and
        other-people bounds) by ``climb_step`` of a first-round step. Every candidate of a round is
        rendered into the first ``search_views`` views and described in one batch per view, and
        judged by its worst view. Once ``explore`` candidates are compared, the farthest that
        passes every bound, also in the remaining views, is kept. Of 7 people of 5 shared clips
        (benchmarks/bench_lock.py), the farthest of 24 random draws, judged in the two best views,
        lands 0.895 from the subject (0.900 in a held-out frame); this search, 6 draws and 6
        climbing rounds of 3, 0.920 (0.922) at tau 0.75. A climb judged in one view alone finds candidates far
        from the subject in that frame only (a scratch run: 0.889 against 0.907 in two views).
        """
        cfg = self.config
        female, _ = self.attributes(embedding)
        ita = self.skin_ita(exemplars)
        donors = self._matched_donors(female, ita)
        centre = self.model.donor_coefficients[donors].mean(axis=0)
        views = exemplars[:verify_views]
        searched = min(cfg.search_views, len(views))  # views every candidate is described in
        # everyone this surrogate must not look like: the other people and the surrogates given so far
        nearby = np.concatenate([np.zeros((0, 128), np.float32) if others is None else np.asarray(others, np.float32),
                                 np.array(self._accepted, np.float32).reshape(-1, 128)])
        best: tuple[float, float, float] = (-1.0, 0.0, 0.0)
        scored: list[tuple[tuple[float, float, float], Surrogate, np.ndarray]] = []  # pass donors and others
        failed: set[int] = set()  # ids of candidates that failed in another view
        kept: tuple[tuple[float, float, float], Surrogate, np.ndarray] | None = None
        tried = 0
        while tried < cfg.candidates:
            if tried >= cfg.explore and (kept := self._farthest_verified(embedding, scored, failed, views[searched:],
                                                                         nearby)) is not None:
                break
            if tried >= cfg.give_up_after and 0 <= best[0] < cfg.tau - cfg.give_up_margin:
                break
            starts = [s for s in scored if id(s[1]) not in failed]
            if starts:
                n = min(cfg.climb_round, cfg.candidates - tried)
                start = max(starts, key=lambda s: s[0][0])[1]
                candidates = [self._climbed(start, label, first_attempt + tried + i, centre) for i in range(n)]
            else:
                n = min(cfg.per_round, cfg.candidates - tried)
                candidates = [self._candidate_of(label, first_attempt + tried + i, donors) for i in range(n)]
            tried += n
            outputs = self._describe_in_views(candidates, views[:searched])
            for i, candidate in enumerate(candidates):
                worst = np.min([self._distances(embedding, out[i], nearby) for out in outputs], axis=0)
                distances = (float(worst[0]), float(worst[1]), float(worst[2]))
                if distances[1] < cfg.donor_distance or distances[2] < cfg.min_distance:
                    continue
                best = max(best, distances)
                scored.append((distances, candidate, outputs[0][i]))
        if kept is None:  # the last round's, or a search that stopped before ``explore``
            kept = self._farthest_verified(embedding, scored, failed, views[searched:], nearby)
        if kept is not None:
            verdict, candidate, output = kept
            self._accepted.append(output)
            return Lock(label, candidate, verdict[0], tried, verdict[1], verdict[2])
        judged = best[0] if scored else None
        log.info("person %d: no surrogate reached tau=%.2f in %d candidates (%s)", label, cfg.tau, tried,
                 "none cleared the donor and other-people bounds" if judged is None else f"best {judged:.2f}")
        return Lock(label, None, judged, tried, best[1], best[2])

    def _farthest_verified(self, embedding: np.ndarray, scored: list, failed: set[int], views: list[FaceView],
                           nearby: np.ndarray) -> tuple[tuple[float, float, float], Surrogate, np.ndarray] | None:
        """The farthest of ``scored`` over τ whose worst over ``views`` also passes every bound;
        candidates that fail are remembered in ``failed`` and not verified again."""
        for first, candidate, output in sorted(scored, key=lambda s: -s[0][0]):
            if first[0] < self.config.tau:
                return None
            if id(candidate) in failed:
                continue
            verdict = self._verify(embedding, candidate, views, first, nearby)
            if verdict is not None:
                return verdict, candidate, output
            failed.add(id(candidate))
        return None

    def _verify(self, embedding: np.ndarray, candidate: Surrogate, views: list[FaceView],
                first: tuple[float, float, float], nearby: np.ndarray) -> tuple[float, float, float] | None:
        """The candidate's worst (distance, nearest donor, nearest other) over ``views`` as well,
        or None if one of them fails a bound."""
        cfg = self.config
        distance, nearest_donor, nearest_other = first
        for view in views:
            d, nd, no = self._distances(embedding, self._describe_in_place([candidate], view)[0], nearby)
            distance, nearest_donor, nearest_other = min(distance, d), min(nearest_donor, nd), min(nearest_other, no)
            if distance < cfg.tau or nearest_donor < cfg.donor_distance or nearest_other < cfg.min_distance:
                return None
        return distance, nearest_donor, nearest_other

    def _distances(self, embedding: np.ndarray, output: np.ndarray,
                   nearby: np.ndarray) -> tuple[float, float, float]:
        """E_id distance of an output to its subject, to the nearest donor and to the nearest of
        ``nearby`` (other people's faces and surrogates)."""
        distance = float(np.linalg.norm(output - embedding))
        nearest_donor = float(np.linalg.norm(self.model.donor_descriptors - output, axis=1).min(initial=9.0))
        nearest_other = float(np.linalg.norm(nearby - output, axis=1).min(initial=9.0))
        return distance, nearest_donor, nearest_other

    def _candidate_of(self, label: int, attempt: int, donors: np.ndarray) -> Surrogate:
        centre = self.model.donor_coefficients[donors].mean(axis=0)
        rng = np.random.default_rng(identity_seed(self._key, label, attempt))
        boldness = 1.0 + attempt % self.config.candidates / max(self.config.candidates - 1, 1)  # later: further out
        identity = self._candidate(rng, donors, boldness)
        return Surrogate.of(self.renderer.model, Identity(identity.shape, self._within(identity.appearance, centre)))

    def _climbed(self, start: Surrogate, label: int, attempt: int, centre: np.ndarray) -> Surrogate:
        """A step off ``start``: ``climb_step`` of a first-round step in every direction."""
        cfg, model = self.config, self.renderer.model
        rng = np.random.default_rng(identity_seed(self._key, label, attempt))
        ident = start.identity
        appearance = ident.appearance + rng.standard_normal(model.n_appearance) * cfg.appearance_step * cfg.climb_step
        shape = ident.shape + rng.standard_normal(model.n_shape) * cfg.shape_spread * cfg.climb_step
        return Surrogate.of(model, Identity(shape.astype(np.float32), self._within(appearance, centre)))

    def _within(self, appearance: np.ndarray, centre: np.ndarray) -> np.ndarray:
        """``appearance`` pulled back onto the ball of ``appearance_radius`` around ``centre``."""
        offset = appearance - centre
        norm = float(np.linalg.norm(offset))
        radius = self.config.appearance_radius
        return (centre + offset * min(1.0, radius / norm) if norm > 0 else appearance).astype(np.float32)

    def _matched_donors(self, female: float, ita: float) -> np.ndarray:
        attrs = self.model.donor_attributes
        same_sex = (attrs[:, 0] > 0.5) == (female > 0.5)
        for tolerance in (self.config.skin_tolerance, 2 * self.config.skin_tolerance, 180.0):
            chosen = np.flatnonzero(same_sex & (np.abs(attrs[:, 2] - ita) <= tolerance))
            if len(chosen) >= self.config.mix:
                return chosen
        return np.arange(len(attrs))

    def _candidate(self, rng: np.random.Generator, donors: np.ndarray, boldness: float = 1.0) -> Identity:
        """The centre of the matched donors (their average: sex, skin tone and age without any
        one donor's features or hair) plus a random step in every appearance direction."""
        cfg = self.config
        picked = rng.choice(donors, size=min(max(cfg.mix, len(donors) // 2), len(donors)), replace=False)
        mixed = self.model.donor_coefficients[picked].mean(axis=0)
        step = rng.standard_normal(self.model.n_appearance) * cfg.appearance_step * boldness
        shape = rng.standard_normal(self.model.n_shape) * cfg.shape_spread
        return Identity(shape.astype(np.float32), (mixed + step).astype(np.float32))

    def _describe_in_place(self, candidates: list[Surrogate], exemplar: FaceView) -> np.ndarray:
        return self._describe_in_views(candidates, [exemplar])[0]

    def _describe_in_views(self, candidates: list[Surrogate], views: list[FaceView]) -> list[np.ndarray]:
        """E_id of each output in each view: the surrogate rendered into the subject's own frame
        (their pose, light, eyes, hair), which is what a recogniser will see; one batch for the
        network, so that it splits evenly over the descriptor workers."""
        chips = [chip for view in views for chip in self._chips_in_place(candidates, view)]
        return np.split(self.recognizer.describe_chips(chips), len(views))  # type: ignore[attr-defined]

    def _chips_in_place(self, candidates: list[Surrogate], exemplar: FaceView) -> list[np.ndarray]:
        shape = self._inverter.person_shape([exemplar])
        chips = []
        for candidate in candidates:
            image = exemplar.image.copy()
            self.renderer.paint(image, exemplar.points, shape, candidate)
            chips.append(face_chip(self.recognizer, image, exemplar.points))
            if self.config.pause_s and (self.pause_when is None or self.pause_when()):
                time.sleep(self.config.pause_s)  # the GIL and a core back to the frames
        return chips


def face_chip(recognizer: object, image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The aligned 150-px chip E_id sees of the face whose 468 landmarks are ``points``, cut by the
    recogniser the pipeline passed in (the product's aligns by its landmarks, without dlib; see
    ``deidstream.tracking.eid``), so a candidate is judged on the pixels a tracked face would be."""
    return recognizer.chip(image, points)  # type: ignore[attr-defined]
